#include "services/reward/scorer.h"

#include <chrono>

#include <future>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/common/logging.h"
#include "core/common/utf8.h"
#include "core/eval/judging.h"
#include "core/math/math_checker.h"
#include "core/sandbox/sandbox.h"
#include "core/sandbox/sandbox_pool.h"
#include "services/reward/rewards.h"

namespace grpo::reward {

v1::WorkItem TaskToWorkItem(const Task& task) { return eval::TaskToWorkItem(task); }

namespace {

// reward.answer_extraction (and RolloutGroup.answer_extraction) as a mode.
math::ExtractMode ExtractModeFromName(const std::string& ex) {
  return ex == "boxed"               ? math::ExtractMode::kBoxed
         : ex == "answer_then_boxed" ? math::ExtractMode::kAnswerThenBoxed
         : ex == "free"              ? math::ExtractMode::kFreeText
                                     : math::ExtractMode::kAnswerTag;
}

}  // namespace

struct Scorer::Impl {
  RewardConfig cfg;
  int64_t overlong_max = 0;
  math::ExtractMode extract = math::ExtractMode::kAnswerTag;
  std::unique_ptr<math::MathChecker> math;
  // Null when the sandbox could not be set up; code completions then carry
  // sandbox_error instead of a score.
  std::unique_ptr<sandbox::SandboxPool> pool;
  std::string sandbox_error;
  sandbox::Comparison comparison;
  sandbox::RewardMode code_mode = sandbox::RewardMode::kFractionPassed;
  Observers observers;

  // Reports a finished sandbox run to the observer: its status and the wall time of
  // its executions (compile and tests).
  void Observe(const sandbox::RunResult& r) const {
    if (!observers.sandbox_run) return;
    int64_t ms = r.tests.empty() ? r.main.wall_ms : 0;
    for (const auto& t : r.tests) ms += t.wall_ms;
    observers.sandbox_run(sandbox::RunStatusName(r.status), static_cast<double>(ms) / 1000.0);
  }

