// Overrides that turn the embedded demo config (the R1-Zero pipeline: generated data,
// a pretrained base model, evaluations, a report) back into the classic quick run the
// service tests need: a character model trained from random weights on "a+b=" sums.
#pragma once

#include <string>
#include <vector>

namespace grpo::testing {

inline std::vector<std::string> ClassicRunOverrides() {
  return {"pipeline.tasks=",           "pipeline.base_docs=0",        "pipeline.eval_before_after=false",
          "pipeline.report=false",     "learner.eval_every=0",        "model.path=",
          "model.prompt_template={prompt}=", "model.charset=0123456789+= ", "data.operators=+",      "data.max_operand=4",
          "actor.max_new_tokens=8",    "reward.format_mode=lenient", "learner.lr=0.001",
          "learner.beta=0.04"};
}

}  // namespace grpo::testing
