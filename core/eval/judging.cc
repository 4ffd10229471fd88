#include "core/eval/judging.h"

#include <utility>

namespace grpo::eval {

v1::WorkItem TaskToWorkItem(const Task& task) {
  v1::WorkItem item;
  item.set_prompt_id(task.id);
  item.set_prompt(task.prompt);
  item.set_answer(task.answer);
  item.set_task(task.task);
  item.set_language(task.language);
  if (task.tests.is_array()) {
    for (const auto& t : task.tests) {
      v1::TestCase* c = item.add_tests();
      c->set_input(t.value("input", ""));
      c->set_output(t.value("output", ""));
    }
  }
  return item;
}

v1::RolloutGroup GroupForJudging(const Task& task, const std::vector<int64_t>& prompt_ids,
                                 const std::vector<SampledCompletion>& completions,
                                 const std::string& answer_extraction, double temperature) {
  v1::RolloutGroup g;
  *g.mutable_item() = TaskToWorkItem(task);
  g.set_answer_extraction(answer_extraction);
  g.set_temperature(static_cast<float>(temperature));
  for (int64_t id : prompt_ids) g.add_prompt_token_ids(static_cast<int32_t>(id));
  for (const SampledCompletion& c : completions) {
    v1::Completion* pc = g.add_completions();
    for (int64_t t : c.token_ids) pc->add_token_ids(static_cast<int32_t>(t));
    for (float lp : c.logprobs) pc->add_logprobs(lp);
    pc->set_text(c.text);
    pc->set_truncated(c.truncated);
  }
  return g;
}

absl::StatusOr<std::vector<Judgement>> JudgementsOf(const v1::ScoredGroup& scored) {
  if (!scored.error().empty()) return absl::InvalidArgumentError(scored.error());
  std::vector<Judgement> out;
  for (const v1::Score& s : scored.scores()) {
    Judgement j;
    const auto& m = s.components();
    j.correct = m.count("accuracy") && m.at("accuracy") >= 1.0f - 1e-6f;
    j.format = m.count("format") && m.at("format") >= 0.5f;
    if (s.has_answer()) j.answer = s.answer();
    if (m.count("language")) j.language = m.at("language");
    j.outcome = s.outcome();
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace grpo::eval
