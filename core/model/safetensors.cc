#include "core/model/safetensors.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <tuple>
#include <vector>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace grpo::model {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors I/O assumes a little-endian host");

constexpr size_t kLengthPrefixBytes = 8;

struct DtypeName {
  torch::ScalarType type;
  const char* name;
};
constexpr DtypeName kDtypes[] = {
    {torch::kFloat64, "F64"}, {torch::kFloat32, "F32"},
    {torch::kFloat16, "F16"}, {torch::kBFloat16, "BF16"},
    {torch::kInt64, "I64"},   {torch::kInt32, "I32"},
    {torch::kInt16, "I16"},   {torch::kInt8, "I8"},
    {torch::kUInt8, "U8"},    {torch::kBool, "BOOL"},
};

std::optional<torch::ScalarType> DtypeFromName(const std::string& name) {
  for (const DtypeName& d : kDtypes) {
    if (name == d.name) return d.type;
  }
  return std::nullopt;
}

const char* NameOfDtype(torch::ScalarType type) {
  for (const DtypeName& d : kDtypes) {
    if (type == d.type) return d.name;
  }
  TORCH_CHECK(false, "safetensors: cannot store dtype ", type);
  return nullptr;
}

absl::Status Invalid(const std::string& message) {
  return absl::InvalidArgumentError("safetensors: " + message);
}

// Reads a JSON value that must be a non-negative integer.
std::optional<uint64_t> AsUnsigned(const nlohmann::json& value) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer() && value.get<int64_t>() >= 0) {
    return static_cast<uint64_t>(value.get<int64_t>());
  }
  return std::nullopt;
}

// One tensor's header entry, checked against the data block.
struct Entry {
  std::string name;
  torch::ScalarType dtype;
  std::vector<int64_t> shape;
  uint64_t begin;
  uint64_t end;
};

absl::StatusOr<Entry> ParseEntry(const std::string& name,
                                 const nlohmann::json& info,
                                 uint64_t data_size) {
  const std::string where = "tensor \"" + name + "\": ";
  if (!info.is_object()) {
    return Invalid(where + "header entry must be an object, got " + info.dump());
  }
  Entry entry;
  entry.name = name;

  auto dtype_it = info.find("dtype");
  if (dtype_it == info.end() || !dtype_it->is_string()) {
    return Invalid(where + "missing string field \"dtype\"");
  }
  std::optional<torch::ScalarType> dtype = DtypeFromName(dtype_it->get<std::string>());
  if (!dtype) {
    return Invalid(where + "unknown dtype \"" + dtype_it->get<std::string>() +
                   "\" (supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)");
  }
  entry.dtype = *dtype;

  auto shape_it = info.find("shape");
  if (shape_it == info.end() || !shape_it->is_array()) {
    return Invalid(where + "missing array field \"shape\"");
  }
  // Byte count computed with an overflow guard: numel * itemsize must fit.
  uint64_t expected_bytes = torch::elementSize(entry.dtype);
  for (const nlohmann::json& dim : *shape_it) {
    std::optional<uint64_t> size = AsUnsigned(dim);
    if (!size || *size > static_cast<uint64_t>(INT64_MAX)) {
      return Invalid(where + "shape " + shape_it->dump() +
                     " must hold non-negative integers");
    }
    entry.shape.push_back(static_cast<int64_t>(*size));
    if (*size != 0 && expected_bytes > UINT64_MAX / *size) {
      return Invalid(where + "shape " + shape_it->dump() + " is too large");
    }
    expected_bytes *= *size;
  }

  auto offsets_it = info.find("data_offsets");
  if (offsets_it == info.end() || !offsets_it->is_array() ||
      offsets_it->size() != 2 || !AsUnsigned((*offsets_it)[0]) ||
      !AsUnsigned((*offsets_it)[1])) {
    return Invalid(where + "\"data_offsets\" must be [begin, end] of non-negative integers");
  }
  entry.begin = *AsUnsigned((*offsets_it)[0]);
  entry.end = *AsUnsigned((*offsets_it)[1]);
  if (entry.begin > entry.end || entry.end > data_size) {
    return Invalid(absl::StrCat(where, "data_offsets [", entry.begin, ", ",
                                entry.end, "] out of range: the data block has ",
                                data_size, " bytes (file truncated?)"));
  }
  if (entry.end - entry.begin != expected_bytes) {
    return Invalid(absl::StrCat(where, "data_offsets span ",
                                entry.end - entry.begin, " bytes but dtype ",
                                dtype_it->get<std::string>(), " with shape ",
                                shape_it->dump(), " needs ", expected_bytes));
  }
  return entry;
}

}  // namespace

