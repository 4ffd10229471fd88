#include "tools/grpo/report.h"

#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/common/checksum.h"
#include "core/common/config.h"
#include "core/common/dataset.h"

namespace grpo {
namespace {

namespace fs = std::filesystem;

std::vector<nlohmann::json> ReadJsonl(const fs::path& p, size_t limit = SIZE_MAX) {
  std::vector<nlohmann::json> out;
  std::ifstream in(p);
  std::string line;
  while (out.size() < limit && std::getline(in, line)) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  return out;
}

// A few completions per stage: sample 0 of the first tasks, with the task's prompt.
nlohmann::json Samples(const fs::path& file, const std::map<std::string, Task>& tasks, int n) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& s : ReadJsonl(file)) {
    if (s.value("sample", -1) != 0) continue;
    const std::string id = s.value("id", "");
    auto t = tasks.find(id);
    out.push_back({{"id", id},
                   {"prompt", t == tasks.end() ? "" : t->second.prompt},
                   {"answer", t == tasks.end() ? "" : t->second.answer},
                   {"text", s.value("text", "")},
                   {"correct", s.value("correct", false)},
                   {"format", s.value("format", false)}});
    if (static_cast<int>(out.size()) >= n) break;
  }
  return out;
}

constexpr const char* kPage = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>GRPO run report</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th:first-child,td:first-child{text-align:left}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:16px}
.chart{border:1px solid #ddd;padding:8px}.chart h3{margin:0 0 4px;font-size:14px}
pre{background:#f6f6f6;padding:10px;overflow:auto;font-size:12px}
.ok{color:#1a7f37}.bad{color:#b42318}.sample{border-bottom:1px solid #eee;padding:4px 0}
code{white-space:pre-wrap}
</style></head><body>
<h1>GRPO run report</h1>
<p id="meta"></p>
<h2>Held-out evaluation, before and after</h2>
<div id="table"></div>
<div id="stages-box" hidden><h2>R1's stages, held-out</h2>
<div id="stages-table"></div></div>
<h2>Over training</h2>
<div class="charts" id="charts"></div>
<div id="by-stage"></div>
<h2>Sampled completions</h2>
<div id="samples"></div>
<h2>Resolved config</h2>
<pre id="config"></pre>
<script id="data" type="application/json">@DATA@</script>
<script>
(function(){
const D = JSON.parse(document.getElementById('data').textContent);
const esc = s => String(s).replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
document.getElementById('meta').textContent = 'Run directory ' + D.run_dir + ', ' + D.steps + ' steps.';
document.getElementById('config').textContent = D.config;
// Before/after table.
const keys = ['pass@1','pass@k','maj@k','format','response_len_mean','language_consistency','k','n'];
let t = '<table id="before-after"><tr><th>held-out</th>' + keys.map(k => '<th>' + k + '</th>').join('') + '</tr>';
for (const [name, e] of [['before', D.before], ['after', D.after]]) {
  if (!e) continue;
  t += '<tr><td>' + name + '</td>' + keys.map(k => '<td>' + (typeof e[k] === 'number' ?
       (Number.isInteger(e[k]) ? e[k] : e[k].toFixed(3)) : '') + '</td>').join('') + '</tr>';
}
document.getElementById('table').innerHTML = (D.before || D.after) ? t + '</table>' : '<p>No before/after evaluation in this run.</p>';
// A staged run (R1's pipeline): a row per stage, the base model's first.
const fmt = v => typeof v === 'number' ? v.toFixed(3) : '';
if (D.stages && D.stages.length) {
  const skeys = ['pass@1','maj@k','format','response_len_mean','language_consistency'];
  let st = '<table id="stages"><tr><th>model</th>' + skeys.map(k => '<th>' + k + '</th>').join('') + '<th>minutes</th></tr>';
  const rows = [['base', D.before, null]].concat(D.stages.map(x => [x.name, x.eval, x.seconds]));
  for (const [name, e, secs] of rows) {
    st += '<tr><td>' + esc(name) + '</td>' + skeys.map(k => '<td>' + (e ? fmt(e[k]) : '') + '</td>').join('') +
          '<td>' + (typeof secs === 'number' ? (secs / 60).toFixed(1) : '') + '</td></tr>';
  }
  document.getElementById('stages-table').innerHTML = st + '</table>';
  document.getElementById('stages-box').hidden = false;
}
// Line charts as SVG.
const colors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd'];
function chart(title, series) {
  const div = document.createElement('div');
  div.className = 'chart';
  div.innerHTML = '<h3>' + esc(title) + '</h3>';
  const pts = series.flatMap(s => s.points);
  if (!pts.length) { div.innerHTML += '<p>no data</p>'; div.dataset.drawn = '0'; return div; }
  const W = 360, H = 200, L = 44, R = 8, T = 8, B = 24;
  let x0 = Math.min(...pts.map(p => p[0])), x1 = Math.max(...pts.map(p => p[0]));
  let y0 = Math.min(...pts.map(p => p[1])), y1 = Math.max(...pts.map(p => p[1]));
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y1 += 0.5; y0 -= 0.5; }
  const X = x => L + (x - x0) / (x1 - x0) * (W - L - R), Y = y => H - B - (y - y0) / (y1 - y0) * (H - T - B);
  let svg = '<svg xmlns="http://www.w3.org/2000/svg" width="' + W + '" height="' + H + '">';
  svg += '<line x1="' + L + '" y1="' + (H - B) + '" x2="' + (W - R) + '" y2="' + (H - B) + '" stroke="#999"/>';
  svg += '<line x1="' + L + '" y1="' + T + '" x2="' + L + '" y2="' + (H - B) + '" stroke="#999"/>';
  svg += '<text x="2" y="' + (T + 10) + '" font-size="10">' + y1.toPrecision(3) + '</text>';
  svg += '<text x="2" y="' + (H - B) + '" font-size="10">' + y0.toPrecision(3) + '</text>';
  svg += '<text x="' + L + '" y="' + (H - 6) + '" font-size="10">step ' + x0 + '</text>';
  svg += '<text x="' + (W - R - 50) + '" y="' + (H - 6) + '" font-size="10">' + x1 + '</text>';
  let drawn = 0;
  series.forEach((s, i) => {
    if (!s.points.length) return;
    const d = s.points.map((p, j) => (j ? 'L' : 'M') + X(p[0]).toFixed(1) + ' ' + Y(p[1]).toFixed(1)).join(' ');
    svg += '<path class="series" d="' + d + '" fill="none" stroke="' + colors[i % 4] + '" stroke-width="1.5"/>';
    if (s.points.length < 40) s.points.forEach(p => {
      svg += '<circle cx="' + X(p[0]).toFixed(1) + '" cy="' + Y(p[1]).toFixed(1) + '" r="2.5" fill="' + colors[i % 4] + '"/>';
    });
    svg += '<text x="' + (L + 6) + '" y="' + (T + 12 + 12 * i) + '" font-size="11" fill="' + colors[i % 4] + '">' + esc(s.name) + '</text>';
    drawn += s.points.length;
  });
  div.innerHTML += svg + '</svg>';
  div.dataset.drawn = String(drawn);
  return div;
}
const M = D.metrics;
const ser = (name, key, pred) => ({name, points: M.filter(m => typeof m[key] === 'number' && (!pred || pred(m))).map(m => [m.step, m[key]])});
// Training curves: a moving mean over 10 steps smooths the per-batch noise.
function smooth(s) {
  const out = [];
  for (let i = 0; i < s.points.length; ++i) {
    const w = s.points.slice(Math.max(0, i - 9), i + 1);
    out.push([s.points[i][0], w.reduce((a, p) => a + p[1], 0) / w.length]);
  }
  return {name: s.name, points: out};
}
const train = m => m.step >= 1;
const charts = [
  ['Reward (training batches, mean of 10 steps)', [smooth(ser('reward', 'reward_mean', train)), smooth(ser('accuracy', 'accuracy', train))]],
  ['Held-out pass@1 and maj@k', [ser('pass@1', 'eval_pass1'), ser('maj@k', 'eval_majk')]],
  ['Format share', [smooth(ser('training', 'format', train)), ser('held-out', 'eval_format')]],
  ['Response length (tokens)', [smooth(ser('training', 'completion_len_mean', train)), ser('held-out', 'eval_len')]],
  ['KL to the reference', [smooth(ser('kl', 'kl', train))]],
  ['Policy entropy', [smooth(ser('entropy', 'entropy', train))]],
  ['Throughput (completion tokens/s)', [smooth(ser('tokens/s', 'tokens_per_s', train))]],
  ['Language consistency', [smooth(ser('training', 'language', train)), ser('held-out', 'eval_language')]],
];
const box = document.getElementById('charts');
charts.forEach(([title, series], i) => { const c = chart(title, series); c.id = 'chart-' + i; box.appendChild(c); });
// A staged run: each stage's own curves (RL: held-out and reward components; SFT: loss).
for (const x of (D.stages || [])) {
  const P = x.metrics || [];
  const sser = (name, key, pred) => ({name, points: P.filter(m => typeof m[key] === 'number' && (!pred || pred(m))).map(m => [m.step, m[key]])});
  const list = x.kind === 'rl' ? [
    [x.name + ': held-out', [sser('pass@1', 'eval_pass1'), sser('maj@k', 'eval_majk'), sser('language', 'eval_language')]],
    [x.name + ': reward components (mean of 10 steps)', [smooth(sser('accuracy', 'accuracy', train)), smooth(sser('format', 'format', train)), smooth(sser('language', 'language', train))]],
    [x.name + ': response length (tokens)', [smooth(sser('training', 'completion_len_mean', train)), sser('held-out', 'eval_len')]],
  ] : [[x.name + ': supervised loss', [sser('loss', 'loss')]]];
  const h = document.createElement('h3');
  h.textContent = x.name + (x.kind === 'rl' ? ' (GRPO)' : ' (supervised fine-tuning)');
  const grid = document.createElement('div');
  grid.className = 'charts';
  list.forEach(([title, series], i) => { const c = chart(title, series); c.id = 'stage-' + x.name + '-' + i; grid.appendChild(c); });
  document.getElementById('by-stage').append(h, grid);
}
// Samples.
let s = '';
for (const [name, list] of [['before', D.samples_before], ['after', D.samples_after]]) {
  if (!list || !list.length) continue;
  s += '<h3>' + name + '</h3>';
  for (const x of list) {
    s += '<div class="sample"><b>' + esc(x.prompt) + '</b> (answer ' + esc(x.answer) + ') &rarr; <code>' + esc(x.text) +
         '</code> <span class="' + (x.correct ? 'ok">correct' : 'bad">wrong') + '</span>' + (x.format ? ', formatted' : '') + '</div>';
  }
}
document.getElementById('samples').innerHTML = s || '<p>No samples in this run.</p>';
document.body.dataset.ready = '1';
})();
</script></body></html>
)HTML";

}  // namespace

