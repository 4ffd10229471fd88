// Evaluation metrics over sampled completions of held-out tasks: pass@1, pass@k,
// maj@k, format share and response length, per task type and overall. Pure functions
// (no LibTorch, no I/O): `grpo eval`, the learner's validation and the tests share them,
// and a samples file written from EvalSample lines recomputes the same report.
//
//   pass@1  the mean over tasks of the share of correct samples (the R1 paper's pass@1:
//           k samples at temperature > 0, averaged)
//   pass@k  the unbiased estimator of Chen et al. 2021, 1 - C(n-c, k) / C(n, k), with n
//           the task's samples and c the correct ones (n = k here: any sample correct)
//   maj@k   the answer most samples agree on (normalised extracted answers; samples with
//           no answer do not vote; a tie goes to the answer that appeared first) is
//           correct; a task where no sample gave an answer counts as wrong
//   format  share of samples in the rewarded format
//   response_len_mean  mean completion length in tokens
//   outcomes  code: the share of samples by how the program fared (ok, wrong_answer,
//           compile_error, runtime_error, time_limit, ...)
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace grpo::eval {

struct EvalSample {
  std::string id;     // task id
  std::string task;   // "math" or "code"
  int64_t sample = 0;  // 0..k-1
  std::optional<std::string> answer;  // normalised extracted answer; nullopt: none found
  bool correct = false;
  bool format = false;
  int64_t length = 0;  // completion tokens
  double language_consistency = 1.0;  // share of the chain of thought in the asked language
  std::string outcome;  // code: the sandbox status ("ok", "wrong_answer", "compile_error", ...); "" for math
};

struct EvalMetrics {
  int64_t n = 0;  // tasks
  int64_t k = 0;  // samples per task (the smallest when tasks differ)
  double pass1 = 0, passk = 0, majk = 0, format = 0, response_len_mean = 0;
  double language_consistency = 0;  // mean over samples
  // Code: the share of samples by outcome (sandbox status); empty when no sample has one.
  std::map<std::string, double> outcomes;
};

struct EvalReport {
  EvalMetrics overall;
  std::map<std::string, EvalMetrics> by_task;  // "math", "code"
};

// 1 - C(n - c, k) / C(n, k), computed as a product (no overflow); 1 when n - c < k.
double PassAtK(int64_t n, int64_t c, int64_t k);

// The majority answer's correctness for one task's samples (in sample order).
bool MajorityCorrect(const std::vector<const EvalSample*>& samples);

// A key under which equal answers vote together: whitespace, $ and a trailing period
// dropped, \boxed{} / \text{} unwrapped, numbers canonical (1,000 -> 1000, 07 -> 7,
// 2.50 -> 2.5, +3 -> 3, -0 -> 0). Other text is kept as is.
std::string NormalizeForVote(const std::string& answer);

// Metrics of `samples` (any order). Tasks are grouped by id; `k` of a task is its
// sample count.
EvalReport Summarize(const std::vector<EvalSample>& samples);

// {"pass@1", "pass@k", "maj@k", "k", "format", "response_len_mean", "n",
//  "language_consistency"}, and "outcomes" ({status: share of samples}) where samples
// have outcomes (code tasks).
nlohmann::ordered_json MetricsJson(const EvalMetrics& m);
// MetricsJson(overall) plus "by_task": {type: MetricsJson}.
nlohmann::ordered_json ReportJson(const EvalReport& r);
// A plain-text table, one row per task type and one for all.
std::string ReportTable(const EvalReport& r);

// One samples-file line: id, sample, answer (or null), correct, format, length, task,
// language_consistency, and outcome where there is one.
nlohmann::ordered_json SampleJson(const EvalSample& s);
// The sample a samples-file line describes (fields missing or of the wrong type throw
// nlohmann::json::exception).
EvalSample SampleFromJson(const nlohmann::json& j);

}  // namespace grpo::eval
