#include "services/learner/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>
#include <vector>

#include <torch/serialize.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/common/checksum.h"
#include "core/common/logging.h"
#include "core/model/safetensors.h"
#include "nlohmann/json.hpp"

namespace grpo {
namespace {

namespace fs = std::filesystem;

std::string StepName(uint64_t step) { return absl::StrFormat("step-%08d", step); }

// Checkpoint directories under root, newest first.
std::vector<fs::path> Checkpoints(const std::string& root) {
  std::vector<std::pair<uint64_t, fs::path>> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (!e.is_directory() || name.rfind("step-", 0) != 0 || name.find(".tmp") != std::string::npos) continue;
    try {
      found.emplace_back(std::stoull(name.substr(5)), e.path());
    } catch (...) {
    }
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<fs::path> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

// Reads every file the manifest lists and checks its CRC. Returns name -> bytes.
absl::StatusOr<std::map<std::string, std::string>> ReadVerified(const fs::path& dir) {
  absl::StatusOr<std::string> manifest = ReadFile((dir / "manifest.json").string());
  if (!manifest.ok()) return absl::DataLossError(absl::StrCat(dir.string(), ": no manifest.json (incomplete)"));
  nlohmann::json m = nlohmann::json::parse(*manifest, nullptr, false);
  if (!m.is_object() || !m.contains("files") || !m["files"].is_object()) {
    return absl::DataLossError(absl::StrCat(dir.string(), "/manifest.json: malformed"));
  }
  std::map<std::string, std::string> files;
  for (const auto& [name, crc] : m["files"].items()) {
    absl::StatusOr<std::string> bytes = ReadFile((dir / name).string());
    if (!bytes.ok()) return absl::DataLossError(absl::StrCat(dir.string(), "/", name, ": missing"));
    if (!crc.is_number_unsigned() || Crc32(*bytes) != crc.get<uint32_t>()) {
      return absl::DataLossError(absl::StrCat(dir.string(), "/", name, ": CRC mismatch (corrupt)"));
    }
    files[name] = std::move(*bytes);
  }
  for (const char* required : {"model.safetensors", "optimizer.pt", "state.json"}) {
    if (!files.count(required)) return absl::DataLossError(absl::StrCat(dir.string(), ": ", required, " is missing"));
  }
  return files;
}

}  // namespace

absl::Status WriteCheckpoint(const std::string& root, const CheckpointState& state, const CheckpointInputs& in,
                             int keep) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", root, ": ", ec.message()));
  const fs::path final_dir = fs::path(root) / StepName(state.step);
  const fs::path tmp = fs::path(root) / absl::StrCat(StepName(state.step), ".tmp-", getpid());
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", tmp.string(), ": ", ec.message()));

  std::map<std::string, std::string> files;
  files["model.safetensors"] = model::SerializeSafetensors(model::StateDict(*in.policy), {{"format", "pt"}});
  if (!in.reference.is_empty()) {
    files["reference.safetensors"] = model::SerializeSafetensors(model::StateDict(*in.reference), {{"format", "pt"}});
  }
  {
    torch::serialize::OutputArchive archive;
    in.optimizer->save(archive);
    std::ostringstream os;
    archive.save_to(os);
    files["optimizer.pt"] = os.str();
  }
  files["config.json"] = in.policy->config().ToJson().dump(2);
  if (!in.tokenizer_dir.empty()) {
    for (const char* t : {"tokenizer.json", "tokenizer_config.json"}) {
      absl::StatusOr<std::string> bytes = ReadFile((fs::path(in.tokenizer_dir) / t).string());
      if (bytes.ok()) files[t] = std::move(*bytes);
    }
  }
  nlohmann::json st = {{"step", state.step}, {"version", state.version}};
  nlohmann::json seen = nlohmann::json::array();
  for (const auto& [id, epoch] : state.seen) seen.push_back({id, epoch});
  st["seen"] = seen;
  nlohmann::json recent = nlohmann::json::array();
  for (const CheckpointState::Lease& l : state.recent) recent.push_back({l.id, l.prompt_id, l.epoch});
  st["recent"] = recent;
  files["state.json"] = st.dump();

