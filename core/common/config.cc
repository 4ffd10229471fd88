#include "core/common/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/ascii.h"
#include "absl/strings/strip.h"

namespace grpo {

extern const char kEmbeddedDemoConfig[];  // generated from configs/demo.yaml

const char* DefaultConfigYaml() { return kEmbeddedDemoConfig; }

namespace {

void AddServe(std::vector<ConfigField>& f, const std::string& s, ServeConfig& c) {
  f.push_back({s, "serve.host", &c.host, "address the gRPC and metrics servers bind to"});
  f.push_back({s, "serve.port", &c.port, "gRPC port (0: any free port)"});
  f.push_back({s, "serve.metrics_port", &c.metrics_port, "Prometheus /metrics port (0: any free port)"});
}

std::string TypeName(const ConfigField& f) {
  struct V {
    std::string operator()(int64_t*) const { return "an integer"; }
    std::string operator()(double*) const { return "a number"; }
    std::string operator()(bool*) const { return "true or false"; }
    std::string operator()(std::string*) const { return "a string"; }
  };
  return std::visit(V{}, f.ptr);
}

// Parses `text` into the field; returns false when it does not fit the type.
bool SetField(const ConfigField& f, const std::string& text) {
  struct V {
    const std::string& t;
    bool operator()(int64_t* p) const {
      int64_t v;
      if (!absl::SimpleAtoi(t, &v)) return false;
      *p = v;
      return true;
    }
    bool operator()(double* p) const {
      double v;
      if (!absl::SimpleAtod(t, &v) || !std::isfinite(v)) return false;
      *p = v;
      return true;
    }
    bool operator()(bool* p) const {
      if (t == "true" || t == "True" || t == "1" || t == "yes") { *p = true; return true; }
      if (t == "false" || t == "False" || t == "0" || t == "no") { *p = false; return true; }
      return false;
    }
    bool operator()(std::string* p) const {
      *p = t;
      return true;
    }
  };
  return std::visit(V{text}, f.ptr);
}

std::string FieldValue(const ConfigField& f) {
  struct V {
    std::string operator()(int64_t* p) const { return std::to_string(*p); }
    std::string operator()(double* p) const {
      std::ostringstream os;
      os.precision(17);
      os << *p;
      return os.str();
    }
    std::string operator()(bool* p) const { return *p ? "true" : "false"; }
    std::string operator()(std::string* p) const {
      YAML::Emitter e;
      e << YAML::DoubleQuoted << *p;
      return e.c_str();
    }
  };
  return std::visit(V{}, f.ptr);
}

std::string Where(const std::string& origin, const YAML::Node& n) {
  if (n.Mark().line >= 0) return absl::StrCat(origin, ":", n.Mark().line + 1);
  return origin;
}

// Walks a YAML mapping; fills fields whose dotted path starts with `prefix`.
absl::Status ApplyMap(const YAML::Node& map, const std::string& prefix,
                      std::map<std::string, const ConfigField*>& by_path,
                      const std::set<std::string>& prefixes, const std::string& origin) {
  for (auto it = map.begin(); it != map.end(); ++it) {
    std::string key = it->first.as<std::string>();
    std::string path = prefix.empty() ? key : prefix + "." + key;
    const YAML::Node& value = it->second;
    if (value.IsMap()) {
      if (!prefixes.count(path)) {
        return absl::InvalidArgumentError(absl::StrCat(
            Where(origin, it->first), ": unknown config section '", path, "'"));
      }
      absl::Status s = ApplyMap(value, path, by_path, prefixes, origin);
      if (!s.ok()) return s;
      continue;
    }
    auto f = by_path.find(path);
    if (f == by_path.end()) {
      if (prefixes.count(path)) {
        return absl::InvalidArgumentError(absl::StrCat(
            Where(origin, it->first), ": '", path, "' is a section and needs a mapping"));
      }
      return absl::InvalidArgumentError(
          absl::StrCat(Where(origin, it->first), ": unknown config key '", path, "'"));
    }
    if (value.IsNull()) {
      // `key:` with nothing after it keeps the default (empty string for strings).
      if (std::holds_alternative<std::string*>(f->second->ptr)) *std::get<std::string*>(f->second->ptr) = "";
      continue;
    }
    if (!value.IsScalar()) {
      return absl::InvalidArgumentError(absl::StrCat(Where(origin, value), ": ", path,
                                                     ": expected ", TypeName(*f->second)));
    }
    if (!SetField(*f->second, value.Scalar())) {
      return absl::InvalidArgumentError(absl::StrCat(Where(origin, value), ": ", path, ": expected ",
                                                     TypeName(*f->second), ", got '",
                                                     value.Scalar(), "'"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

const std::vector<std::string>& R1StageNames() {
  static const std::vector<std::string> kNames = {"cold_start", "reasoning_rl", "rejection_sft", "final_rl"};
  return kNames;
}

absl::StatusOr<std::vector<std::string>> PipelineStages(const PipelineConfig& p) {
  std::vector<std::string> out;
  if (absl::StripAsciiWhitespace(p.stages).empty()) return out;
  size_t next = 0;  // index in R1StageNames() the next stage may have at the least
  for (absl::string_view part : absl::StrSplit(p.stages, ',')) {
    const std::string name(absl::StripAsciiWhitespace(part));
    auto it = std::find(R1StageNames().begin(), R1StageNames().end(), name);
    if (it == R1StageNames().end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown stage \"", name, "\" (stages: ",
                                                     absl::StrJoin(R1StageNames(), ", "), ")"));
    }
    const size_t at = static_cast<size_t>(it - R1StageNames().begin());
    if (at < next) {
      return absl::InvalidArgumentError(absl::StrCat("stage ", name, " is listed twice or out of order (the order is ",
                                                     absl::StrJoin(R1StageNames(), ", "), ")"));
    }
    next = at + 1;
    out.push_back(name);
  }
  return out;
}

std::vector<ConfigField> ConfigFields(RunConfig& c) {
  std::vector<ConfigField> f;
  f.push_back({"run", "name", &c.run.name, "name of the run (logs, metrics labels)"});
  f.push_back({"security", "ca_file", &c.security.ca_file, "PEM CA bundle; with cert_file and key_file, every gRPC connection is mutual TLS"});
  f.push_back({"security", "cert_file", &c.security.cert_file, "this process's certificate chain (PEM)"});
  f.push_back({"security", "key_file", &c.security.key_file, "this process's private key (PEM)"});
  f.push_back({"security", "token_file", &c.security.token_file, "bearer token every call carries and every server checks (health checks excepted); needs TLS"});
  f.push_back({"security", "server_name", &c.security.server_name, "name to verify servers' certificates against instead of the target's host (for ip:port lists)"});
  f.push_back({"run", "dir", &c.run.dir, "run directory: logs, metrics.jsonl, state"});
  f.push_back({"run", "seed", &c.run.seed, "seed for initial weights, data and sampling"});
  f.push_back({"run", "actors", &c.run.actors, "grpo run: actor processes to start"});
  f.push_back({"run", "reward_servers", &c.run.reward_servers, "grpo run: reward servers to start (each actor balances over all of them)"});
  f.push_back({"run", "max_restarts", &c.run.max_restarts, "grpo run: restarts allowed per service before the run stops"});

  f.push_back({"endpoints", "coordinator", &c.endpoints.coordinator, "host:port of the coordinator"});
  f.push_back({"endpoints", "reward", &c.endpoints.reward, "host:port of the reward service"});
  f.push_back({"endpoints", "learner", &c.endpoints.learner, "host:port of the learner"});

  f.push_back({"data", "path", &c.data.path, "dataset JSONL; empty: generate one"});
  f.push_back({"data", "generator", &c.data.generator, "task generator when path is empty: arithmetic"});
  f.push_back({"data", "num_tasks", &c.data.num_tasks, "tasks the generator writes"});
  f.push_back({"data", "max_operand", &c.data.max_operand, "largest operand of generated arithmetic"});
  f.push_back({"data", "operators", &c.data.operators, "operators of generated arithmetic, from +-*"});
  f.push_back({"data", "max_epochs", &c.data.max_epochs, "passes over the dataset (0: unbounded)"});

  f.push_back({"model", "path", &c.model.path, "Hugging Face model directory; empty: build from the fields below"});
  f.push_back({"model", "chat_template", &c.model.chat_template, "prompt format: plain (prompt_template), chatml, llama3"});
  f.push_back({"model", "system_prompt", &c.model.system_prompt, "system message for chatml / llama3"});
  f.push_back({"model", "arch", &c.model.arch, "llama, qwen2 or qwen3 (without model.path)"});
  f.push_back({"model", "hidden_size", &c.model.hidden_size, "model width"});
  f.push_back({"model", "intermediate_size", &c.model.intermediate_size, "SwiGLU hidden width"});
  f.push_back({"model", "num_layers", &c.model.num_layers, "transformer blocks"});
  f.push_back({"model", "num_heads", &c.model.num_heads, "attention heads"});
  f.push_back({"model", "num_kv_heads", &c.model.num_kv_heads, "key/value heads (grouped-query attention)"});
  f.push_back({"model", "max_position_embeddings", &c.model.max_position_embeddings, "longest sequence"});
  f.push_back({"model", "rope_theta", &c.model.rope_theta, "rotary base"});
  f.push_back({"model", "rms_norm_eps", &c.model.rms_norm_eps, "RMSNorm epsilon"});
  f.push_back({"model", "tie_word_embeddings", &c.model.tie_word_embeddings, "share input and output embeddings"});
  f.push_back({"model", "charset", &c.model.charset, "characters of the demo tokenizer"});
  f.push_back({"model", "prompt_template", &c.model.prompt_template, "prompt template with {prompt}"});

  AddServe(f, "coordinator", c.coordinator.serve);
  f.push_back({"coordinator", "state_dir", &c.coordinator.state_dir, "persisted run state (default <run.dir>/coordinator)"});
  f.push_back({"coordinator", "lease_timeout_ms", &c.coordinator.lease_timeout_ms, "lease lifetime before re-issue"});
  f.push_back({"coordinator", "heartbeat_timeout_ms", &c.coordinator.heartbeat_timeout_ms, "member dropped after this silence"});
  f.push_back({"coordinator", "keep_versions", &c.coordinator.keep_versions, "weight versions kept for fetching"});
  f.push_back({"coordinator", "relay_fanout", &c.coordinator.relay_fanout, "peers each actor relays a weight version to while receiving it (1: a chain; 0: all fetch from the coordinator)"});

  AddServe(f, "actor", c.actor.serve);
  f.push_back({"actor", "group_size", &c.actor.group_size, "G: completions per prompt"});
  f.push_back({"actor", "prompts_per_request", &c.actor.prompts_per_request, "prompts leased per request"});
  f.push_back({"actor", "temperature", &c.actor.temperature, "sampling temperature (0: greedy)"});
  f.push_back({"actor", "top_p", &c.actor.top_p, "nucleus sampling threshold"});
  f.push_back({"actor", "top_k", &c.actor.top_k, "top-k sampling (0: off)"});
  f.push_back({"actor", "max_new_tokens", &c.actor.max_new_tokens, "longest completion"});
  f.push_back({"actor", "max_batch", &c.actor.max_batch, "completions decoded together (continuous batching)"});
  f.push_back({"actor", "threads", &c.actor.threads, "LibTorch threads"});
  f.push_back({"actor", "device", &c.actor.device, "cpu, cuda or cuda:N: where the generator keeps weights and KV cache and samples"});
  f.push_back({"actor", "dtype", &c.actor.dtype, "fp32 or bf16: the generator's weights and KV cache (bf16 is the usual choice on GPUs)"});
  f.push_back({"actor", "relay", &c.actor.relay, "serve the weight version being received to peers (coordinator.relay_fanout)"});
  f.push_back({"actor", "advertise_host", &c.actor.advertise_host, "host peers reach this actor at for weight relays (empty: serve.host, else $POD_IP, else the host name)"});
  f.push_back({"actor", "sync", &c.actor.sync, "synchronous: after each batch wait for the learner's next version (on-policy); needs prompts_per_request to divide learner.prompts_per_step"});
  f.push_back({"actor", "sync_timeout_ms", &c.actor.sync_timeout_ms, "synchronous mode: the longest wait for a new version before sampling anyway"});

  AddServe(f, "reward", c.reward.serve);
  f.push_back({"reward", "accuracy_weight", &c.reward.accuracy_weight, "weight of the accuracy reward"});
  f.push_back({"reward", "format_weight", &c.reward.format_weight, "weight of the format reward"});
  f.push_back({"reward", "format_mode", &c.reward.format_mode, "strict: <think>..</think><answer>..</answer> only; lenient: one <answer> block ending the completion"});
  f.push_back({"reward", "language_weight", &c.reward.language_weight, "weight of R1 language consistency (share of chain-of-thought words in the prompt's script)"});
  f.push_back({"reward", "overlong_weight", &c.reward.overlong_weight, "weight of the DAPO soft overlong penalty (in [-1, 0])"});
  f.push_back({"reward", "overlong_max_tokens", &c.reward.overlong_max_tokens, "length where the overlong penalty reaches -1 (0: actor.max_new_tokens)"});
  f.push_back({"reward", "overlong_buffer_tokens", &c.reward.overlong_buffer_tokens, "the penalty ramps from 0 to -1 over this many tokens"});
  f.push_back({"reward", "truncated", &c.reward.truncated, "keep: score truncated completions as they are; zero: their reward is 0"});
  f.push_back({"reward", "answer_extraction", &c.reward.answer_extraction, "answer_tag (last <answer>), boxed (last \\boxed{}), answer_then_boxed, free (free text: answer tag, box, final-answer phrase, last math, last number; for evaluating base models)"});
  f.push_back({"reward", "math_rel_tol", &c.reward.math_rel_tol, "relative tolerance of numeric answers"});
  f.push_back({"reward", "math_timeout_ms", &c.reward.math_timeout_ms, "time budget of one answer check (a timeout scores 0 with an error)"});
  f.push_back({"reward", "math_symbolic", &c.reward.math_symbolic, "check symbolic equivalence of expressions (GiNaC)"});
  f.push_back({"reward", "code_reward", &c.reward.code_reward, "fraction: share of tests passed; all_or_nothing"});
  f.push_back({"reward", "code_compare", &c.reward.code_compare, "output comparison: exact, whitespace, float"});
  f.push_back({"reward", "code_float_tol", &c.reward.code_float_tol, "tolerance of code_compare=float"});
  f.push_back({"reward", "sandbox_time_limit_ms", &c.reward.sandbox_time_limit_ms, "wall-clock limit of one test run"});
  f.push_back({"reward", "sandbox_memory_mb", &c.reward.sandbox_memory_mb, "memory limit of one test run"});
  f.push_back({"reward", "sandbox_workers", &c.reward.sandbox_workers, "sandboxed programs run at once"});
  f.push_back({"reward", "sandbox_require_cgroups", &c.reward.sandbox_require_cgroups,
               "true: no code sandbox without a writable cgroup tree; false: rlimits and the pid namespace "
               "bound each run there (containers), and every result says so"});
  f.push_back({"reward", "sandbox_zygote", &c.reward.sandbox_zygote,
               "Python programs fork from an interpreter started once per worker (false: one per program)"});
  f.push_back({"reward", "workers", &c.reward.workers, "scoring threads"});

  AddServe(f, "learner", c.learner.serve);
  f.push_back({"learner", "prompts_per_step", &c.learner.prompts_per_step, "groups per GRPO step"});
  f.push_back({"learner", "max_steps", &c.learner.max_steps, "stop after this many steps (0: never)"});
  f.push_back({"learner", "lr", &c.learner.lr, "AdamW learning rate"});
  f.push_back({"learner", "weight_decay", &c.learner.weight_decay, "AdamW weight decay"});
  f.push_back({"learner", "beta", &c.learner.beta, "KL coefficient (k3) against the reference policy"});
  f.push_back({"learner", "clip_eps", &c.learner.clip_eps, "PPO clip range (lower, and upper unless clip_eps_high)"});
  f.push_back({"learner", "clip_eps_high", &c.learner.clip_eps_high, "upper clip range when > 0 (DAPO clip-higher)"});
  f.push_back({"learner", "kl_estimator", &c.learner.kl_estimator, "KL estimator of the beta term: k1, k2, k3"});
  f.push_back({"learner", "loss_agg", &c.learner.loss_agg, "seq-mean-token-mean (GRPO), token-mean (DAPO), seq-mean-token-sum-norm (Dr. GRPO)"});
  f.push_back({"learner", "scale_rewards", &c.learner.scale_rewards, "divide advantages by the group std (false for Dr. GRPO)"});
  f.push_back({"learner", "dynamic_sampling", &c.learner.dynamic_sampling, "drop groups whose rewards are all equal (DAPO)"});
  f.push_back({"learner", "checkpoint_every", &c.learner.checkpoint_every, "steps between checkpoints (0: only when stopped)"});
  f.push_back({"learner", "keep_checkpoints", &c.learner.keep_checkpoints, "newest checkpoints kept"});
  f.push_back({"learner", "checkpoint_dir", &c.learner.checkpoint_dir, "checkpoint directory (default <run.dir>/checkpoints)"});
  f.push_back({"learner", "ref_refresh_steps", &c.learner.ref_refresh_steps, "> 0: reset the KL reference to the current policy every N steps (R1-Zero: 400)"});
  f.push_back({"learner", "warmup_steps", &c.learner.warmup_steps, "linear learning-rate warm-up steps"});
  f.push_back({"learner", "lr_schedule", &c.learner.lr_schedule, "constant or cosine (decays to min_lr_ratio * lr at max_steps; constant without max_steps)"});
  f.push_back({"learner", "min_lr_ratio", &c.learner.min_lr_ratio, "cosine floor as a share of lr"});
  f.push_back({"learner", "mask_truncated", &c.learner.mask_truncated, "truncated completions give no gradient (DAPO overlong filtering)"});
  f.push_back({"learner", "importance_cap", &c.learner.importance_cap, "> 0: weight stale tokens by min(pi_now/pi_sampled, cap)"});
  f.push_back({"learner", "adv_eps", &c.learner.adv_eps, "epsilon in (r - mean) / (std + eps)"});
  f.push_back({"learner", "grad_clip", &c.learner.grad_clip, "max gradient norm (0: off)"});
  f.push_back({"learner", "max_staleness", &c.learner.max_staleness, "drop groups older than this many versions"});
  f.push_back({"learner", "delta_full_every", &c.learner.delta_full_every, "publish weight versions as patches against the one before when smaller, a full version at least every N (0: always full)"});
  f.push_back({"learner", "buffer_groups", &c.learner.buffer_groups, "groups buffered before backpressure"});
  f.push_back({"learner", "threads", &c.learner.threads, "LibTorch threads"});
  f.push_back({"learner", "metrics_path", &c.learner.metrics_path, "per-step JSONL (default <run.dir>/metrics.jsonl)"});
  f.push_back({"learner", "epochs", &c.learner.epochs, "passes over each batch (PPO epochs)"});
  f.push_back({"learner", "minibatches", &c.learner.minibatches, "optimizer steps per pass over a batch"});
  f.push_back({"learner", "micro_batch_size", &c.learner.micro_batch_size, "sequences per forward/backward; gradients accumulate over a minibatch (0: all at once)"});
  f.push_back({"learner", "dtype", &c.learner.dtype, "fp32 or bf16 (autocast: matmuls in bf16, weights and optimizer in fp32)"});
  f.push_back({"learner", "device", &c.learner.device, "cpu, cuda or cuda:N (ranks on CUDA all-reduce over NCCL)"});
  f.push_back({"learner", "activation_checkpointing", &c.learner.activation_checkpointing, "recompute each block in backward instead of storing its activations"});
  f.push_back({"learner", "world_size", &c.learner.world_size, "learner processes training as one data-parallel group"});
  f.push_back({"learner", "rank", &c.learner.rank, "this learner's rank in [0, world_size); rank 0 serves, checkpoints and publishes"});
  f.push_back({"learner", "dist_address", &c.learner.dist_address, "host:port of rank 0's rendezvous store (empty: handed out by the coordinator)"});
  f.push_back({"learner", "dist_timeout_s", &c.learner.dist_timeout_s, "seconds a rank waits in a collective before failing"});
  f.push_back({"learner", "eval_every", &c.learner.eval_every, "> 0: evaluate eval.data every N steps, before step 1 and after the last (eval_* in metrics.jsonl)"});

  f.push_back({"sft", "batch_size", &c.sft.batch_size, "sequences per optimizer step (over all ranks)"});
  f.push_back({"sft", "epochs", &c.sft.epochs, "passes over the data"});
  f.push_back({"sft", "max_steps", &c.sft.max_steps, "> 0: stop after this many steps"});
  f.push_back({"sft", "max_seq_len", &c.sft.max_seq_len, "longest sequence (0: the model's context); a longer line is refused"});

  f.push_back({"eval", "data", &c.eval.data, "held-out dataset JSONL"});
  f.push_back({"eval", "k", &c.eval.k, "samples per task (pass@k, maj@k)"});
  f.push_back({"eval", "temperature", &c.eval.temperature, "sampling temperature (0: greedy, one sample)"});
  f.push_back({"eval", "top_p", &c.eval.top_p, "nucleus sampling threshold"});
  f.push_back({"eval", "max_new_tokens", &c.eval.max_new_tokens, "longest completion (0: actor.max_new_tokens)"});
  f.push_back({"eval", "answer_extraction", &c.eval.answer_extraction, "how answers are read: free (final-answer phrases, boxed, last number), answer_tag, boxed, answer_then_boxed"});
  f.push_back({"eval", "max_tasks", &c.eval.max_tasks, "> 0: evaluate only the first N tasks"});
  f.push_back({"eval", "seed", &c.eval.seed, "sampling seed"});
  f.push_back({"eval", "max_batch", &c.eval.max_batch, "completions decoded together"});

  f.push_back({"pipeline", "tasks", &c.pipeline.tasks, "\"\": use data.*; chains: generate the R1-Zero demo's train and held-out sets (data/train.jsonl, data/test.jsonl); programs: the code task family (Python programs with hidden tests)"});
  f.push_back({"pipeline", "test_tasks", &c.pipeline.test_tasks, "chains, programs: held-out tasks"});
  f.push_back({"pipeline", "min_operands", &c.pipeline.min_operands, "chains: fewest numbers in a chain"});
  f.push_back({"pipeline", "max_operands", &c.pipeline.max_operands, "chains: most numbers in a chain"});
  f.push_back({"pipeline", "code_tests", &c.pipeline.code_tests, "programs: hidden test cases per task"});
  f.push_back({"pipeline", "base_docs", &c.pipeline.base_docs, "> 0: pretrain a base model on this many generated documents before GRPO"});
  f.push_back({"pipeline", "base_worked_share", &c.pipeline.base_worked_share, "corpus: share of exercise answers worked step by step"});
  f.push_back({"pipeline", "base_dialog_worked_share", &c.pipeline.base_dialog_worked_share, "corpus: share of transcript answers worked step by step"});
  f.push_back({"pipeline", "base_wrong_share", &c.pipeline.base_wrong_share, "corpus: share of direct answers that are wrong"});
  f.push_back({"pipeline", "base_tagged_share", &c.pipeline.base_tagged_share, "corpus: share of documents with <think>/<answer> tags"});
  f.push_back({"pipeline", "base_restated_share", &c.pipeline.base_restated_share, "corpus (chains): share of worked solutions that end by restating the result (\". The answer is 30\")"});
  f.push_back({"pipeline", "base_facts_share", &c.pipeline.base_facts_share, "corpus: share of arithmetic-fact documents"});
  f.push_back({"pipeline", "words_share", &c.pipeline.words_share, "chains: share of tasks asking for the chain of thought in number words (> 0: every task names digits or words)"});
  f.push_back({"pipeline", "base_words_share", &c.pipeline.base_words_share, "corpus: share of worked solutions and fact tables in number words"});
  f.push_back({"pipeline", "base_mixed_share", &c.pipeline.base_mixed_share, "corpus: share of worked solutions that switch notation part way (language mixing)"});
  f.push_back({"pipeline", "base_instruction_share", &c.pipeline.base_instruction_share, "corpus: share of worked problems that name a notation"});
  f.push_back({"pipeline", "base_instruction_kept", &c.pipeline.base_instruction_kept, "corpus: how often a worked solution follows the notation its problem names"});
  f.push_back({"pipeline", "base_arch", &c.pipeline.base_arch, "base model architecture: llama, qwen2, qwen3"});
  f.push_back({"pipeline", "base_hidden_size", &c.pipeline.base_hidden_size, "base model width"});
  f.push_back({"pipeline", "base_intermediate_size", &c.pipeline.base_intermediate_size, "base model SwiGLU width"});
  f.push_back({"pipeline", "base_layers", &c.pipeline.base_layers, "base model blocks"});
  f.push_back({"pipeline", "base_heads", &c.pipeline.base_heads, "base model attention heads"});
  f.push_back({"pipeline", "base_kv_heads", &c.pipeline.base_kv_heads, "base model key/value heads"});
  f.push_back({"pipeline", "base_context", &c.pipeline.base_context, "base model context (max_position_embeddings)"});
  f.push_back({"pipeline", "base_merges", &c.pipeline.base_merges, "base tokenizer BPE merges"});
  f.push_back({"pipeline", "base_numbers", &c.pipeline.base_numbers, "base tokenizer numbers: whole (digit runs merge) or digits"});
  f.push_back({"pipeline", "base_lr", &c.pipeline.base_lr, "pretraining learning rate (20 warm-up steps, cosine to 0.1 x)"});
  f.push_back({"pipeline", "base_threads", &c.pipeline.base_threads, "LibTorch threads of pretraining and evaluation"});
  f.push_back({"pipeline", "eval_before_after", &c.pipeline.eval_before_after, "evaluate eval.data before and after GRPO (eval/before.json, eval/after.json)"});
  f.push_back({"pipeline", "report", &c.pipeline.report, "write report.html in the run directory"});
  f.push_back({"pipeline", "stages", &c.pipeline.stages, "R1's stages, a comma list of cold_start, reasoning_rl, rejection_sft, final_rl (\"\": GRPO once, R1-Zero style)"});
  f.push_back({"pipeline", "cold_start_tasks", &c.pipeline.cold_start_tasks, "cold_start: training tasks whose worked chains of thought the base model is fine-tuned on"});
  f.push_back({"pipeline", "cold_start_epochs", &c.pipeline.cold_start_epochs, "cold_start: passes over them"});
  f.push_back({"pipeline", "cold_start_lr", &c.pipeline.cold_start_lr, "cold_start: learning rate (3 warm-up steps, cosine to 0.1 x)"});
  f.push_back({"pipeline", "rl_steps", &c.pipeline.rl_steps, "reasoning_rl: GRPO steps"});
  f.push_back({"pipeline", "final_rl_steps", &c.pipeline.final_rl_steps, "final_rl: GRPO steps"});
  f.push_back({"pipeline", "rl_lr", &c.pipeline.rl_lr, "reasoning_rl and final_rl: learning rate (0: learner.lr)"});
  f.push_back({"pipeline", "rejection_tasks", &c.pipeline.rejection_tasks, "rejection_sft: training tasks sampled from the previous stage's model"});
  f.push_back({"pipeline", "rejection_samples", &c.pipeline.rejection_samples, "rejection_sft: completions drawn per task"});
  f.push_back({"pipeline", "rejection_min_language", &c.pipeline.rejection_min_language, "rejection_sft: least language consistency of a kept completion"});
  f.push_back({"pipeline", "rejection_other_docs", &c.pipeline.rejection_other_docs, "rejection_sft: pretraining documents mixed in (the non-reasoning data)"});
  f.push_back({"pipeline", "rejection_epochs", &c.pipeline.rejection_epochs, "rejection_sft: passes over its data"});
  f.push_back({"pipeline", "rejection_lr", &c.pipeline.rejection_lr, "rejection_sft: learning rate (fine-tuning the base model)"});
  return f;
}

absl::StatusOr<RunConfig> ParseConfig(const std::string& yaml_text, const std::string& origin) {
  RunConfig cfg;
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ":", e.mark.line + 1, ": invalid YAML: ", e.msg));
  }
  if (root.IsNull()) return cfg;
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": the config must be a mapping of sections"));
  }
  std::vector<ConfigField> fields = ConfigFields(cfg);
  std::map<std::string, const ConfigField*> by_path;
  std::set<std::string> prefixes;
  for (const auto& f : fields) {
    by_path[f.path()] = &f;
    std::string p = f.path();
    for (size_t pos = p.rfind('.'); pos != std::string::npos; pos = p.rfind('.', pos - 1)) {
      prefixes.insert(p.substr(0, pos));
      if (pos == 0) break;
    }
  }
  try {
    absl::Status s = ApplyMap(root, "", by_path, prefixes, origin);
    if (!s.ok()) return s;
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ":", e.mark.line + 1, ": ", e.msg));
  }
  return cfg;
}

