// One configuration schema for a whole run. Every service reads the same YAML file and
// uses its own section; `--set section.key=value` overrides any field. Unknown sections
// or keys and values of the wrong type are rejected with a message naming the file, the
// line and the key.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace grpo {

// Addresses (host:port) of the services, shared by every section.
struct EndpointsConfig {
  std::string coordinator = "127.0.0.1:50051";
  std::string reward = "127.0.0.1:50052";
  std::string learner = "127.0.0.1:50053";
};

// Where and how a service serves: gRPC (with health checking) and Prometheus metrics.
struct ServeConfig {
  std::string host = "127.0.0.1";
  int64_t port = 0;          // gRPC port; 0 lets the OS choose
  int64_t metrics_port = 0;  // Prometheus /metrics port; 0 lets the OS choose
};

struct RunSection {
  std::string name = "demo";
  std::string dir;  // run directory (logs, metrics.jsonl, state); set by the launcher
  int64_t seed = 1;
  // `grpo run` on one machine: how many actor and reward processes it starts (each
  // actor spreads its batches over every reward server). Learner ranks: learner.world_size.
  int64_t actors = 1;
  int64_t reward_servers = 1;
  // `grpo run` restarts a service that dies (a signal, a non-zero exit other than a
  // configuration error) with backoff, up to this many times per service; one more
  // death stops the run. 0: the first death stops the run.
  int64_t max_restarts = 5;
};

struct DataConfig {
  // Dataset JSONL (see docs/ARCHITECTURE.md). When empty, `generator` makes one.
  std::string path;
  std::string generator = "arithmetic";  // "arithmetic"
  int64_t num_tasks = 512;
  int64_t max_operand = 9;  // operands drawn from [0, max_operand]
  std::string operators = "+";
  int64_t max_epochs = 0;  // 0: cycle over the dataset forever
};

struct ModelSection {
  // A Hugging Face model directory (config.json, safetensors, tokenizer.json). When set,
  // the model and its tokenizer come from it and the shape fields below are ignored.
  std::string path;
  // How a task's prompt becomes the model's input: plain (prompt_template), chatml, llama3.
  std::string chat_template = "plain";
  std::string system_prompt;   // system message for chatml / llama3
  std::string arch = "llama";  // llama | qwen2 | qwen3 (built from the fields below)
  int64_t hidden_size = 64;
  int64_t intermediate_size = 176;
  int64_t num_layers = 2;
  int64_t num_heads = 4;
  int64_t num_kv_heads = 2;
  int64_t max_position_embeddings = 256;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  // Characters the demo tokenizer knows, besides its special and tag tokens.
  std::string charset = "0123456789+-*= ";
  // Prompt template; {prompt} is replaced by the task's prompt.
  std::string prompt_template = "{prompt}";
};

struct CoordinatorConfig {
  ServeConfig serve;
  std::string state_dir;  // persisted run state; default <run.dir>/coordinator
  int64_t lease_timeout_ms = 120000;
  int64_t heartbeat_timeout_ms = 15000;
  int64_t keep_versions = 3;  // weight versions kept in memory for fetching
  // Weight relays: each actor fetching a version streams it on to this many peers while
  // it receives (1: a chain, the least sent per link); 0: every actor fetches from the
  // coordinator.
  int64_t relay_fanout = 1;
};

struct ActorConfig {
  ServeConfig serve;
  int64_t group_size = 16;          // G completions per prompt
  int64_t prompts_per_request = 4;  // prompts leased per AcquireWork call
  double temperature = 1.0;
  double top_p = 1.0;
  int64_t top_k = 0;
  int64_t max_new_tokens = 12;
  int64_t max_batch = 64;  // completions decoded together (continuous batching)
  int64_t threads = 1;     // LibTorch intra-op threads
  std::string device = "cpu";  // cpu | cuda | cuda:N: where the generator runs (weights, KV cache, sampling)
  std::string dtype = "fp32";  // fp32 | bf16: the generator's weights and KV cache
  // Serve the weight version being received to peers (grpo.v1.Weights/Fetch on this
  // actor's port), as the coordinator plans (coordinator.relay_fanout).
  bool relay = true;
  // Host peers reach this actor at; empty: serve.host unless that is a wildcard, then
  // $POD_IP, then the host name.
  std::string advertise_host;
  // Synchronous mode: after each batch the actor waits for the learner's next version
  // (on-policy, as TRL and veRL's synchronous trainers), at most sync_timeout_ms. The
  // default is asynchronous: actors run ahead within learner.max_staleness.
  bool sync = false;
  int64_t sync_timeout_ms = 120000;
};

