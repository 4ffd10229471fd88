// The learner's validation (learner.eval_every): the current policy answers every
// held-out task (eval.data) eval.k times and the reward service judges the answers,
// read as eval.answer_extraction says. Runs on the trainer thread between steps.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "core/common/config.h"
#include "core/common/dataset.h"
#include "core/policy/evaluate.h"
#include "core/policy/policy.h"
#include "grpo/v1/reward.grpc.pb.h"
#include <nlohmann/json.hpp>

namespace grpo {

class Validator {
 public:
  // Loads eval.data; errors name the file and line.
  static absl::StatusOr<std::unique_ptr<Validator>> Create(const RunConfig& cfg);

  absl::StatusOr<EvalOutput> Run(const Policy& policy);

  // eval_pass1, eval_passk, eval_majk, eval_format, eval_len, eval_language (language
  // consistency), eval_k, eval_n, eval_s.
  static nlohmann::json MetricsFields(const EvalOutput& out);

 private:
  Validator(const RunConfig& cfg, std::vector<Task> tasks);
  RunConfig cfg_;
  std::vector<Task> tasks_;
  std::unique_ptr<v1::Reward::Stub> reward_;
};

}  // namespace grpo
