#include "core/policy/evaluate.h"

#include <algorithm>
#include <chrono>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "core/model/generator.h"

namespace grpo {

EvalSettings EvalSettings::FromConfig(const RunConfig& cfg) {
  EvalSettings s;
  s.k = cfg.eval.k;
  s.temperature = cfg.eval.temperature;
  s.top_p = cfg.eval.top_p;
  s.max_new_tokens = cfg.eval.max_new_tokens > 0 ? cfg.eval.max_new_tokens : cfg.actor.max_new_tokens;
  s.seed = static_cast<uint64_t>(cfg.eval.seed);
  s.max_batch = cfg.eval.max_batch;
  s.max_tasks = cfg.eval.max_tasks;
  return s;
}

absl::StatusOr<EvalOutput> EvaluatePolicy(const Policy& policy, const std::vector<Task>& all_tasks,
                                          const EvalSettings& settings, const JudgeFn& judge) {
  auto t0 = std::chrono::steady_clock::now();
  const size_t n_tasks = settings.max_tasks > 0 ? std::min<size_t>(all_tasks.size(), settings.max_tasks)
                                                : all_tasks.size();
  const int64_t k = settings.temperature > 0 ? settings.k : 1;
  std::vector<model::GenerationRequest> requests;
  std::vector<std::vector<int64_t>> prompts;
  for (size_t i = 0; i < n_tasks; ++i) {
    std::vector<int64_t> ids = EncodePrompt(policy, all_tasks[i].prompt);
    if (static_cast<int64_t>(ids.size()) >= policy.max_positions()) {
      return absl::InvalidArgumentError(absl::StrCat("task ", all_tasks[i].id, ": its prompt has ", ids.size(),
                                                     " tokens; the model's context is ", policy.max_positions()));
    }
    prompts.push_back(ids);
    requests.push_back({std::move(ids), k});
  }
  model::SamplingParams p;
  p.temperature = settings.temperature;
  p.top_p = settings.top_p;
  p.max_new_tokens = settings.max_new_tokens;
  p.stop_token_ids = policy.stop_token_ids;
  model::GeneratorOptions go;
  go.max_batch = settings.max_batch;
  model::Transformer net = policy.model;  // a handle: the policy's own module
  const bool was_training = net->is_training();
  net->eval();
  absl::StatusOr<std::vector<std::vector<model::SampledSequence>>> out;
  {
    model::Generator gen(net, go);
    try {
      out = gen.Generate(requests, p, settings.seed);
    } catch (const std::exception& e) {
      out = absl::InternalError(absl::StrCat("generation failed: ", e.what()));
    }
  }
  if (was_training) net->train();
  if (!out.ok()) return out.status();

  EvalOutput result;
  for (size_t i = 0; i < n_tasks; ++i) {
    std::vector<SampledCompletion> comps;
    for (const model::SampledSequence& s : (*out)[i]) {
      SampledCompletion c;
      c.token_ids = s.token_ids;
      c.logprobs = s.logprobs;
      c.text = policy.Decode(s.token_ids);
      c.truncated = s.truncated;
      comps.push_back(std::move(c));
    }
    absl::StatusOr<std::vector<Judgement>> j = judge(all_tasks[i], prompts[i], comps);
    if (!j.ok()) return absl::Status(j.status().code(), absl::StrCat("task ", all_tasks[i].id, ": ", j.status().message()));
    if (j->size() != comps.size()) return absl::InternalError("the judge returned the wrong number of judgements");
    std::vector<std::string> texts;
    for (size_t s = 0; s < comps.size(); ++s) {
      eval::EvalSample e;
      e.id = all_tasks[i].id;
      e.task = all_tasks[i].task;
      e.sample = static_cast<int64_t>(s);
      if ((*j)[s].answer) e.answer = eval::NormalizeForVote(*(*j)[s].answer);
      e.correct = (*j)[s].correct;
      e.format = (*j)[s].format;
      e.length = static_cast<int64_t>(comps[s].token_ids.size());
      e.language_consistency = (*j)[s].language;
      e.outcome = (*j)[s].outcome;
      result.samples.push_back(std::move(e));
      texts.push_back(comps[s].text);
    }
    result.texts.push_back(std::move(texts));
  }
  result.report = eval::Summarize(result.samples);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace grpo