struct RewardConfig {
  ServeConfig serve;
  double accuracy_weight = 1.0;  // math: answer correct; code: tests passed
  double format_weight = 0.2;
  std::string format_mode = "strict";  // strict | lenient
  double language_weight = 0.0;        // R1 language consistency of the chain of thought
  double overlong_weight = 0.0;        // DAPO soft overlong penalty (its value is in [-1, 0])
  int64_t overlong_max_tokens = 0;     // 0: actor.max_new_tokens
  int64_t overlong_buffer_tokens = 0;  // the penalty ramps over the last this many tokens
  std::string truncated = "keep";      // keep | zero: reward of a completion cut at max tokens
  // Math answers.
  // answer_tag | boxed | answer_then_boxed | free (free text, for evaluating base models
  // that write no tags: math_checker.h ExtractMode::kFreeText). Training keeps answer_tag.
  std::string answer_extraction = "answer_tag";
  double math_rel_tol = 1e-6;
  int64_t math_timeout_ms = 1000;  // budget of one answer check
  bool math_symbolic = true;       // symbolic equivalence (GiNaC) after the cheap checks
  // Code tasks, run in the sandbox.
  std::string code_reward = "fraction";  // fraction of tests passed | all_or_nothing
  std::string code_compare = "whitespace";  // exact | whitespace | float
  double code_float_tol = 1e-6;
  int64_t sandbox_time_limit_ms = 2000;  // per test run
  int64_t sandbox_memory_mb = 256;
  int64_t sandbox_workers = 2;  // programs run at once
  // false: where no cgroup tree is writable (a container), run programs with rlimits and
  // the pid namespace only, and say so in every result, instead of refusing code tasks.
  bool sandbox_require_cgroups = true;
  // Python programs fork from a zygote per worker (core/sandbox/zygote.h); false: bwrap
  // and an interpreter started for every program.
  bool sandbox_zygote = true;
  int64_t workers = 2;
};

struct LearnerConfig {
  ServeConfig serve;
  int64_t prompts_per_step = 8;  // groups per GRPO step
  int64_t max_steps = 0;         // 0: run until stopped
  double lr = 3e-3;
  double weight_decay = 0.0;
  double beta = 0.0;  // KL coefficient against the frozen reference policy
  double clip_eps = 0.2;       // lower clip range (and upper, unless clip_eps_high is set)
  double clip_eps_high = 0.0;  // > 0: upper clip range (DAPO clip-higher, e.g. 0.28)
  std::string kl_estimator = "k3";               // k1 | k2 | k3
  std::string loss_agg = "seq-mean-token-mean";  // | token-mean (DAPO) | seq-mean-token-sum-norm (Dr. GRPO)
  bool scale_rewards = true;     // divide advantages by the group's std (off for Dr. GRPO)
  bool dynamic_sampling = false;  // drop groups whose rewards are all equal (DAPO)
  bool mask_truncated = false;    // truncated completions give no gradient (DAPO overlong filtering)
  double importance_cap = 0.0;   // > 0: truncated importance weights for stale samples
  int64_t checkpoint_every = 50;  // steps between checkpoints (0: only on SIGTERM); needs run.dir
  int64_t keep_checkpoints = 3;
  std::string checkpoint_dir;      // default <run.dir>/checkpoints
  int64_t ref_refresh_steps = 0;  // > 0: the reference policy becomes the current one every N steps
  int64_t warmup_steps = 0;       // linear learning-rate warm-up
  std::string lr_schedule = "constant";  // constant | cosine (to min_lr_ratio * lr at max_steps)
  double min_lr_ratio = 0.1;
  double adv_eps = 1e-6;
  double grad_clip = 1.0;
  int64_t max_staleness = 4;  // groups sampled more than this many versions ago are dropped
  // Weight versions go out as patches against the one before (core/rpc/weight_delta.h)
  // when that is smaller, with a full version at least every this many; 0: always full.
  int64_t delta_full_every = 10;
  int64_t buffer_groups = 64;
  int64_t threads = 1;
  std::string metrics_path;  // default <run.dir>/metrics.jsonl
  // Optimisation inside a step (core/grpo/trainer.h).
  int64_t epochs = 1;            // passes over each batch
  int64_t minibatches = 1;       // optimizer steps per pass
  int64_t micro_batch_size = 0;  // sequences per forward/backward, gradients accumulated (0: whole minibatch)
  std::string dtype = "fp32";    // fp32 | bf16 (autocast; weights and optimizer stay fp32)
  std::string device = "cpu";    // cpu | cuda | cuda:N (needs a LibTorch built with CUDA)
  bool activation_checkpointing = false;
  // Data parallelism: world_size learner processes form one c10d group (Gloo on CPU).
  int64_t world_size = 1;
  int64_t rank = 0;             // this process's rank; rank 0 serves gRPC, checkpoints and publishes
  std::string dist_address;     // host:port of rank 0's TCPStore ("": ask the coordinator)
  // A collective waiting longer fails the rank (a dead peer is noticed at once through
  // its closed connection; this bounds a hung one, and rank 0's pauses between steps,
  // such as publishing through a coordinator outage).
  int64_t dist_timeout_s = 1800;
  // Validation: every eval_every steps (and before the first and after the last) the
  // learner samples eval.k completions of each eval.data task and logs eval_* fields.
  int64_t eval_every = 0;
};