  // Accuracy of a math completion: 1/0, and an error when it could not be decided.
  // The extracted answer goes to `score`.
  std::pair<double, std::string> MathAccuracy(const v1::WorkItem& item, const std::string& text,
                                              math::ExtractMode mode, v1::Score* score) const {
    std::optional<std::string> answer = math::ExtractAnswer(text, mode);
    if (!answer || answer->empty()) return {0.0, ""};  // no answer given: plainly wrong
    score->set_answer(*answer);
    const auto t0 = std::chrono::steady_clock::now();
    math::CheckResult r = math->Check(*answer, item.answer());
    if (observers.math_check) {
      observers.math_check(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return {r.correct ? 1.0 : 0.0, r.error};
  }

  // The program a code completion submits: the answer block (the fenced block in it, when
  // it holds one); else, in the text before a closing </answer> that opens nowhere, the
  // last fenced block, where one opened and never closed runs to the end; else that text.
  static std::string ProgramOf(const std::string& text) {
    if (std::optional<std::string> a = ExtractAnswer(text)) {
      std::string inner = *a;
      size_t fence = inner.find("```");
      if (fence == std::string::npos) return inner;
      return ProgramOf(inner);
    }
    const std::string t = text.substr(0, text.find("</answer>"));
    std::vector<size_t> fences;
    for (size_t at = t.find("```"); at != std::string::npos; at = t.find("```", at + 3)) fences.push_back(at);
    if (fences.empty()) return t;
    if (fences.size() % 2 == 1) {
      // An odd last fence with nothing after it closes what came before it (after the
      // fence before it, if any); otherwise it opens a block that runs to the end.
      const size_t last = fences.back();
      if (t.find_first_not_of(" \t\r\n", last + 3) == std::string::npos) {
        const size_t from = fences.size() > 1 ? fences[fences.size() - 2] + 3 : 0;
        return t.substr(from, last - from);
      }
      fences.push_back(t.size());
    }
    // Fences pair up in order: the last pair is the block.
    const size_t open = fences[fences.size() - 2], close = fences.back();
    const size_t body = t.find('\n', open);  // past the info string ("python")
    if (body == std::string::npos || body >= close) return "";
    return t.substr(body + 1, close - body - 1);
  }

  std::optional<std::future<sandbox::RunResult>> SubmitCode(const v1::WorkItem& item, const std::string& text,
                                                            std::string* error) const {
    if (!pool) {
      *error = absl::StrCat("sandbox unavailable: ", sandbox_error);
      return std::nullopt;
    }
    absl::StatusOr<sandbox::Language> lang = sandbox::ParseLanguage(item.language());
    if (!lang.ok()) {
      *error = absl::StrCat("code task: ", lang.status().message());
      return std::nullopt;
    }
    if (item.tests_size() == 0) {
      *error = "code task has no tests";
      return std::nullopt;
    }
    sandbox::RunRequest req;
    req.program.language = *lang;
    req.program.source = ProgramOf(text);
    for (const v1::TestCase& t : item.tests()) req.tests.push_back({t.input(), t.output()});
    req.limits.time_limit_ms = cfg.sandbox_time_limit_ms;
    req.limits.memory_mb = cfg.sandbox_memory_mb;
    req.comparison = comparison;
    req.stop_on_first_failure = code_mode == sandbox::RewardMode::kAllOrNothing;
    return pool->Submit(std::move(req));
  }

  // A submitted program's result: its accuracy, its outcome (the sandbox status; a
  // program that could not be run at all is an internal_error) on `score`, and an error
  // when the sandbox failed.
  double Collect(std::optional<std::future<sandbox::RunResult>>& run, std::string* error, v1::Score* score) const {
    if (!run) {
      score->set_outcome(std::string(sandbox::RunStatusName(sandbox::RunStatus::kInternalError)));
      return 0.0;
    }
    sandbox::RunResult r = run->get();
    Observe(r);
    score->set_outcome(std::string(sandbox::RunStatusName(r.status)));
    if (r.status == sandbox::RunStatus::kInternalError) *error = absl::StrCat("sandbox: ", r.main.error);
    return sandbox::Reward(r, code_mode);
  }

  // Everything but accuracy, and the combination.
  void Finish(const v1::WorkItem& item, const CompletionToScore& c, double accuracy, const std::string& error,
              v1::Score* s) const {
    const double format = FormatReward(c.text, cfg.format_mode);
    const double language = LanguageConsistencyReward(item.prompt(), c.text, item.language());
    const double overlong =
        c.num_tokens < 0 ? 0.0 : OverlongPenalty(c.num_tokens, overlong_max, cfg.overlong_buffer_tokens);
    auto& comps = *s->mutable_components();
    comps["accuracy"] = static_cast<float>(accuracy);
    comps["format"] = static_cast<float>(format);
    comps["language"] = static_cast<float>(language);
    comps["overlong"] = static_cast<float>(overlong);
    double reward = cfg.accuracy_weight * accuracy + cfg.format_weight * format + cfg.language_weight * language +
                    cfg.overlong_weight * overlong;
    if (c.truncated && cfg.truncated == "zero") reward = 0.0;
    s->set_reward(static_cast<float>(reward));
    // A proto string must be valid UTF-8; an error may quote what a program printed.
    if (!error.empty()) s->set_error(Utf8Lossy(error));
  }
};

Scorer::Scorer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

void Scorer::SetObservers(Observers observers) { impl_->observers = std::move(observers); }

bool Scorer::SandboxAvailable() const { return impl_->pool != nullptr; }
Scorer::~Scorer() = default;

absl::StatusOr<std::unique_ptr<Scorer>> Scorer::Create(const RunConfig& cfg) {
  auto impl = std::make_unique<Impl>();
  impl->cfg = cfg.reward;
  impl->overlong_max = cfg.reward.overlong_max_tokens > 0 ? cfg.reward.overlong_max_tokens : cfg.actor.max_new_tokens;
  impl->extract = ExtractModeFromName(cfg.reward.answer_extraction);
  math::CheckOptions mo;
  mo.rel_tol = cfg.reward.math_rel_tol;
  mo.budget = absl::Milliseconds(cfg.reward.math_timeout_ms);
  mo.symbolic = cfg.reward.math_symbolic;
  mo.max_workers = static_cast<int>(std::max<int64_t>(1, cfg.reward.workers));
  impl->math = std::make_unique<math::MathChecker>(mo);

  absl::StatusOr<sandbox::Comparison::Mode> mode = sandbox::ParseComparisonMode(cfg.reward.code_compare);
  if (!mode.ok()) return absl::InvalidArgumentError(absl::StrCat("reward.code_compare: ", mode.status().message()));
  impl->comparison.mode = *mode;
  impl->comparison.abs_tol = cfg.reward.code_float_tol;
  impl->comparison.rel_tol = cfg.reward.code_float_tol;
  impl->code_mode = cfg.reward.code_reward == "all_or_nothing" ? sandbox::RewardMode::kAllOrNothing
                                                               : sandbox::RewardMode::kFractionPassed;
  // A run without code tasks must not need a sandbox: if it cannot be set up (no
  // cgroups, no bwrap), say so once and score code completions with that error.
  sandbox::SandboxOptions so;
  so.allow_without_cgroups = !cfg.reward.sandbox_require_cgroups;
  so.python_zygote = cfg.reward.sandbox_zygote;
  absl::StatusOr<std::unique_ptr<sandbox::Sandbox>> sb = sandbox::Sandbox::Create(so);
  if (sb.ok()) {
    impl->pool = std::make_unique<sandbox::SandboxPool>(std::shared_ptr<const sandbox::Sandbox>(std::move(*sb)),
                                                        static_cast<int>(cfg.reward.sandbox_workers),
                                                        /*queue_bound=*/static_cast<size_t>(64 * cfg.reward.sandbox_workers));
  } else {
    impl->sandbox_error = std::string(sb.status().message());
    spdlog::warn("code sandbox unavailable ({}); code tasks will score 0 with an error", impl->sandbox_error);
  }
  return std::unique_ptr<Scorer>(new Scorer(std::move(impl)));
}

v1::Score Scorer::ScoreCompletion(const v1::WorkItem& item, const CompletionToScore& c,
                                  const std::string& answer_extraction) const {
  v1::Score s;
  double accuracy = 0.0;
  std::string error;
  if (item.task() == "math" || item.task().empty()) {
    const math::ExtractMode mode = answer_extraction.empty() ? impl_->extract : ExtractModeFromName(answer_extraction);
    std::tie(accuracy, error) = impl_->MathAccuracy(item, c.text, mode, &s);
  } else if (item.task() == "code") {
    s.set_answer(Impl::ProgramOf(c.text));
    std::optional<std::future<sandbox::RunResult>> run = impl_->SubmitCode(item, c.text, &error);
    accuracy = impl_->Collect(run, &error, &s);
  } else {
    error = absl::StrCat("task kind '", item.task(), "' is not scored by this reward service");
  }
  impl_->Finish(item, c, accuracy, error, &s);
  return s;
}

v1::GroupScores Scorer::Scores(const v1::RolloutGroup& group) const {
  v1::GroupScores out;
  out.set_lease_id(group.item().lease_id());
  out.set_prompt_id(group.item().prompt_id());
  if (group.completions_size() == 0) {
    out.set_error("group has no completions");
    return out;
  }
  for (int i = 0; i < group.completions_size(); ++i) {
    const v1::Completion& c = group.completions(i);
    if (c.token_ids_size() != c.logprobs_size()) {
      out.set_error(absl::StrCat("completion ", i, ": ", c.token_ids_size(), " token ids but ", c.logprobs_size(),
                                 " logprobs"));
      return out;
    }
  }
  const std::string& ex = group.answer_extraction();
  if (!ex.empty() && ex != "answer_tag" && ex != "boxed" && ex != "answer_then_boxed" && ex != "free") {
    out.set_error(absl::StrCat("unknown answer_extraction '", ex, "' (answer_tag, boxed, answer_then_boxed, free)"));
    return out;
  }
  const v1::WorkItem& item = group.item();
  auto completion = [&](int i) {
    const v1::Completion& c = group.completions(i);
    return CompletionToScore{c.text(), c.token_ids_size(), c.truncated()};
  };
  if (item.task() != "code") {
    for (int i = 0; i < group.completions_size(); ++i) {
      *out.add_scores() = ScoreCompletion(item, completion(i), group.answer_extraction());
    }
    return out;
  }
  // Code: all completions go to the sandbox pool at once, then are collected in order.
  std::vector<std::optional<std::future<sandbox::RunResult>>> runs;
  std::vector<std::string> errors(group.completions_size());
  for (int i = 0; i < group.completions_size(); ++i) {
    runs.push_back(impl_->SubmitCode(item, group.completions(i).text(), &errors[i]));
  }
  for (int i = 0; i < group.completions_size(); ++i) {
    v1::Score* score = out.add_scores();
    const double accuracy = impl_->Collect(runs[i], &errors[i], score);
    score->set_answer(Impl::ProgramOf(group.completions(i).text()));
    impl_->Finish(item, completion(i), accuracy, errors[i], score);
  }
  return out;
}

v1::ScoredGroup Scorer::ScoreGroup(const v1::RolloutGroup& group) const {
  v1::GroupScores scores = Scores(group);
  v1::ScoredGroup out;
  *out.mutable_group() = group;
  out.mutable_scores()->Swap(scores.mutable_scores());
  out.set_error(scores.error());
  return out;
}

}  // namespace grpo::reward