std::string SerializeSafetensors(const TensorMap& tensors,
                                 const MetadataMap& metadata) {
  nlohmann::json header = nlohmann::json::object();
  std::vector<torch::Tensor> data;  // in name order, contiguous CPU
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    TORCH_CHECK(name != "__metadata__",
                "safetensors: \"__metadata__\" is reserved, not a tensor name");
    torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
    const uint64_t nbytes = t.numel() * t.element_size();
    header[name] = {{"dtype", NameOfDtype(t.scalar_type())},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    data.push_back(std::move(t));
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;

  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  const uint64_t header_len = header_text.size();

  std::string out;
  out.reserve(kLengthPrefixBytes + header_len + offset);
  out.append(reinterpret_cast<const char*>(&header_len), kLengthPrefixBytes);
  out.append(header_text);
  for (const torch::Tensor& t : data) {
    out.append(static_cast<const char*>(t.data_ptr()),
               t.numel() * t.element_size());
  }
  return out;
}

absl::StatusOr<TensorMap> ParseSafetensors(std::string_view bytes,
                                           MetadataMap* metadata) {
  if (bytes.size() < kLengthPrefixBytes) {
    return Invalid(absl::StrCat("file is ", bytes.size(),
                                " bytes, too short for the 8-byte header length"));
  }
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), kLengthPrefixBytes);
  const uint64_t rest = bytes.size() - kLengthPrefixBytes;
  if (header_len > rest) {
    return Invalid(absl::StrCat("header length ", header_len, " exceeds the ",
                                rest, " bytes that follow it (truncated or not a safetensors file)"));
  }
  const std::string_view header_text = bytes.substr(kLengthPrefixBytes, header_len);
  const std::string_view data = bytes.substr(kLengthPrefixBytes + header_len);

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(header_text.begin(), header_text.end());
  } catch (const nlohmann::json::exception& e) {
    return Invalid(std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) {
    return Invalid("header must be a JSON object, got " +
                   std::string(header.type_name()));
  }

  std::vector<Entry> entries;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      if (!info.is_object()) return Invalid("\"__metadata__\" must be an object");
      for (const auto& [key, value] : info.items()) {
        if (!value.is_string()) {
          return Invalid("\"__metadata__\" value for \"" + key + "\" must be a string");
        }
        if (metadata != nullptr) (*metadata)[key] = value.get<std::string>();
      }
      continue;
    }
    absl::StatusOr<Entry> entry = ParseEntry(name, info, data.size());
    if (!entry.ok()) return entry.status();
    entries.push_back(*std::move(entry));
  }

  // No two tensors may share bytes.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  for (size_t i = 1; i < entries.size(); ++i) {
    if (entries[i].begin < entries[i - 1].end) {
      return Invalid(absl::StrCat("tensors \"", entries[i - 1].name, "\" and \"",
                                  entries[i].name, "\" have overlapping data_offsets"));
    }
  }

  TensorMap tensors;
  for (const Entry& entry : entries) {
    torch::Tensor t = torch::empty(entry.shape, torch::TensorOptions().dtype(entry.dtype));
    std::memcpy(t.data_ptr(), data.data() + entry.begin, entry.end - entry.begin);
    tensors.emplace(entry.name, std::move(t));
  }
  return tensors;
}

absl::Status WriteSafetensorsFile(const std::string& path,
                                  const TensorMap& tensors,
                                  const MetadataMap& metadata) {
  const std::string bytes = SerializeSafetensors(tensors, metadata);
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) return absl::UnavailableError("safetensors: cannot open " + path + " for writing");
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  file.close();
  if (!file) return absl::DataLossError("safetensors: failed writing " + path);
  return absl::OkStatus();
}

absl::StatusOr<TensorMap> ReadSafetensorsFile(const std::string& path,
                                              MetadataMap* metadata) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError("safetensors: cannot open " + path);
  std::ostringstream buffer;
  buffer << file.rdbuf();
  absl::StatusOr<TensorMap> tensors = ParseSafetensors(buffer.str(), metadata);
  if (!tensors.ok()) {
    return absl::Status(tensors.status().code(),
                        absl::StrCat(path, ": ", tensors.status().message()));
  }
  return tensors;
}

TensorMap StateDict(const torch::nn::Module& module) {
  TensorMap out;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    out[item.key()] = item.value().detach().to(torch::kCPU).contiguous().clone();
  }
  for (const auto& item : module.named_buffers(/*recurse=*/true)) {
    out[item.key()] = item.value().detach().to(torch::kCPU).contiguous().clone();
  }
  return out;
}

absl::Status LoadStateDict(torch::nn::Module& module, const TensorMap& tensors) {
  std::vector<std::pair<torch::Tensor, const torch::Tensor*>> copies;  // (dst, src)
  std::map<std::string, bool> used;
  auto plan = [&](const std::string& name, const torch::Tensor& dst) -> absl::Status {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "load state dict: missing tensor \"", name, "\" (shape ",
          c10::str(dst.sizes()), ")"));
    }
    if (it->second.sizes() != dst.sizes()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "load state dict: tensor \"", name, "\" has shape ",
          c10::str(it->second.sizes()), ", the model expects ",
          c10::str(dst.sizes())));
    }
    used[name] = true;
    copies.emplace_back(dst, &it->second);
    return absl::OkStatus();
  };
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    if (absl::Status s = plan(item.key(), item.value()); !s.ok()) return s;
  }
  for (const auto& item : module.named_buffers(/*recurse=*/true)) {
    if (absl::Status s = plan(item.key(), item.value()); !s.ok()) return s;
  }
  for (const auto& [name, tensor] : tensors) {
    if (!used.count(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "load state dict: unexpected tensor \"", name,
          "\" that the model does not have (wrong config, e.g. tie_word_embeddings?)"));
    }
  }
  torch::NoGradGuard no_grad;
  for (auto& [dst, src] : copies) dst.copy_(*src);
  return absl::OkStatus();
}

}  // namespace grpo::model