// Supervised training (`grpo sft`). The optimiser, schedule, dtype, micro-batches,
// checkpoints and data-parallel ranks come from the learner section.
struct SftConfig {
  int64_t batch_size = 32;   // sequences per optimizer step (over all ranks)
  int64_t epochs = 1;        // passes over the data (shuffled by run.seed and the pass)
  int64_t max_steps = 0;     // > 0: stop after this many steps (else epochs decide)
  int64_t max_seq_len = 0;   // longest sequence allowed (0: the model's context); longer lines are refused
};

// Evaluation on held-out tasks (`grpo eval`, and the learner's learner.eval_every).
struct EvalConfig {
  std::string data;                          // held-out dataset JSONL (learner.eval_every needs it)
  int64_t k = 8;                             // samples per task
  double temperature = 0.6;                  // 0: greedy (k is then 1)
  double top_p = 1.0;
  int64_t max_new_tokens = 0;                // 0: actor.max_new_tokens
  std::string answer_extraction = "free";    // how answers are read (see reward.answer_extraction)
  int64_t max_tasks = 0;                     // > 0: only the first N tasks
  int64_t seed = 1234;
  int64_t max_batch = 64;                    // completions decoded together
};

// What `grpo run` does around the GRPO services: generate the task's train and
// held-out sets, build a base model by pretraining, evaluate before and after, report.
struct PipelineConfig {
  // "": data.path / data.generator as before; "chains": the R1-Zero demo's task
  // (core/common/r1_tasks.h) written to <run>/data/train.jsonl and data/test.jsonl,
  // with data.num_tasks, data.max_operand and data.operators; "programs": the code task
  // family (core/common/program_tasks.h: Python programs reading stdin, hidden tests).
  std::string tasks;
  int64_t test_tasks = 200;
  int64_t min_operands = 3;
  int64_t max_operands = 4;
  // programs (core/common/program_tasks.h): hidden test cases per task; the constants in
  // the tasks' expressions are in [1, data.max_operand].
  int64_t code_tests = 4;
  // > 0: build the base model first: a pretraining corpus of this many documents
  // (data/pretrain.jsonl), `grpo init-model` with the shape below, `grpo sft` (sft.*),
  // and the GRPO run starts from it (model.path = <run>/base/model).
  int64_t base_docs = 0;
  double base_worked_share = 0.6;
  double base_dialog_worked_share = 0.1;
  double base_wrong_share = 0.6;
  double base_tagged_share = 0.03;
  // Worked solutions that end by restating their result as an answer (chains).
  double base_restated_share = 0;
  double base_facts_share = 0.4;
  // Notations (issue #25, language mixing in miniature; 0 keeps the R1-Zero demo's data):
  // the share of chain tasks asking for number words (the rest ask for digits), and in
  // the corpus the shares of worked solutions and facts in words, of worked solutions
  // switching notation part way, and of problems naming a notation (followed
  // base_instruction_kept of the time).
  double words_share = 0;
  double base_words_share = 0;
  double base_mixed_share = 0;
  double base_instruction_share = 0;
  double base_instruction_kept = 0.6;
  std::string base_arch = "qwen2";
  int64_t base_hidden_size = 128;
  int64_t base_intermediate_size = 384;
  int64_t base_layers = 4;
  int64_t base_heads = 4;
  int64_t base_kv_heads = 2;
  int64_t base_context = 256;
  int64_t base_merges = 700;
  std::string base_numbers = "whole";  // whole | digits (tokenizer)
  double base_lr = 3e-3;               // pretraining: AdamW with 20 warm-up steps, cosine
  int64_t base_threads = 2;            // pretraining and evaluation run alone: all cores
  // Held-out evaluation of the starting and the final model (eval/before.json,
  // eval/after.json with eval.*); needs a model.path (or a base model) and eval.data.
  bool eval_before_after = false;
  bool report = true;  // report.html in the run directory
  // R1's pipeline (issue #25; tools/grpo/stages.h): "" runs GRPO once, R1-Zero style;
  // a comma list of cold_start, reasoning_rl, rejection_sft, final_rl (in that order)
  // runs those stages, each in <run>/stages/<name>/, evaluated into eval/<name>.json.
  std::string stages;
  // cold_start: supervised fine-tuning of the base model on this many training tasks'
  // worked chains of thought, written in the notation each prompt asks for, in the format.
  int64_t cold_start_tasks = 1000;
  int64_t cold_start_epochs = 2;
  double cold_start_lr = 1e-3;
  // reasoning_rl and final_rl: GRPO steps of each (the learner.*, actor.*, reward.*
  // settings; learner.max_steps is not used by a staged run).
  int64_t rl_steps = 100;
  int64_t final_rl_steps = 50;
  // > 0: their learning rate instead of learner.lr. A fine-tuned model's accuracy comes
  // from a few weights; steps a fresh Adam takes at a base model's rate undo it.
  double rl_lr = 0;
  // rejection_sft: rejection_samples completions of rejection_tasks training tasks from
  // the previous stage's model, keeping the correct ones in the format whose chain of
  // thought is at least rejection_min_language in the asked notation (one per task), mixed
  // with rejection_other_docs documents of the pretraining corpus (the non-reasoning
  // data), fine-tuned from the base model.
  int64_t rejection_tasks = 3000;
  int64_t rejection_samples = 4;
  double rejection_min_language = 1.0;
  int64_t rejection_other_docs = 1000;
  int64_t rejection_epochs = 2;
  double rejection_lr = 1e-3;
};

