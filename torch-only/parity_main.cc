// grpo-parity: our side of the parity check with Hugging Face transformers
// (torch-only/parity.py runs transformers on the other side).
//
//   grpo-parity write --arch llama|qwen2|qwen3 --out DIR [--seed S] [--vocab V]
//       A random model of that architecture in Hugging Face format (config.json,
//       model.safetensors): every weight random, norms included, so a wrong layout,
//       transpose or missing bias shows in the logits. llama is untied with Llama 3
//       rope scaling and an MLP bias; qwen2 tied with its q/k/v bias; qwen3 untied with
//       an explicit head_dim different from hidden / heads and q/k norms.
//   grpo-parity run --model DIR --ids "1,2,3;4,5" [--steps N] [--device D] [--dtype f32|bf16]
//                   --out FILE.json
//       Loads DIR, writes each sequence's full-sequence logits (T x V, flattened) and
//       its greedy continuation of N tokens by the Generator (no stop tokens) as JSON.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "core/model/device.h"
#include "core/model/generator.h"
#include "core/model/hf_model.h"
#include "core/model/model_config.h"
#include "core/model/transformer.h"
#include "nlohmann/json.hpp"

namespace {

using grpo::model::ModelConfig;

int Fail(const std::string& msg) {
  std::cerr << "grpo-parity: " << msg << "\n";
  return 2;
}

int Write(const std::map<std::string, std::string>& a) {
  const std::string arch = a.count("--arch") ? a.at("--arch") : "";
  if (!a.count("--out")) return Fail("write needs --out DIR");
  const int64_t seed = a.count("--seed") ? std::stoll(a.at("--seed")) : 1;
  ModelConfig c;
  c.model_type = arch;
  c.vocab_size = a.count("--vocab") ? std::stoll(a.at("--vocab")) : 384;
  c.hidden_size = 128;
  c.intermediate_size = 320;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 512;
  c.rms_norm_eps = 1e-6;
  c.bos_token_id = 1;
  c.eos_token_id = {2};
  if (arch == "llama") {
    c.rope_theta = 500000.0;
    c.tie_word_embeddings = false;
    c.mlp_bias = true;
    grpo::model::RopeScaling rs;
    rs.rope_type = "llama3";
    rs.factor = 8.0;
    rs.low_freq_factor = 1.0;
    rs.high_freq_factor = 4.0;
    rs.original_max_position_embeddings = 64;  // small, so the scaling matters here
    c.rope_scaling = rs;
  } else if (arch == "qwen2") {
    c.rope_theta = 1000000.0;
    c.tie_word_embeddings = true;
    c.attention_bias = true;
  } else if (arch == "qwen3") {
    c.rope_theta = 1000000.0;
    c.tie_word_embeddings = false;
    c.head_dim_value = 48;  // not 128 / 4
  } else {
    return Fail("--arch must be llama, qwen2 or qwen3");
  }
  if (absl::Status s = c.Validate(); !s.ok()) return Fail(std::string(s.message()));
  torch::manual_seed(seed);
  grpo::model::Transformer model(c);
  {
    torch::NoGradGuard ng;
    for (auto& p : model->named_parameters()) {
      const std::string& name = p.key();
      torch::Tensor t = p.value();
      if (name.find("norm") != std::string::npos) {
        t.copy_(1.0 + 0.3 * torch::randn_like(t));
      } else if (name.find("bias") != std::string::npos) {
        t.copy_(0.1 * torch::randn_like(t));
      } else {
        t.copy_(torch::randn_like(t) / std::sqrt(static_cast<double>(t.size(-1))));
      }
    }
  }
  if (absl::Status s = grpo::model::SavePretrained(model, a.at("--out")); !s.ok()) return Fail(std::string(s.message()));
  std::cout << "wrote " << arch << " to " << a.at("--out") << "\n";
  return 0;
}

int Run(const std::map<std::string, std::string>& a) {
  if (!a.count("--model") || !a.count("--ids") || !a.count("--out")) return Fail("run needs --model, --ids and --out");
  const int64_t steps = a.count("--steps") ? std::stoll(a.at("--steps")) : 16;
  const std::string dtype = a.count("--dtype") ? a.at("--dtype") : "f32";
  absl::StatusOr<c10::Device> device = grpo::model::ResolveDevice(a.count("--device") ? a.at("--device") : "cpu", "--device");
  if (!device.ok()) return Fail(std::string(device.status().message()));
  grpo::model::LoadOptions load;
  load.dtype = dtype == "bf16" ? torch::kBFloat16 : torch::kFloat;
  load.device = *device;
  auto model = grpo::model::LoadPretrained(a.at("--model"), load);
  if (!model.ok()) return Fail(std::string(model.status().message()));
  std::vector<std::vector<int64_t>> seqs;
  for (absl::string_view part : absl::StrSplit(a.at("--ids"), ';')) {
    std::vector<int64_t> ids;
    for (absl::string_view t : absl::StrSplit(part, ',')) {
      int64_t id = 0;
      if (!absl::SimpleAtoi(t, &id)) return Fail("--ids: bad token id \"" + std::string(t) + "\"");
      ids.push_back(id);
    }
    seqs.push_back(ids);
  }
  nlohmann::json out;
  out["device"] = device->str();
  out["dtype"] = dtype;
  out["sequences"] = nlohmann::json::array();
  std::vector<grpo::model::GenerationRequest> requests;
  for (const auto& ids : seqs) {
    torch::NoGradGuard ng;
    torch::Tensor x = torch::tensor(ids, torch::kInt64).view({1, -1}).to(*device);
    torch::Tensor logits = (*model)->forward(x).to(torch::kCPU, torch::kFloat).contiguous();  // (1, T, V)
    nlohmann::json s;
    s["ids"] = ids;
    s["shape"] = {logits.size(1), logits.size(2)};
    s["logits"] = std::vector<float>(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
    out["sequences"].push_back(s);
    requests.push_back({ids, 1});
  }
  grpo::model::SamplingParams sp;
  sp.temperature = 0;
  sp.max_new_tokens = steps;
  grpo::model::GeneratorOptions go;
  go.max_batch = static_cast<int64_t>(requests.size());
  grpo::model::Generator gen(*model, go);
  auto result = gen.Generate(requests, sp, 0);
  if (!result.ok()) return Fail(std::string(result.status().message()));
  for (size_t i = 0; i < requests.size(); ++i) out["sequences"][i]["greedy"] = (*result)[i][0].token_ids;
  std::ofstream f(a.at("--out"));
  f << out.dump();
  if (!f) return Fail("cannot write " + a.at("--out"));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Fail("usage: grpo-parity write|run ...");
  const std::string cmd = argv[1];
  std::map<std::string, std::string> a;
  for (int i = 2; i + 1 < argc; i += 2) a[argv[i]] = argv[i + 1];
  if ((argc - 2) % 2 != 0) return Fail(std::string("flag ") + argv[argc - 1] + " needs a value");
  if (cmd == "write") return Write(a);
  if (cmd == "run") return Run(a);
  return Fail("unknown command " + cmd);
}