  nlohmann::json manifest = {{"files", nlohmann::json::object()}};
  for (const auto& [name, bytes] : files) {
    if (absl::Status s = WriteFileAtomic((tmp / name).string(), bytes); !s.ok()) return s;
    manifest["files"][name] = Crc32(bytes);
  }
  if (absl::Status s = WriteFileAtomic((tmp / "manifest.json").string(), manifest.dump(2)); !s.ok()) return s;
  fs::remove_all(final_dir, ec);
  fs::rename(tmp, final_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot rename ", tmp.string(), ": ", ec.message()));

  std::vector<fs::path> all = Checkpoints(root);
  for (size_t i = static_cast<size_t>(std::max(1, keep)); i < all.size(); ++i) fs::remove_all(all[i], ec);
  return absl::OkStatus();
}

std::optional<std::string> NewestValidCheckpoint(const std::string& root) {
  for (const fs::path& dir : Checkpoints(root)) {
    absl::StatusOr<std::map<std::string, std::string>> files = ReadVerified(dir);
    if (files.ok()) return dir.string();
    spdlog::warn("skipping checkpoint {}: {}", dir.string(), files.status().message());
  }
  return std::nullopt;
}

absl::StatusOr<CheckpointState> LoadCheckpoint(const std::string& dir, const CheckpointInputs& into) {
  absl::StatusOr<std::map<std::string, std::string>> files = ReadVerified(dir);
  if (!files.ok()) return files.status();
  // Check everything first.
  absl::StatusOr<model::TensorMap> policy = model::ParseSafetensors((*files)["model.safetensors"]);
  if (!policy.ok()) return absl::DataLossError(absl::StrCat(dir, "/model.safetensors: ", policy.status().message()));
  std::optional<model::TensorMap> reference;
  if (!into.reference.is_empty() && files->count("reference.safetensors")) {
    absl::StatusOr<model::TensorMap> r = model::ParseSafetensors((*files)["reference.safetensors"]);
    if (!r.ok()) return absl::DataLossError(absl::StrCat(dir, "/reference.safetensors: ", r.status().message()));
    reference = std::move(*r);
  }
  nlohmann::json st = nlohmann::json::parse((*files)["state.json"], nullptr, false);
  if (!st.is_object() || !st.contains("step") || !st.contains("version") || !st.contains("seen")) {
    return absl::DataLossError(absl::StrCat(dir, "/state.json: malformed"));
  }
  CheckpointState state;
  try {
    state.step = st["step"].get<uint64_t>();
    state.version = st["version"].get<int64_t>();
    for (const auto& e : st["seen"]) state.seen.insert({e.at(0).get<std::string>(), e.at(1).get<uint32_t>()});
    if (st.contains("recent")) {
      for (const auto& e : st["recent"]) {
        state.recent.push_back({e.at(0).get<uint64_t>(), e.at(1).get<std::string>(), e.at(2).get<uint32_t>()});
      }
    }
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat(dir, "/state.json: ", e.what()));
  }
  // Apply. The optimizer is loaded into a scratch copy first so a bad archive changes nothing.
  if (absl::Status s = model::LoadStateDict(*model::Transformer(into.policy), *policy); !s.ok()) {
    return absl::DataLossError(absl::StrCat(dir, "/model.safetensors: ", s.message()));
  }
  if (reference) {
    if (absl::Status s = model::LoadStateDict(*model::Transformer(into.reference), *reference); !s.ok()) {
      return absl::DataLossError(absl::StrCat(dir, "/reference.safetensors: ", s.message()));
    }
  }
  try {
    torch::serialize::InputArchive archive;
    std::istringstream is((*files)["optimizer.pt"]);
    archive.load_from(is);
    into.optimizer->load(archive);
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat(dir, "/optimizer.pt: ", e.what()));
  }
  return state;
}

}  // namespace grpo
