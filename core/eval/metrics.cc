#include "core/eval/metrics.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace grpo::eval {

double PassAtK(int64_t n, int64_t c, int64_t k) {
  if (n <= 0 || k <= 0) return 0.0;
  k = std::min(k, n);
  if (n - c < k) return 1.0;
  // C(n-c, k) / C(n, k) = prod_{i = n-c+1}^{n} (1 - k / i)
  double ratio = 1.0;
  for (int64_t i = n - c + 1; i <= n; ++i) ratio *= 1.0 - static_cast<double>(k) / static_cast<double>(i);
  return 1.0 - ratio;
}

bool MajorityCorrect(const std::vector<const EvalSample*>& samples) {
  // answer -> (votes, first position, correct)
  struct Vote {
    int64_t votes = 0;
    size_t first = 0;
    bool correct = false;
  };
  std::map<std::string, Vote> votes;
  for (size_t i = 0; i < samples.size(); ++i) {
    const EvalSample& s = *samples[i];
    if (!s.answer) continue;
    auto [it, inserted] = votes.try_emplace(*s.answer);
    if (inserted) {
      it->second.first = i;
      it->second.correct = s.correct;
    }
    ++it->second.votes;
  }
  const Vote* best = nullptr;
  for (const auto& [answer, v] : votes) {
    if (!best || v.votes > best->votes || (v.votes == best->votes && v.first < best->first)) best = &v;
  }
  return best && best->correct;
}

namespace {

// Canonical text of a plain decimal number, or nullopt when `s` is not one.
std::optional<std::string> CanonicalNumber(std::string s) {
  if (s.empty()) return std::nullopt;
  bool neg = false;
  if (s[0] == '+' || s[0] == '-') {
    neg = s[0] == '-';
    s.erase(0, 1);
  }
  // Thousands separators: 1,000,000 (groups of three only).
  if (s.find(',') != std::string::npos) {
    const size_t dot = s.find('.');
    std::vector<std::string> parts = absl::StrSplit(s.substr(0, dot), ',');
    if (parts[0].empty() || parts[0].size() > 3) return std::nullopt;
    for (size_t i = 1; i < parts.size(); ++i) {
      if (parts[i].size() != 3) return std::nullopt;
    }
    s = absl::StrJoin(parts, "") + (dot == std::string::npos ? "" : s.substr(dot));
  }
  size_t dot = s.find('.');
  std::string ip = s.substr(0, dot), fp = dot == std::string::npos ? "" : s.substr(dot + 1);
  if (ip.empty() && fp.empty()) return std::nullopt;
  for (char ch : ip + fp) {
    if (!std::isdigit(static_cast<unsigned char>(ch))) return std::nullopt;
  }
  while (ip.size() > 1 && ip[0] == '0') ip.erase(0, 1);
  if (ip.empty()) ip = "0";
  while (!fp.empty() && fp.back() == '0') fp.pop_back();
  std::string out = fp.empty() ? ip : ip + "." + fp;
  if (neg && out != "0") out = "-" + out;
  return out;
}

}  // namespace

std::string NormalizeForVote(const std::string& answer) {
  std::string s;
  for (char ch : answer) {
    if (!absl::ascii_isspace(static_cast<unsigned char>(ch)) && ch != '$') s += ch;
  }
  for (const char* wrap : {"\\boxed{", "\\text{", "\\mathrm{"}) {
    const size_t n = std::string(wrap).size();
    if (s.size() > n && s.compare(0, n, wrap) == 0 && s.back() == '}') s = s.substr(n, s.size() - n - 1);
  }
  while (!s.empty() && s.back() == '.') s.pop_back();
  if (std::optional<std::string> num = CanonicalNumber(s)) return *num;
  return s;
}

namespace {

struct Acc {
  int64_t n = 0, k = -1;
  double pass1 = 0, passk = 0, majk = 0, format = 0, len = 0, language = 0;
  int64_t samples = 0;
  std::map<std::string, int64_t> outcomes;
  void Add(const std::vector<const EvalSample*>& ss) {
    const int64_t kk = static_cast<int64_t>(ss.size());
    int64_t c = 0, f = 0, l = 0;
    for (const EvalSample* s : ss) {
      if (!s->outcome.empty()) ++outcomes[s->outcome];
      c += s->correct;
      f += s->format;
      l += s->length;
      language += s->language_consistency;
    }
    ++n;
    k = k < 0 ? kk : std::min(k, kk);
    pass1 += static_cast<double>(c) / static_cast<double>(kk);
    passk += PassAtK(kk, c, kk);
    majk += MajorityCorrect(ss) ? 1.0 : 0.0;
    format += static_cast<double>(f);
    len += static_cast<double>(l);
    samples += kk;
  }
  EvalMetrics Done() const {
    EvalMetrics m;
    m.n = n;
    m.k = std::max<int64_t>(k, 0);
    if (n == 0) return m;
    m.pass1 = pass1 / static_cast<double>(n);
    m.passk = passk / static_cast<double>(n);
    m.majk = majk / static_cast<double>(n);
    m.format = format / static_cast<double>(samples);
    m.response_len_mean = len / static_cast<double>(samples);
    m.language_consistency = language / static_cast<double>(samples);
    for (const auto& [o, count] : outcomes) m.outcomes[o] = static_cast<double>(count) / static_cast<double>(samples);
    return m;
  }
};

}  // namespace

