#include "services/learner/sft.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/common/checksum.h"
#include "core/common/logging.h"
#include "core/common/sft_data.h"
#include "core/common/subprocess.h"
#include "core/model/hf_model.h"
#include "core/model/numerics_check.h"
#include "core/policy/policy.h"
#include "core/tokenizer/bpe_tokenizer.h"
#include "core/tokenizer/chat_template.h"
#include "services/learner/checkpoint.h"
#include "services/learner/group.h"
#include "services/learner/schedule.h"
#include "core/grpo/trainer.h"
#include "services/learner/train_input.h"

namespace grpo {
namespace {

namespace fs = std::filesystem;

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Encodes every record; errors name the line.
absl::StatusOr<std::vector<SupervisedExample>> Encode(const std::vector<SftRecord>& records,
                                                      const tokenizer::BpeTokenizer& tok,
                                                      tokenizer::ChatTemplate tmpl, const RunConfig& cfg,
                                                      int64_t end_id, int64_t max_len) {
  std::vector<SupervisedExample> out;
  out.reserve(records.size());
  std::vector<std::string> errors;
  int bad = 0;
  for (const SftRecord& r : records) {
    SupervisedExample e;
    if (r.is_text) {
      e.tokens = tok.LeadingSpecialIds();
      std::vector<int64_t> body = tok.Encode(r.text);
      e.tokens.insert(e.tokens.end(), body.begin(), body.end());
      e.loss_from = 1;
    } else {
      e.tokens = EncodeHfPrompt(tok, tmpl, r.prompt, cfg.model.prompt_template, cfg.model.system_prompt);
      e.loss_from = static_cast<int64_t>(e.tokens.size());
      std::vector<int64_t> body = tok.Encode(r.completion);
      e.tokens.insert(e.tokens.end(), body.begin(), body.end());
    }
    e.tokens.push_back(end_id);
    if (static_cast<int64_t>(e.tokens.size()) > max_len) {
      if (++bad <= 10) {
        errors.push_back(absl::StrCat(r.where, ": ", e.tokens.size(), " tokens, longer than the limit of ", max_len,
                                      " (sft.max_seq_len or the model's context)"));
      }
      continue;
    }
    if (e.loss_from >= static_cast<int64_t>(e.tokens.size())) {
      if (++bad <= 10) errors.push_back(absl::StrCat(r.where, ": nothing to train on"));
      continue;
    }
    out.push_back(std::move(e));
  }
  if (bad > 0) {
    std::string msg = absl::StrCat(bad, " line(s) cannot be trained on; fix them and retry:");
    for (const auto& e : errors) absl::StrAppend(&msg, "\n  ", e);
    if (bad > 10) absl::StrAppend(&msg, "\n  ... and ", bad - 10, " more");
    return absl::InvalidArgumentError(msg);
  }
  return out;
}

// The order of pass `epoch`: a permutation of [0, n) fixed by the seed and the pass.
std::vector<int64_t> PassOrder(int64_t n, uint64_t seed, int64_t epoch) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(Mix(seed ^ Mix(static_cast<uint64_t>(epoch) + 77)));
  at::Tensor perm = torch::randperm(n, gen, torch::TensorOptions().dtype(torch::kInt64));
  return std::vector<int64_t>(perm.data_ptr<int64_t>(), perm.data_ptr<int64_t>() + n);
}

std::string Bar(int64_t step, int64_t total, double loss, double tps) {
  const int width = 24;
  const int fill = total > 0 ? static_cast<int>(width * step / total) : 0;
  return absl::StrFormat("[%s%s] step %d/%d  loss %.4f  tokens/s %.0f", std::string(fill, '#'),
                         std::string(width - fill, '.'), step, total, loss, tps);
}

}  // namespace