// Mutual TLS between the services and a bearer token on every call
// (docs/ARCHITECTURE.md, "Security"). Empty: plaintext, as on a laptop.
struct SecurityConfig {
  std::string ca_file;      // PEM CA bundle that signed every service's certificate
  std::string cert_file;    // this process's certificate chain (PEM)
  std::string key_file;     // its private key (PEM)
  std::string token_file;   // bearer token every call carries and every server checks (health checks excepted)
  std::string server_name;  // name servers' certificates are checked against instead of the target's host
};

struct RunConfig {
  RunSection run;
  SecurityConfig security;
  EndpointsConfig endpoints;
  DataConfig data;
  ModelSection model;
  CoordinatorConfig coordinator;
  ActorConfig actor;
  RewardConfig reward;
  LearnerConfig learner;
  SftConfig sft;
  EvalConfig eval;
  PipelineConfig pipeline;
};

// One field of the schema: where it lives and what it is for.
struct ConfigField {
  std::string section;
  std::string key;  // may contain dots for nested fields, e.g. "serve.port"
  std::variant<int64_t*, double*, bool*, std::string*> ptr;
  std::string help;
  std::string path() const { return section + "." + key; }
};

// R1's stages in their order: cold_start, reasoning_rl, rejection_sft, final_rl.
const std::vector<std::string>& R1StageNames();
// pipeline.stages as a list (empty: no stages), or why it is not one.
absl::StatusOr<std::vector<std::string>> PipelineStages(const PipelineConfig& p);

// Every field of `cfg`, in schema order.
std::vector<ConfigField> ConfigFields(RunConfig& cfg);

// Parses YAML text (`origin` names it in errors) on top of the defaults.
absl::StatusOr<RunConfig> ParseConfig(const std::string& yaml_text, const std::string& origin);
// Reads a config file. An empty path gives the embedded default (the demo).
absl::StatusOr<RunConfig> LoadConfig(const std::string& path);
// Applies "section.key=value" overrides in order.
absl::Status ApplyOverrides(RunConfig& cfg, const std::vector<std::string>& overrides);
// Range checks across fields.
absl::Status ValidateConfig(const RunConfig& cfg);

// "cpu", "cuda" or "cuda:N" (whether such a device exists is checked where it is used).
bool ValidDeviceName(const std::string& device);
// Full YAML of every field (the resolved config a run directory keeps).
std::string ConfigToYaml(const RunConfig& cfg);

// The embedded default config: the local demo.
const char* DefaultConfigYaml();

// Loads --config and --set the way every service main does, then validates.
absl::StatusOr<RunConfig> LoadConfigWithOverrides(const std::string& path,
                                                  const std::vector<std::string>& overrides);

}  // namespace grpo