EvalReport Summarize(const std::vector<EvalSample>& samples) {
  // Tasks in first-seen order; each task's samples by sample index.
  std::map<std::string, std::vector<const EvalSample*>> by_id;
  std::vector<std::string> order;
  for (const EvalSample& s : samples) {
    auto [it, inserted] = by_id.try_emplace(s.id);
    if (inserted) order.push_back(s.id);
    it->second.push_back(&s);
  }
  Acc all;
  std::map<std::string, Acc> per;
  for (const std::string& id : order) {
    auto& ss = by_id[id];
    std::stable_sort(ss.begin(), ss.end(), [](const EvalSample* a, const EvalSample* b) { return a->sample < b->sample; });
    all.Add(ss);
    per[ss.front()->task].Add(ss);
  }
  EvalReport r;
  r.overall = all.Done();
  for (const auto& [task, acc] : per) r.by_task[task] = acc.Done();
  return r;
}

nlohmann::ordered_json MetricsJson(const EvalMetrics& m) {
  nlohmann::ordered_json j;
  j["pass@1"] = m.pass1;
  j["pass@k"] = m.passk;
  j["maj@k"] = m.majk;
  j["k"] = m.k;
  j["format"] = m.format;
  j["response_len_mean"] = m.response_len_mean;
  j["n"] = m.n;
  j["language_consistency"] = m.language_consistency;
  if (!m.outcomes.empty()) {
    nlohmann::ordered_json o = nlohmann::ordered_json::object();
    for (const auto& [name, share] : m.outcomes) o[name] = share;
    j["outcomes"] = o;
  }
  return j;
}

nlohmann::ordered_json ReportJson(const EvalReport& r) {
  nlohmann::ordered_json j = MetricsJson(r.overall);
  nlohmann::ordered_json by = nlohmann::ordered_json::object();
  for (const auto& [task, m] : r.by_task) by[task] = MetricsJson(m);
  j["by_task"] = by;
  return j;
}

std::string ReportTable(const EvalReport& r) {
  const int64_t k = r.overall.k;
  std::string out = absl::StrFormat("%-8s %6s %8s %8s %8s %8s %9s %9s\n", "task", "n", "pass@1",
                                    absl::StrCat("pass@", k), absl::StrCat("maj@", k), "format", "len", "language");
  auto row = [&](const std::string& name, const EvalMetrics& m) {
    absl::StrAppend(&out, absl::StrFormat("%-8s %6d %8.3f %8.3f %8.3f %8.3f %9.1f %9.3f\n", name, m.n, m.pass1,
                                          m.passk, m.majk, m.format, m.response_len_mean, m.language_consistency));
  };
  for (const auto& [task, m] : r.by_task) row(task, m);
  if (r.by_task.size() != 1) row("all", r.overall);
  return out;
}

nlohmann::ordered_json SampleJson(const EvalSample& s) {
  nlohmann::ordered_json j;
  j["id"] = s.id;
  j["sample"] = s.sample;
  j["answer"] = s.answer ? nlohmann::ordered_json(*s.answer) : nlohmann::ordered_json(nullptr);
  j["correct"] = s.correct;
  j["format"] = s.format;
  j["length"] = s.length;
  j["task"] = s.task;
  j["language_consistency"] = s.language_consistency;
  if (!s.outcome.empty()) j["outcome"] = s.outcome;
  return j;
}

EvalSample SampleFromJson(const nlohmann::json& j) {
  EvalSample s;
  s.id = j.at("id").get<std::string>();
  s.sample = j.at("sample").get<int64_t>();
  if (!j.at("answer").is_null()) s.answer = j.at("answer").get<std::string>();
  s.correct = j.at("correct").get<bool>();
  s.format = j.at("format").get<bool>();
  s.length = j.at("length").get<int64_t>();
  s.task = j.value("task", "math");
  s.language_consistency = j.value("language_consistency", 1.0);  // samples files from before it: 1
  s.outcome = j.value("outcome", "");
  return s;
}

}  // namespace grpo::eval