absl::Status RunSft(const RunConfig& cfg, const SftJob& job) {
  const LearnerConfig& l = cfg.learner;
  const int R = static_cast<int>(l.world_size), rank = static_cast<int>(l.rank);
  torch::set_num_threads(static_cast<int>(l.threads));
  const std::string run_dir = job.run_dir.empty() ? job.out_dir : job.run_dir;

  // ---- Data, tokenizer and model: everything is checked before the first step.
  absl::StatusOr<std::vector<SftRecord>> records = LoadSftData(job.data_path);
  if (!records.ok()) return records.status();
  absl::StatusOr<tokenizer::BpeTokenizer> tok = tokenizer::BpeTokenizer::FromFile(job.model_dir);
  if (!tok.ok()) return tok.status();
  absl::StatusOr<tokenizer::ChatTemplate> tmpl = tokenizer::ParseChatTemplate(cfg.model.chat_template);
  if (!tmpl.ok()) return absl::InvalidArgumentError(absl::StrCat("model.chat_template: ", tmpl.status().message()));
  absl::StatusOr<model::Transformer> model = model::LoadPretrained(job.model_dir);
  if (!model.ok()) return model.status();
  const model::ModelConfig& mc = (*model)->config();
  std::vector<int64_t> stops = HfStopTokenIds(job.model_dir, mc, *tok, *tmpl);
  if (stops.empty()) return absl::InvalidArgumentError(absl::StrCat(job.model_dir, ": no end-of-text token (eos_token_id)"));
  // The template's end-of-turn token ends a chat completion; else the model's eos.
  int64_t end_id = stops[0];
  for (const std::string& s : tokenizer::ChatTemplateStopTokens(*tmpl)) {
    if (auto id = tok->TokenToId(s)) {
      end_id = *id;
      break;
    }
  }
  const int64_t max_len = cfg.sft.max_seq_len > 0 ? std::min(cfg.sft.max_seq_len, mc.max_position_embeddings)
                                                  : mc.max_position_embeddings;
  absl::StatusOr<std::vector<SupervisedExample>> examples = Encode(*records, *tok, *tmpl, cfg, end_id, max_len);
  if (!examples.ok()) return absl::InvalidArgumentError(absl::StrCat(job.data_path, ": ", examples.status().message()));
  const int64_t N = static_cast<int64_t>(examples->size());
  const int64_t batch = cfg.sft.batch_size;
  const int64_t per_epoch = (N + batch - 1) / batch;
  const int64_t total = cfg.sft.max_steps > 0 ? cfg.sft.max_steps : per_epoch * cfg.sft.epochs;

  {
    // Pretraining through a miscomputing BLAS kernel gives a worse base model with no
    // error (issue #21): the kernels this micro-batch size picks are checked first.
    model::KernelCheckOptions check;
    int64_t longest = 1;
    for (const SupervisedExample& e : *examples) longest = std::max<int64_t>(longest, static_cast<int64_t>(e.tokens.size()));
    const int64_t seqs = l.micro_batch_size > 0 ? std::min(l.micro_batch_size, batch) : batch;
    check.train_rows = seqs * longest;
    if (absl::Status s = model::CheckFloat32Kernels(mc, check); !s.ok()) return s;
  }
  (*model)->train();
  auto optimizer = std::make_unique<torch::optim::AdamW>(
      (*model)->parameters(), torch::optim::AdamWOptions(l.lr).weight_decay(l.weight_decay));

  // ---- Ranks.
  std::vector<ChildProcess> children;
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  if (R > 1) {
    std::string address = l.dist_address;
    if (address.empty()) {
      if (rank != 0) return absl::InvalidArgumentError("learner.rank > 0 needs learner.dist_address");
      absl::StatusOr<int> port = PickFreePort();
      if (!port.ok()) return port.status();
      address = absl::StrCat("127.0.0.1:", *port);
      for (int r = 1; r < R; ++r) {
        ProcessSpec spec;
        spec.argv = job.argv;
        for (std::string s : {absl::StrCat("learner.rank=", r), absl::StrCat("learner.dist_address=", address)}) {
          spec.argv.push_back("--set");
          spec.argv.push_back(s);
        }
        spec.argv.push_back("--no-progress");
        fs::create_directories(run_dir);
        spec.log_path = (fs::path(run_dir) / absl::StrCat("sft-rank-", r, ".log")).string();
        absl::StatusOr<ChildProcess> child = ChildProcess::Spawn(spec);
        if (!child.ok()) return child.status();
        children.push_back(std::move(*child));
      }
    }
    absl::StatusOr<c10::intrusive_ptr<c10d::ProcessGroup>> g =
        FormGlooGroupAt(address, rank, R, std::chrono::seconds(l.dist_timeout_s));
    if (!g.ok()) return g.status();
    group = *g;
  }

  TrainerOptions topts = TrainerOptionsFromConfig(cfg);
  GrpoTrainer trainer(*model, model::Transformer(nullptr), optimizer.get(), topts, stops[0], group);

  // ---- Resume (rank 0 reads its checkpoint; the others take rank 0's state).
  const std::string ckpt_root = l.checkpoint_dir.empty() ? (fs::path(run_dir) / "checkpoints").string() : l.checkpoint_dir;
  int64_t start = 0;
  if (rank == 0) {
    if (std::optional<std::string> dir = NewestValidCheckpoint(ckpt_root)) {
      CheckpointInputs into{*model, model::Transformer(nullptr), optimizer.get(), job.model_dir};
      absl::StatusOr<CheckpointState> st = LoadCheckpoint(*dir, into);
      if (!st.ok()) return st.status();
      MoveOptimizerState(*optimizer, torch::Device(l.device));
      start = static_cast<int64_t>(st->step);
      spdlog::info("resumed from {} (step {})", *dir, start);
    }
  }
  if (group) start = ShareRank0State(*group, trainer, *optimizer, {start, 0}, torch::Device(l.device)).step;

  // ---- Steps.
  FILE* metrics = nullptr;
  if (rank == 0) {
    fs::create_directories(run_dir);
    const std::string path = l.metrics_path.empty() ? (fs::path(run_dir) / "metrics.jsonl").string() : l.metrics_path;
    metrics = std::fopen(path.c_str(), "a");
    if (!metrics) return absl::InternalError(absl::StrCat("cannot open ", path, " for appending"));
  }
  const bool tty = job.progress && rank == 0 && ::isatty(STDERR_FILENO);
  auto checkpoint = [&](int64_t step) -> absl::Status {
    if (rank != 0) return absl::OkStatus();
    CheckpointState state;
    state.step = static_cast<uint64_t>(step);
    CheckpointInputs in{*model, model::Transformer(nullptr), optimizer.get(), job.model_dir};
    return WriteCheckpoint(ckpt_root, state, in, static_cast<int>(l.keep_checkpoints));
  };
  std::vector<int64_t> order;
  int64_t order_epoch = -1;
  absl::Status status;
  for (int64_t step = start + 1; step <= total; ++step) {
    const int64_t epoch = (step - 1) / per_epoch, b = (step - 1) % per_epoch;
    if (epoch != order_epoch) {
      order = PassOrder(N, static_cast<uint64_t>(cfg.run.seed), epoch);
      order_epoch = epoch;
    }
    const int64_t from = b * batch, to = std::min(N, from + batch), n = to - from;
    std::vector<const SupervisedExample*> mine;
    for (int64_t i = from + n * rank / R; i < from + n * (rank + 1) / R; ++i) {
      mine.push_back(&(*examples)[static_cast<size_t>(order[static_cast<size_t>(i)])]);
    }
    const double lr = ScheduledLearningRate(l, static_cast<uint64_t>(step), total);
    for (auto& pg : optimizer->param_groups()) static_cast<torch::optim::AdamWOptions&>(pg.options()).lr(lr);
    auto t0 = std::chrono::steady_clock::now();
    TrainStats ts;
    try {
      ts = trainer.SupervisedStep(mine, static_cast<uint64_t>(step));
    } catch (const std::exception& e) {
      status = absl::InternalError(absl::StrCat("step ", step, ": ", e.what()));
      break;
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (rank == 0) {
      const double tps = secs > 0 ? static_cast<double>(ts.loss_tokens) / secs : 0.0;
      nlohmann::json j = {{"step", step}, {"epoch", epoch}, {"loss", ts.loss}, {"tokens", ts.loss_tokens},
                          {"tokens_per_s", tps}, {"lr", lr}, {"grad_norm", ts.grad_norm},
                          {"sequences", n}, {"world_size", R},
                          {"time", absl::FormatTime(absl::RFC3339_full, absl::Now(), absl::UTCTimeZone())}};
      std::fputs((j.dump() + "\n").c_str(), metrics);
      std::fflush(metrics);
      if (tty) {
        std::fprintf(stderr, "\r\033[K%s", Bar(step, total, ts.loss, tps).c_str());
      } else if (job.progress && (step % 50 == 0 || step == total)) {
        std::fprintf(stderr, "%s\n", Bar(step, total, ts.loss, tps).c_str());
      }
    }
    if ((l.checkpoint_every > 0 && step % l.checkpoint_every == 0) || step == total) {
      if (absl::Status s = checkpoint(step); !s.ok()) spdlog::error("checkpoint of step {}: {}", step, s.message());
    }
  }
  if (tty) std::fprintf(stderr, "\n");
  if (metrics) std::fclose(metrics);
  for (ChildProcess& c : children) {
    std::optional<int> ws = c.WaitFor(absl::Seconds(60));
    if (!ws) {
      c.Stop(absl::Seconds(5));
      if (status.ok()) status = absl::InternalError("a data-parallel rank did not finish");
    } else if (status.ok() && !(WIFEXITED(*ws) && WEXITSTATUS(*ws) == 0)) {
      status = absl::InternalError(absl::StrCat("a data-parallel rank ", DescribeWaitStatus(*ws)));
    }
  }
  if (!status.ok() || rank != 0) return status;

  // ---- The trained model, in the Hugging Face layout.
  (*model)->eval();
  if (absl::Status s = model::SavePretrained(*model, job.out_dir); !s.ok()) return s;
  for (const char* t : {"tokenizer.json", "tokenizer_config.json"}) {
    const fs::path src = fs::path(job.model_dir) / t;
    if (!fs::exists(src) || fs::equivalent(fs::path(job.model_dir), fs::path(job.out_dir))) continue;
    absl::StatusOr<std::string> bytes = ReadFile(src.string());
    if (!bytes.ok()) return bytes.status();
    if (absl::Status s = WriteFileAtomic((fs::path(job.out_dir) / t).string(), *bytes); !s.ok()) return s;
  }
  spdlog::info("trained {} step(s) on {} sequence(s); model written to {}", total - start, N, job.out_dir);
  return absl::OkStatus();
}

}  // namespace grpo
