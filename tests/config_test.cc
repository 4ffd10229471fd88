// The run config: one schema, strict parsing, overrides, validation.
#include "core/common/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>

namespace grpo {
namespace {

using ::testing::HasSubstr;

TEST(Config, EmbeddedDemoConfigIsValid) {
  absl::StatusOr<RunConfig> cfg = LoadConfigWithOverrides("", {});
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->run.name, "demo");
  EXPECT_GT(cfg->learner.max_steps, 0);
}

TEST(Config, EachSectionReadsItsKeysIncludingNestedOnes) {
  absl::StatusOr<RunConfig> cfg = ParseConfig(
      "learner:\n  lr: 0.5\n  serve:\n    port: 1234\nactor:\n  group_size: 7\n  temperature: 0.7\nmodel:\n  tie_word_embeddings: true\n",
      "t.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->learner.lr, 0.5);
  EXPECT_EQ(cfg->learner.serve.port, 1234);
  EXPECT_EQ(cfg->actor.group_size, 7);
  EXPECT_DOUBLE_EQ(cfg->actor.temperature, 0.7);
  EXPECT_TRUE(cfg->model.tie_word_embeddings);
}

TEST(Config, UnknownKeyIsRejectedWithFileLineAndName) {
  absl::StatusOr<RunConfig> cfg = ParseConfig("learner:\n  lr: 0.1\n  lrr: 0.2\n", "run.yaml");
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(std::string(cfg.status().message()), HasSubstr("run.yaml:3"));
  EXPECT_THAT(std::string(cfg.status().message()), HasSubstr("learner.lrr"));
}

TEST(Config, UnknownSectionIsRejected) {
  absl::StatusOr<RunConfig> cfg = ParseConfig("lerner:\n  lr: 0.1\n", "run.yaml");
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(std::string(cfg.status().message()), HasSubstr("unknown config section 'lerner'"));
}

TEST(Config, BadValueNamesKeyTypeAndValue) {
  absl::StatusOr<RunConfig> cfg = ParseConfig("actor:\n  group_size: lots\n", "run.yaml");
  ASSERT_FALSE(cfg.ok());
  std::string msg(cfg.status().message());
  EXPECT_THAT(msg, HasSubstr("run.yaml:2"));
  EXPECT_THAT(msg, HasSubstr("actor.group_size"));
  EXPECT_THAT(msg, HasSubstr("an integer"));
  EXPECT_THAT(msg, HasSubstr("'lots'"));
}

TEST(Config, InvalidYamlIsReported) {
  absl::StatusOr<RunConfig> cfg = ParseConfig("learner: [1, 2\n", "broken.yaml");
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(std::string(cfg.status().message()), HasSubstr("broken.yaml"));
}

TEST(Config, OverridesApplyInOrderAndAreChecked) {
  RunConfig cfg;
  ASSERT_TRUE(ApplyOverrides(cfg, {"learner.lr=0.25", "learner.lr=0.5", "reward.format_mode=lenient"}).ok());
  EXPECT_EQ(cfg.learner.lr, 0.5);
  EXPECT_EQ(cfg.reward.format_mode, "lenient");
  absl::Status s = ApplyOverrides(cfg, {"learner.nope=1"});
  EXPECT_THAT(std::string(s.message()), HasSubstr("unknown config key 'learner.nope'"));
  s = ApplyOverrides(cfg, {"learner.lr=fast"});
  EXPECT_THAT(std::string(s.message()), HasSubstr("learner.lr: expected a number"));
  s = ApplyOverrides(cfg, {"learner.lr"});
  EXPECT_THAT(std::string(s.message()), HasSubstr("section.key=value"));
}

TEST(Config, ValidationNamesTheField) {
  absl::StatusOr<RunConfig> cfg = LoadConfigWithOverrides("", {"actor.group_size=1"});
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(std::string(cfg.status().message()), HasSubstr("actor.group_size"));
  cfg = LoadConfigWithOverrides("", {"model.num_kv_heads=3"});
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(std::string(cfg.status().message()), HasSubstr("model.num_kv_heads"));
  cfg = LoadConfigWithOverrides("", {"reward.format_mode=loose"});
  EXPECT_THAT(std::string(cfg.status().message()), HasSubstr("reward.format_mode"));
  cfg = LoadConfigWithOverrides("", {"learner.delta_full_every=-1"});
  EXPECT_THAT(std::string(cfg.status().message()), HasSubstr("learner.delta_full_every"));
  for (const char* key : {"pipeline.words_share", "pipeline.base_words_share", "pipeline.base_mixed_share",
                          "pipeline.base_instruction_share", "pipeline.base_instruction_kept",
                          "pipeline.base_restated_share"}) {
    cfg = LoadConfigWithOverrides("", {std::string(key) + "=1.5"});
    ASSERT_FALSE(cfg.ok()) << key;
    EXPECT_THAT(std::string(cfg.status().message()), HasSubstr(key));
    EXPECT_TRUE(LoadConfigWithOverrides("", {std::string(key) + "=0.5"}).ok()) << key;
  }
}

TEST(Config, PipelineStagesAreR1sInOrderAndNeedTheirInputs) {
  RunConfig c;
  c.pipeline.stages = " cold_start, reasoning_rl ,final_rl";
  absl::StatusOr<std::vector<std::string>> st = PipelineStages(c.pipeline);
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(*st, (std::vector<std::string>{"cold_start", "reasoning_rl", "final_rl"}));
  c.pipeline.stages = "";
  ASSERT_TRUE(PipelineStages(c.pipeline).ok());
  EXPECT_TRUE(PipelineStages(c.pipeline)->empty());
  const std::vector<std::string> staged = {"pipeline.tasks=chains", "pipeline.base_docs=100",
                                           "pipeline.eval_before_after=true"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> sets = staged;
    sets.insert(sets.end(), extra.begin(), extra.end());
    return LoadConfigWithOverrides("", sets);
  };
  EXPECT_TRUE(with({"pipeline.stages=cold_start,reasoning_rl,rejection_sft,final_rl"}).ok());
  EXPECT_TRUE(with({"pipeline.stages=reasoning_rl"}).ok());
  const std::pair<std::vector<std::string>, const char*> bad[] = {
      {{"pipeline.stages=cold_start,warm_start"}, "unknown stage \"warm_start\""},
      {{"pipeline.stages=reasoning_rl,cold_start"}, "out of order"},
      {{"pipeline.stages=cold_start,cold_start"}, "listed twice"},
      {{"pipeline.stages=cold_start,,final_rl"}, "unknown stage \"\""},
      {{"pipeline.stages=cold_start", "pipeline.cold_start_tasks=0"}, "pipeline.cold_start_tasks"},
      {{"pipeline.stages=final_rl", "pipeline.final_rl_steps=0"}, "pipeline.final_rl_steps"},
      {{"pipeline.stages=rejection_sft", "pipeline.rejection_min_language=1.5"}, "pipeline.rejection_min_language"},
      {{"pipeline.stages=rejection_sft", "pipeline.rejection_lr=0"}, "pipeline.rejection_lr"},
      {{"pipeline.stages=reasoning_rl", "pipeline.rl_lr=-1"}, "pipeline.rl_lr"},
      {{"pipeline.stages=cold_start", "pipeline.eval_before_after=false"}, "eval_before_after"},
  };
  for (const auto& [sets, want] : bad) {
    absl::StatusOr<RunConfig> cfg = with(sets);
    ASSERT_FALSE(cfg.ok()) << sets.back();
    EXPECT_THAT(std::string(cfg.status().message()), HasSubstr(want)) << sets.back();
  }
  // The stages need the chain task and a base model.
  absl::StatusOr<RunConfig> cfg = LoadConfigWithOverrides("", {"pipeline.tasks=", "pipeline.base_docs=0",
                                                               "learner.eval_every=0", "pipeline.stages=cold_start"});
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(std::string(cfg.status().message()), HasSubstr("pipeline.stages"));
  cfg = LoadConfigWithOverrides("", {"pipeline.tasks=chains", "pipeline.base_docs=0", "model.path=",
                                     "pipeline.eval_before_after=true", "pipeline.stages=cold_start"});
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(std::string(cfg.status().message()), HasSubstr("base model"));
}

// Every config the project ships loads and validates; r1.yaml runs R1's four stages.
TEST(Config, TheShippedConfigsLoad) {
  const char* src = std::getenv("GRPO_SOURCE_DIR");
  const std::string dir = std::string(src != nullptr ? src : GRPO_DEFAULT_SOURCE_DIR) + "/configs";
  for (const char* name : {"demo.yaml", "demo-cluster.yaml", "cluster.yaml", "r1.yaml"}) {
    absl::StatusOr<RunConfig> cfg = LoadConfigWithOverrides(dir + "/" + name, {});
    ASSERT_TRUE(cfg.ok()) << name << ": " << cfg.status();
    if (std::string(name) == "r1.yaml") {
      absl::StatusOr<std::vector<std::string>> st = PipelineStages(cfg->pipeline);
      ASSERT_TRUE(st.ok());
      EXPECT_EQ(*st, R1StageNames());
      EXPECT_GT(cfg->reward.language_weight, 0);
      EXPECT_GT(cfg->pipeline.words_share, 0);
    }
  }
}

TEST(Config, ActorDeviceAndSecurityFieldsAreChecked) {
  for (const char* ok : {"actor.device=cuda:0", "actor.dtype=bf16"}) EXPECT_TRUE(LoadConfigWithOverrides("", {ok}).ok()) << ok;
  EXPECT_TRUE(LoadConfigWithOverrides("", {"security.ca_file=a", "security.cert_file=b", "security.key_file=c",
                                           "security.token_file=t"})
                  .ok());
  const std::pair<std::vector<std::string>, const char*> bad[] = {
      {{"actor.device=tpu"}, "actor.device"},
      {{"actor.dtype=fp16"}, "actor.dtype"},
      {{"security.ca_file=a", "security.key_file=c"}, "security.cert_file"},
      {{"security.token_file=t"}, "security.token_file"},
  };
  for (const auto& [sets, field] : bad) {
    absl::StatusOr<RunConfig> cfg = LoadConfigWithOverrides("", sets);
    ASSERT_FALSE(cfg.ok()) << sets[0];
    EXPECT_THAT(std::string(cfg.status().message()), HasSubstr(field)) << sets[0];
  }
}

TEST(Config, LearnerOptimisationAndDataParallelFieldsAreChecked) {
  for (const char* ok : {"learner.device=cuda", "learner.device=cuda:1", "learner.dtype=bf16", "learner.epochs=3"}) {
    EXPECT_TRUE(LoadConfigWithOverrides("", {ok}).ok()) << ok;
  }
  EXPECT_TRUE(LoadConfigWithOverrides("", {"learner.world_size=2", "learner.rank=1"}).ok());
  const std::pair<const char*, const char*> bad[] = {
      {"learner.device=gpu", "learner.device"},          {"learner.device=cuda:x", "learner.device"},
      {"learner.dtype=fp16", "learner.dtype"},           {"learner.epochs=0", "learner.epochs"},
      {"learner.minibatches=0", "learner.minibatches"},  {"learner.micro_batch_size=-1", "learner.micro_batch_size"},
      {"learner.rank=1", "learner.rank"},                {"learner.world_size=9", "learner.world_size"},
  };
  for (const auto& [set, field] : bad) {
    absl::StatusOr<RunConfig> cfg = LoadConfigWithOverrides("", {set});
    ASSERT_FALSE(cfg.ok()) << set;
    EXPECT_THAT(std::string(cfg.status().message()), HasSubstr(field)) << set;
  }
}

TEST(Config, MissingFileIsAClearError) {
  absl::StatusOr<RunConfig> cfg = LoadConfig("/nonexistent/run.yaml");
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(std::string(cfg.status().message()), HasSubstr("/nonexistent/run.yaml"));
}

TEST(Config, YamlDumpParsesBackToTheSameConfig) {
  absl::StatusOr<RunConfig> a = LoadConfigWithOverrides("", {"learner.lr=0.125", "model.charset=ab\"c: d", "run.dir=/tmp/x y"});
  ASSERT_TRUE(a.ok());
  std::string yaml = ConfigToYaml(*a);
  absl::StatusOr<RunConfig> b = ParseConfig(yaml, "dump");
  ASSERT_TRUE(b.ok()) << b.status() << "\n" << yaml;
  EXPECT_EQ(ConfigToYaml(*b), yaml);
  EXPECT_EQ(b->model.charset, "ab\"c: d");
  EXPECT_EQ(b->learner.lr, 0.125);
}

}  // namespace
}  // namespace grpo