absl::StatusOr<RunConfig> LoadConfig(const std::string& path) {
  if (path.empty()) return ParseConfig(DefaultConfigYaml(), "<embedded demo config>");
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("config file ", path, ": cannot open (", std::strerror(errno), ")"));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseConfig(ss.str(), path);
}

absl::Status ApplyOverrides(RunConfig& cfg, const std::vector<std::string>& overrides) {
  std::vector<ConfigField> fields = ConfigFields(cfg);
  for (const std::string& o : overrides) {
    size_t eq = o.find('=');
    if (eq == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--set ", o, ": expected section.key=value"));
    }
    std::string path = o.substr(0, eq);
    std::string value = o.substr(eq + 1);
    const ConfigField* found = nullptr;
    for (const auto& f : fields) {
      if (f.path() == path) found = &f;
    }
    if (!found) return absl::InvalidArgumentError(absl::StrCat("--set ", o, ": unknown config key '", path, "'"));
    if (!SetField(*found, value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--set ", o, ": ", path, ": expected ", TypeName(*found), ", got '", value, "'"));
    }
  }
  return absl::OkStatus();
}

bool ValidDeviceName(const std::string& d) {
  int64_t index = 0;
  const bool cuda_n = d.rfind("cuda:", 0) == 0 && d.size() > 5 && absl::SimpleAtoi(d.substr(5), &index) && index >= 0;
  return d == "cpu" || d == "cuda" || cuda_n;
}

absl::Status ValidateConfig(const RunConfig& c) {
  auto bad = [](const std::string& key, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("config: ", key, ": ", why));
  };
  auto port_ok = [](int64_t p) { return p >= 0 && p <= 65535; };
  for (auto [name, s] : {std::pair<const char*, const ServeConfig*>{"coordinator", &c.coordinator.serve},
                         {"actor", &c.actor.serve}, {"reward", &c.reward.serve}, {"learner", &c.learner.serve}}) {
    if (!port_ok(s->port)) return bad(absl::StrCat(name, ".serve.port"), "must be in [0, 65535]");
    if (!port_ok(s->metrics_port)) return bad(absl::StrCat(name, ".serve.metrics_port"), "must be in [0, 65535]");
  }
  if (c.data.path.empty() && c.data.generator != "arithmetic")
    return bad("data.generator", "unknown generator '" + c.data.generator + "' (known: arithmetic)");
  if (c.data.num_tasks <= 0) return bad("data.num_tasks", "must be positive");
  if (c.data.max_operand < 1) return bad("data.max_operand", "must be at least 1");
  if (c.data.operators.empty() || c.data.operators.find_first_not_of("+-*") != std::string::npos)
    return bad("data.operators", "must be a non-empty subset of +-*");
  if (c.data.max_epochs < 0) return bad("data.max_epochs", "must be >= 0");
  if (c.model.chat_template != "plain" && c.model.chat_template != "chatml" && c.model.chat_template != "llama3")
    return bad("model.chat_template", "must be plain, chatml or llama3");
  if (c.model.path.empty() && c.model.chat_template != "plain")
    return bad("model.chat_template", "chat formats need a model.path with a tokenizer.json; the demo tokenizer takes plain");
  if (c.model.arch != "llama" && c.model.arch != "qwen2" && c.model.arch != "qwen3")
    return bad("model.arch", "must be llama, qwen2 or qwen3");
  if (c.model.hidden_size <= 0 || c.model.num_heads <= 0 || c.model.hidden_size % c.model.num_heads != 0)
    return bad("model.hidden_size", "must be a positive multiple of model.num_heads");
  if (c.model.num_kv_heads <= 0 || c.model.num_heads % c.model.num_kv_heads != 0)
    return bad("model.num_kv_heads", "must divide model.num_heads");
  if ((c.model.hidden_size / c.model.num_heads) % 2 != 0) return bad("model.hidden_size", "head dimension must be even (rotary)");
  if (c.model.num_layers <= 0) return bad("model.num_layers", "must be positive");
  if (c.model.intermediate_size <= 0) return bad("model.intermediate_size", "must be positive");
  if (c.model.prompt_template.find("{prompt}") == std::string::npos)
    return bad("model.prompt_template", "must contain {prompt}");
  if (c.actor.group_size < 2) return bad("actor.group_size", "must be at least 2 (advantages are relative to the group)");
  if (c.actor.prompts_per_request < 1) return bad("actor.prompts_per_request", "must be at least 1");
  if (c.actor.temperature < 0) return bad("actor.temperature", "must be >= 0");
  if (!(c.actor.top_p > 0 && c.actor.top_p <= 1)) return bad("actor.top_p", "must be in (0, 1]");
  if (c.actor.top_k < 0) return bad("actor.top_k", "must be >= 0");
  if (c.actor.max_new_tokens < 1) return bad("actor.max_new_tokens", "must be at least 1");
  if (c.actor.max_batch < 1) return bad("actor.max_batch", "must be at least 1");
  if (!ValidDeviceName(c.actor.device)) return bad("actor.device", "must be cpu, cuda or cuda:N");
  if (c.actor.dtype != "fp32" && c.actor.dtype != "bf16") return bad("actor.dtype", "must be fp32 or bf16");
  if (c.coordinator.relay_fanout < 0) return bad("coordinator.relay_fanout", "must be 0 or more");
  if (c.reward.format_mode != "strict" && c.reward.format_mode != "lenient")
    return bad("reward.format_mode", "must be strict or lenient");
  if (c.reward.workers < 1) return bad("reward.workers", "must be at least 1");
  if (c.reward.truncated != "keep" && c.reward.truncated != "zero") return bad("reward.truncated", "must be keep or zero");
  if (c.reward.answer_extraction != "answer_tag" && c.reward.answer_extraction != "boxed" &&
      c.reward.answer_extraction != "answer_then_boxed" && c.reward.answer_extraction != "free")
    return bad("reward.answer_extraction", "must be answer_tag, boxed, answer_then_boxed or free");
  if (c.reward.code_reward != "fraction" && c.reward.code_reward != "all_or_nothing")
    return bad("reward.code_reward", "must be fraction or all_or_nothing");
  if (c.reward.code_compare != "exact" && c.reward.code_compare != "whitespace" && c.reward.code_compare != "float")
    return bad("reward.code_compare", "must be exact, whitespace or float");
  if (!(c.reward.math_rel_tol >= 0)) return bad("reward.math_rel_tol", "must be >= 0");
  if (c.reward.math_timeout_ms < 1) return bad("reward.math_timeout_ms", "must be at least 1");
  if (c.reward.overlong_max_tokens < 0 || c.reward.overlong_buffer_tokens < 0)
    return bad("reward.overlong_max_tokens", "overlong_max_tokens and overlong_buffer_tokens must be >= 0");
  if (c.reward.sandbox_time_limit_ms < 1) return bad("reward.sandbox_time_limit_ms", "must be at least 1");
  if (c.reward.sandbox_memory_mb < 16) return bad("reward.sandbox_memory_mb", "must be at least 16");
  if (c.reward.sandbox_workers < 1) return bad("reward.sandbox_workers", "must be at least 1");
  if (c.learner.prompts_per_step < 1) return bad("learner.prompts_per_step", "must be at least 1");
  if (c.learner.max_steps < 0) return bad("learner.max_steps", "must be >= 0");
  if (!(c.learner.lr > 0)) return bad("learner.lr", "must be positive");
  if (c.learner.beta < 0) return bad("learner.beta", "must be >= 0");
  if (c.learner.clip_eps <= 0) return bad("learner.clip_eps", "must be positive");
  if (c.learner.clip_eps_high < 0) return bad("learner.clip_eps_high", "must be >= 0");
  if (c.learner.kl_estimator != "k1" && c.learner.kl_estimator != "k2" && c.learner.kl_estimator != "k3")
    return bad("learner.kl_estimator", "must be k1, k2 or k3");
  if (c.learner.loss_agg != "seq-mean-token-mean" && c.learner.loss_agg != "token-mean" &&
      c.learner.loss_agg != "seq-mean-token-sum-norm")
    return bad("learner.loss_agg", "must be seq-mean-token-mean, token-mean or seq-mean-token-sum-norm");
  if (c.learner.importance_cap < 0) return bad("learner.importance_cap", "must be >= 0");
  if (c.learner.checkpoint_every < 0) return bad("learner.checkpoint_every", "must be >= 0");
  if (c.learner.keep_checkpoints < 1) return bad("learner.keep_checkpoints", "must be at least 1");
  if (c.learner.ref_refresh_steps < 0) return bad("learner.ref_refresh_steps", "must be >= 0");
  if (c.learner.warmup_steps < 0) return bad("learner.warmup_steps", "must be >= 0");
  if (c.learner.lr_schedule != "constant" && c.learner.lr_schedule != "cosine")
    return bad("learner.lr_schedule", "must be constant or cosine");
  if (!(c.learner.min_lr_ratio >= 0 && c.learner.min_lr_ratio <= 1)) return bad("learner.min_lr_ratio", "must be in [0, 1]");
  if (c.learner.adv_eps <= 0) return bad("learner.adv_eps", "must be positive");
  if (c.learner.max_staleness < 0) return bad("learner.max_staleness", "must be >= 0");
  if (c.learner.delta_full_every < 0) return bad("learner.delta_full_every", "must be >= 0 (0: every version in full)");
  if (c.learner.epochs < 1) return bad("learner.epochs", "must be at least 1");
  if (c.learner.minibatches < 1) return bad("learner.minibatches", "must be at least 1");
  if (c.learner.micro_batch_size < 0) return bad("learner.micro_batch_size", "must be >= 0");
  if (c.learner.dtype != "fp32" && c.learner.dtype != "bf16") return bad("learner.dtype", "must be fp32 or bf16");
  if (!ValidDeviceName(c.learner.device)) return bad("learner.device", "must be cpu, cuda or cuda:N");
  {
    const SecurityConfig& sec = c.security;
    const int tls_files = !sec.ca_file.empty() + !sec.cert_file.empty() + !sec.key_file.empty();
    if (tls_files != 0 && tls_files != 3) {
      return bad(sec.ca_file.empty() ? "security.ca_file" : sec.cert_file.empty() ? "security.cert_file" : "security.key_file",
                 "mutual TLS needs all of ca_file, cert_file and key_file");
    }
    if (!sec.token_file.empty() && tls_files == 0) {
      return bad("security.token_file", "a bearer token needs mutual TLS (ca_file, cert_file, key_file): it would cross the network in clear");
    }
  }
  if (c.learner.world_size < 1) return bad("learner.world_size", "must be at least 1");
  if (c.learner.rank < 0 || c.learner.rank >= c.learner.world_size)
    return bad("learner.rank", "must be in [0, learner.world_size)");
  if (c.learner.world_size > c.learner.prompts_per_step)
    return bad("learner.world_size", "must be at most learner.prompts_per_step (each rank trains whole groups)");
  if (c.learner.dist_timeout_s < 1) return bad("learner.dist_timeout_s", "must be at least 1");
  if (c.learner.buffer_groups < c.learner.prompts_per_step)
    return bad("learner.buffer_groups", "must be at least learner.prompts_per_step");
  if (c.actor.sync && c.learner.prompts_per_step % c.actor.prompts_per_request != 0)
    return bad("actor.sync", "needs actor.prompts_per_request to divide learner.prompts_per_step (whole steps per round)");
  if (c.actor.sync_timeout_ms < 1) return bad("actor.sync_timeout_ms", "must be at least 1");
  if (c.learner.eval_every < 0) return bad("learner.eval_every", "must be >= 0");
  if (c.learner.eval_every > 0 && c.eval.data.empty() && c.pipeline.tasks.empty())
    return bad("learner.eval_every", "needs eval.data, the held-out dataset (or pipeline.tasks to make one)");
  if (c.run.actors < 1) return bad("run.actors", "must be at least 1");
  if (c.run.reward_servers < 1) return bad("run.reward_servers", "must be at least 1");
  if (c.run.max_restarts < 0) return bad("run.max_restarts", "must be at least 0");
  if (c.pipeline.tasks != "" && c.pipeline.tasks != "chains" && c.pipeline.tasks != "programs")
    return bad("pipeline.tasks", "must be empty, chains or programs");
  if (c.pipeline.test_tasks < 1) return bad("pipeline.test_tasks", "must be at least 1");
  if (c.pipeline.min_operands < 2 || c.pipeline.max_operands < c.pipeline.min_operands)
    return bad("pipeline.min_operands", "need 2 <= min_operands <= max_operands");
  if (c.pipeline.base_docs < 0) return bad("pipeline.base_docs", "must be >= 0");
  if (c.pipeline.code_tests < 1 || c.pipeline.code_tests > 64) return bad("pipeline.code_tests", "must be in [1, 64]");
  for (auto [name, v] : {std::pair{"pipeline.words_share", c.pipeline.words_share},
                         {"pipeline.base_words_share", c.pipeline.base_words_share},
                         {"pipeline.base_mixed_share", c.pipeline.base_mixed_share},
                         {"pipeline.base_instruction_share", c.pipeline.base_instruction_share},
                         {"pipeline.base_instruction_kept", c.pipeline.base_instruction_kept},
                         {"pipeline.base_restated_share", c.pipeline.base_restated_share}}) {
    if (!(v >= 0 && v <= 1)) return bad(name, "must be in [0, 1]");
  }
  if (c.pipeline.base_docs > 0 && c.pipeline.tasks.empty())
    return bad("pipeline.base_docs",
               "a generated base model needs pipeline.tasks = chains or programs (its corpus is about that task)");
  if (c.pipeline.base_numbers != "whole" && c.pipeline.base_numbers != "digits")
    return bad("pipeline.base_numbers", "must be whole or digits");
  if (absl::StatusOr<std::vector<std::string>> st = PipelineStages(c.pipeline); !st.ok()) {
    return bad("pipeline.stages", std::string(st.status().message()));
  } else if (!st->empty()) {
    const PipelineConfig& p = c.pipeline;
    if (p.tasks != "chains") return bad("pipeline.stages", "R1's stages need pipeline.tasks = chains (cold-start chains, held-out set)");
    if (p.base_docs <= 0 && c.model.path.empty())
      return bad("pipeline.stages", "need a base model: pipeline.base_docs > 0 or model.path");
    if (p.cold_start_tasks < 1) return bad("pipeline.cold_start_tasks", "must be at least 1");
    if (p.cold_start_epochs < 1) return bad("pipeline.cold_start_epochs", "must be at least 1");
    if (p.rl_steps < 1) return bad("pipeline.rl_steps", "must be at least 1");
    if (p.final_rl_steps < 1) return bad("pipeline.final_rl_steps", "must be at least 1");
    if (!(p.rl_lr >= 0 && p.rl_lr < 1)) return bad("pipeline.rl_lr", "must be in [0, 1)");
    if (p.rejection_tasks < 1) return bad("pipeline.rejection_tasks", "must be at least 1");
    if (p.rejection_samples < 1) return bad("pipeline.rejection_samples", "must be at least 1");
    if (!(p.rejection_min_language >= 0 && p.rejection_min_language <= 1))
      return bad("pipeline.rejection_min_language", "must be in [0, 1]");
    if (p.rejection_other_docs < 0) return bad("pipeline.rejection_other_docs", "must be >= 0");
    if (p.rejection_other_docs > 0 && p.base_docs <= 0)
      return bad("pipeline.rejection_other_docs", "mixes in pretraining documents: needs pipeline.base_docs > 0");
    if (p.rejection_epochs < 1) return bad("pipeline.rejection_epochs", "must be at least 1");
    for (auto [name, v] : {std::pair{"pipeline.cold_start_lr", p.cold_start_lr}, {"pipeline.rejection_lr", p.rejection_lr}}) {
      if (!(v > 0 && v < 1)) return bad(name, "must be in (0, 1)");
    }
    if (!p.eval_before_after) return bad("pipeline.stages", "evaluates every stage: needs pipeline.eval_before_after = true");
  }
  if (c.sft.batch_size < 1) return bad("sft.batch_size", "must be at least 1");
  if (c.sft.epochs < 1) return bad("sft.epochs", "must be at least 1");
  if (c.sft.max_steps < 0) return bad("sft.max_steps", "must be >= 0");
  if (c.sft.max_seq_len < 0) return bad("sft.max_seq_len", "must be >= 0");
  if (c.eval.k < 1) return bad("eval.k", "must be at least 1");
  if (c.eval.temperature < 0) return bad("eval.temperature", "must be >= 0");
  if (!(c.eval.top_p > 0 && c.eval.top_p <= 1)) return bad("eval.top_p", "must be in (0, 1]");
  if (c.eval.max_new_tokens < 0) return bad("eval.max_new_tokens", "must be >= 0");
  if (c.eval.max_tasks < 0) return bad("eval.max_tasks", "must be >= 0");
  if (c.eval.max_batch < 1) return bad("eval.max_batch", "must be at least 1");
  {
    const std::string& x = c.eval.answer_extraction;
    if (x != "free" && x != "answer_tag" && x != "boxed" && x != "answer_then_boxed")
      return bad("eval.answer_extraction", "must be free, answer_tag, boxed or answer_then_boxed");
  }
  if (c.model.path.empty() && c.model.max_position_embeddings < c.actor.max_new_tokens + 8)
    return bad("model.max_position_embeddings", "too small for actor.max_new_tokens plus a prompt");
  return absl::OkStatus();
}

