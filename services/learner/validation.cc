#include "services/learner/validation.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/rpc/rpc.h"

namespace grpo {

absl::StatusOr<std::unique_ptr<Validator>> Validator::Create(const RunConfig& cfg) {
  absl::StatusOr<std::vector<Task>> tasks = LoadDataset(cfg.eval.data);
  if (!tasks.ok()) return absl::InvalidArgumentError(absl::StrCat("eval.data: ", tasks.status().message()));
  return std::unique_ptr<Validator>(new Validator(cfg, std::move(*tasks)));
}

Validator::Validator(const RunConfig& cfg, std::vector<Task> tasks)
    : cfg_(cfg), tasks_(std::move(tasks)), reward_(v1::Reward::NewStub(rpc::MakeChannel(cfg.endpoints.reward))) {}

absl::StatusOr<EvalOutput> Validator::Run(const Policy& policy) {
  JudgeFn judge = [this](const Task& task, const std::vector<int64_t>& prompt_ids,
                         const std::vector<SampledCompletion>& comps) -> absl::StatusOr<std::vector<Judgement>> {
    v1::RolloutGroup g = eval::GroupForJudging(task, prompt_ids, comps, cfg_.eval.answer_extraction,
                                               cfg_.eval.temperature);
    auto ctx = rpc::ContextWithDeadline(absl::Seconds(30));
    ctx->set_wait_for_ready(true);
    auto stream = reward_->Score(ctx.get());
    v1::GroupScores scores;
    const bool ok = stream->Write(g) && stream->Read(&scores);
    stream->WritesDone();
    grpc::Status s = stream->Finish();
    if (!s.ok()) return rpc::ToAbsl(s);
    if (!ok) return absl::UnavailableError("the reward service closed the stream without a score");
    v1::ScoredGroup sg;  // the reward service sends scores only; the group is ours
    *sg.mutable_group() = std::move(g);
    sg.mutable_scores()->Swap(scores.mutable_scores());
    sg.set_error(scores.error());
    return eval::JudgementsOf(sg);
  };
  return EvaluatePolicy(policy, tasks_, EvalSettings::FromConfig(cfg_), judge);
}

nlohmann::json Validator::MetricsFields(const EvalOutput& out) {
  const eval::EvalMetrics& m = out.report.overall;
  return {{"eval_pass1", m.pass1}, {"eval_passk", m.passk}, {"eval_majk", m.majk}, {"eval_format", m.format},
          {"eval_len", m.response_len_mean}, {"eval_language", m.language_consistency}, {"eval_k", m.k},
          {"eval_n", m.n}, {"eval_s", out.seconds}};
}

}  // namespace grpo
