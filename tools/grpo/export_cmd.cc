// grpo export: a learner checkpoint as a Hugging Face model directory.
//
//   grpo export --checkpoint DIR --out HFDIR [--dtype f32|bf16]
//
// DIR is one checkpoint (…/checkpoints/step-00000042) or a directory of them (a run's
// checkpoints/, or the run directory itself), in which case the newest valid one is
// used. HFDIR receives config.json, generation_config.json, model.safetensors and, when
// the run's model came from a Hugging Face directory, its tokenizer.json and
// tokenizer_config.json: it loads in transformers and vLLM, and in `grpo generate`.
#include <filesystem>
#include <iostream>
#include <memory>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "core/common/checksum.h"
#include "core/model/hf_model.h"
#include "core/model/safetensors.h"
#include "nlohmann/json.hpp"
#include "services/learner/checkpoint.h"
#include "tools/grpo/subcommands.h"

namespace grpo {
namespace {

namespace fs = std::filesystem;

struct ExportOptions {
  std::string checkpoint;
  std::string out;
  std::string dtype = "f32";
};

int RunExport(const ExportOptions& o) {
  auto fail = [](const std::string& msg, int code) {
    std::cerr << "grpo export: " << msg << "\n";
    return code;
  };
  if (o.dtype != "f32" && o.dtype != "bf16") return fail("--dtype must be f32 or bf16", 2);
  fs::path dir = o.checkpoint;
  if (!fs::exists(dir / "manifest.json")) {
    std::optional<std::string> newest;
    for (const fs::path& root : {dir, dir / "checkpoints"}) {
      if (!newest) newest = NewestValidCheckpoint(root.string());
    }
    if (!newest) return fail(absl::StrCat("no valid checkpoint in ", dir.string()), 1);
    dir = *newest;
  }
  absl::StatusOr<std::string> config_text = ReadFile((dir / "config.json").string());
  if (!config_text.ok()) return fail(std::string(config_text.status().message()), 1);
  nlohmann::json j = nlohmann::json::parse(*config_text, nullptr, false);
  absl::StatusOr<model::ModelConfig> config = model::ModelConfig::FromJson(j);
  if (!config.ok()) return fail(absl::StrCat((dir / "config.json").string(), ": ", config.status().message()), 1);
  absl::StatusOr<model::TensorMap> weights = model::ReadSafetensorsFile((dir / "model.safetensors").string());
  if (!weights.ok()) return fail(std::string(weights.status().message()), 1);
  model::Transformer m(*config);
  if (absl::Status s = model::LoadStateDict(*m, *weights); !s.ok()) {
    return fail(absl::StrCat((dir / "model.safetensors").string(), ": ", s.message()), 1);
  }
  model::SaveOptions save;
  save.dtype = o.dtype == "bf16" ? torch::kBFloat16 : torch::kFloat;
  if (absl::Status s = model::SavePretrained(m, o.out, save); !s.ok()) return fail(std::string(s.message()), 1);
  for (const char* t : {"tokenizer.json", "tokenizer_config.json"}) {
    if (!fs::exists(dir / t)) continue;
    absl::StatusOr<std::string> bytes = ReadFile((dir / t).string());
    if (!bytes.ok() || !WriteFileAtomic((fs::path(o.out) / t).string(), *bytes).ok()) {
      return fail(absl::StrCat("cannot copy ", t), 1);
    }
  }
  std::cerr << "exported " << dir.string() << " to " << o.out << "\n";
  return 0;
}

}  // namespace

Subcommand AddExportCommand(CLI::App& app) {
  auto o = std::make_shared<ExportOptions>();
  CLI::App* cmd = app.add_subcommand("export", "write a learner checkpoint as a Hugging Face model directory");
  cmd->add_option("--checkpoint", o->checkpoint, "a checkpoint, or a run / checkpoints directory (newest used)")
      ->required();
  cmd->add_option("--out", o->out, "output directory")->required();
  cmd->add_option("--dtype", o->dtype, "dtype on disk: f32 or bf16");
  return {cmd, [o] { return RunExport(*o); }};
}

}  // namespace grpo