std::string ConfigToYaml(const RunConfig& cfg_in) {
  RunConfig cfg = cfg_in;
  std::ostringstream os;
  std::string section;
  std::vector<std::string> open;  // nested prefix within the section
  for (const ConfigField& f : ConfigFields(cfg)) {
    if (f.section != section) {
      section = f.section;
      open.clear();
      os << section << ":\n";
    }
    std::vector<std::string> parts = absl::StrSplit(f.key, '.');
    std::vector<std::string> prefix(parts.begin(), parts.end() - 1);
    size_t common = 0;
    while (common < open.size() && common < prefix.size() && open[common] == prefix[common]) ++common;
    open.resize(common);
    for (size_t i = common; i < prefix.size(); ++i) {
      os << std::string(2 * (i + 1), ' ') << prefix[i] << ":\n";
      open.push_back(prefix[i]);
    }
    os << std::string(2 * (prefix.size() + 1), ' ') << parts.back() << ": " << FieldValue(f)
       << "  # " << f.help << "\n";
  }
  return os.str();
}

absl::StatusOr<RunConfig> LoadConfigWithOverrides(const std::string& path,
                                                  const std::vector<std::string>& overrides) {
  absl::StatusOr<RunConfig> cfg = LoadConfig(path);
  if (!cfg.ok()) return cfg.status();
  absl::Status s = ApplyOverrides(*cfg, overrides);
  if (!s.ok()) return s;
  s = ValidateConfig(*cfg);
  if (!s.ok()) return s;
  return cfg;
}

}  // namespace grpo