absl::Status WriteRunReport(const std::string& run_dir_str) {
  const fs::path run_dir(run_dir_str);
  nlohmann::json data;
  data["run_dir"] = run_dir.string();
  absl::StatusOr<std::string> config_text = ReadFile((run_dir / "config.yaml").string());
  data["config"] = config_text.ok() ? *config_text : std::string("(no config.yaml)");
  // Only what the charts draw, to keep the page small; `offset` is added to the steps.
  auto keep_lines = [](const std::vector<nlohmann::json>& lines, int64_t offset, nlohmann::json* to) {
    int64_t last = 0;
    for (const auto& line : lines) {
      nlohmann::json keep = nlohmann::json::object();
      for (const char* k : {"step", "reward_mean", "accuracy", "format", "completion_len_mean", "kl", "entropy",
                            "tokens_per_s", "eval_pass1", "eval_majk", "eval_format", "eval_len", "eval_language",
                            "loss"}) {
        if (line.contains(k)) keep[k] = line[k];
      }
      if (line.contains("rewards") && line["rewards"].is_object() && line["rewards"].contains("language")) {
        keep["language"] = line["rewards"]["language"];
      }
      last = std::max<int64_t>(last, line.value("step", int64_t{0}));
      if (keep.contains("step") && keep["step"].is_number_integer()) keep["step"] = keep["step"].get<int64_t>() + offset;
      to->push_back(keep);
    }
    return last;
  };
  nlohmann::json m = nlohmann::json::array();
  int64_t steps = keep_lines(ReadJsonl(run_dir / "metrics.jsonl"), 0, &m);
  // A staged run (tools/grpo/stages.h): a row and curves per stage; the overall charts
  // follow its RL stages one after the other.
  nlohmann::json stages = nlohmann::json::array();
  for (const std::string& name : R1StageNames()) {
    const fs::path dir = run_dir / "stages" / name;
    if (!fs::exists(dir)) continue;
    const bool rl = fs::exists(dir / "metrics.jsonl");
    nlohmann::json st = {{"name", name}, {"kind", rl ? "rl" : "sft"}, {"metrics", nlohmann::json::array()}};
    const std::vector<nlohmann::json> lines = ReadJsonl(rl ? dir / "metrics.jsonl" : dir / "sft" / "metrics.jsonl");
    keep_lines(lines, 0, &st["metrics"]);
    if (rl) steps += keep_lines(lines, steps, &m);
    absl::StatusOr<std::string> e = ReadFile((run_dir / "eval" / (name + ".json")).string());
    nlohmann::json ej = e.ok() ? nlohmann::json::parse(*e, nullptr, false) : nlohmann::json();
    st["eval"] = ej.is_discarded() ? nlohmann::json() : ej;
    absl::StatusOr<std::string> d = ReadFile((dir / "done.json").string());
    nlohmann::json dj = d.ok() ? nlohmann::json::parse(*d, nullptr, false) : nlohmann::json();
    st["seconds"] = dj.is_object() ? nlohmann::json(dj.value("seconds", 0.0)) : nlohmann::json();
    stages.push_back(std::move(st));
  }
  data["stages"] = stages;
  data["metrics"] = m;
  data["steps"] = steps;
  for (const char* which : {"before", "after"}) {
    absl::StatusOr<std::string> t = ReadFile((run_dir / "eval" / (std::string(which) + ".json")).string());
    nlohmann::json j = t.ok() ? nlohmann::json::parse(*t, nullptr, false) : nlohmann::json();
    data[which] = j.is_discarded() ? nlohmann::json() : j;
  }
  std::map<std::string, Task> tasks;
  if (config_text.ok()) {
    absl::StatusOr<RunConfig> cfg = ParseConfig(*config_text, "config.yaml");
    if (cfg.ok() && !cfg->eval.data.empty()) {
      absl::StatusOr<std::vector<Task>> ts = LoadDataset(cfg->eval.data);
      if (ts.ok()) {
        for (Task& t : *ts) tasks[t.id] = std::move(t);
      }
    }
  }
  data["samples_before"] = Samples(run_dir / "eval" / "before_samples.jsonl", tasks, 6);
  data["samples_after"] = Samples(run_dir / "eval" / "after_samples.jsonl", tasks, 6);
  // JSON inside <script>: "</" must not close the element.
  const std::string json = absl::StrReplaceAll(data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                                               {{"</", "<\\/"}});
  const std::string page = absl::StrReplaceAll(kPage, {{"@DATA@", json}});
  return WriteFileAtomic((run_dir / "report.html").string(), page);
}

}  // namespace grpo
