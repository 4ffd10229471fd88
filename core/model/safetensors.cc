#include "core/model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/model/atomic_file.h"
#include "nlohmann/json.hpp"

namespace grpo::model {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors I/O assumes a little-endian host");

constexpr size_t kLengthPrefixBytes = 8;
// The reference implementation refuses larger headers.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

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

absl::Status Invalid(const std::string& message) {
  return absl::InvalidArgumentError("safetensors: " + message);
}

// `status` with "<path>: " in front of its message.
absl::Status InFile(const std::string& path, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(path, ": ", status.message()));
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

// A validated header: the entries sorted by offset, and where data begins.
struct Header {
  std::vector<Entry> entries;
  uint64_t data_start = 0;  // byte offset of the data block in the file
};

// Parses and validates everything about `bytes` (a whole file) except the
// tensor values themselves.
absl::StatusOr<Header> ParseHeader(std::string_view bytes, MetadataMap* metadata) {
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
  if (header_len > kMaxHeaderBytes) {
    return Invalid(absl::StrCat("header length ", header_len, " exceeds the limit of ",
                                kMaxHeaderBytes, " bytes"));
  }
  const std::string_view header_text = bytes.substr(kLengthPrefixBytes, header_len);
  const uint64_t data_size = rest - header_len;

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

  Header out;
  out.data_start = kLengthPrefixBytes + header_len;
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
    absl::StatusOr<Entry> entry = ParseEntry(name, info, data_size);
    if (!entry.ok()) return entry.status();
    out.entries.push_back(*std::move(entry));
  }

  // The tensors tile the data block: no shared bytes, no gaps, nothing after.
  std::sort(out.entries.begin(), out.entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry& entry : out.entries) {
    if (entry.begin < covered) {
      return Invalid(absl::StrCat("tensors \"", previous->name, "\" and \"", entry.name,
                                  "\" have overlapping data_offsets"));
    }
    if (entry.begin > covered) {
      return Invalid(absl::StrCat("tensor \"", entry.name, "\": data_offsets begin at ",
                                  entry.begin, ", leaving a gap after byte ", covered,
                                  " of the data block"));
    }
    covered = entry.end;
    previous = &entry;
  }
  if (covered != data_size) {
    return Invalid(absl::StrCat("the tensors cover ", covered, " bytes of the ", data_size,
                                "-byte data block (trailing bytes)"));
  }
  return out;
}

// Header text (padded to a multiple of 8) for `tensors` laid out in name
// order. Only dtypes and shapes are read, so no tensor is copied.
std::string BuildHeader(const TensorMap& tensors, const MetadataMap& metadata,
                        uint64_t* data_bytes) {
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    TORCH_CHECK(name != "__metadata__",
                "safetensors: \"__metadata__\" is reserved, not a tensor name");
    const uint64_t nbytes = tensor.numel() * tensor.element_size();
    header[name] = {{"dtype", SafetensorsDtypeName(tensor.scalar_type())},
                    {"shape", tensor.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  *data_bytes = offset;
  return text;
}

// A whole file mapped read-only; unmapped when the last tensor over it dies.
class Mapping {
 public:
  Mapping(void* address, size_t size) : address_(address), size_(size) {}
  ~Mapping() { ::munmap(address_, size_); }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  std::string_view bytes() const {
    return std::string_view(static_cast<const char*>(address_), size_);
  }

 private:
  void* address_;
  size_t size_;
};

absl::StatusOr<std::shared_ptr<Mapping>> MapFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string message =
        absl::StrCat(path, ": safetensors: cannot open: ", std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(message) : absl::UnavailableError(message);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": safetensors: not a regular file"));
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size < kLengthPrefixBytes) {
    ::close(fd);
    return InFile(path, Invalid(absl::StrCat(
                            "file is ", size, " bytes, too short for the 8-byte header length")));
  }
  void* address = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);  // the mapping stays valid without the descriptor
  if (address == MAP_FAILED) {
    return absl::UnavailableError(
        absl::StrCat(path, ": safetensors: mmap failed: ", std::strerror(err)));
  }
  return std::make_shared<Mapping>(address, size);
}

}  // namespace

std::string SafetensorsShardName(int index, int count) {
  char name[64];
  std::snprintf(name, sizeof(name), "model-%05d-of-%05d.safetensors", index, count);
  return name;
}

const char* SafetensorsDtypeName(torch::ScalarType type) {
  for (const DtypeName& d : kDtypes) {
    if (type == d.type) return d.name;
  }
  TORCH_CHECK(false, "safetensors: cannot store dtype ", type);
  return nullptr;
}

std::string SerializeSafetensors(const TensorMap& tensors,
                                 const MetadataMap& metadata) {
  uint64_t data_bytes = 0;
  const std::string header_text = BuildHeader(tensors, metadata, &data_bytes);
  const uint64_t header_len = header_text.size();
  std::string out;
  out.reserve(kLengthPrefixBytes + header_len + data_bytes);
  out.append(reinterpret_cast<const char*>(&header_len), kLengthPrefixBytes);
  out.append(header_text);
  for (const auto& [name, tensor] : tensors) {
    torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
    out.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  }
  return out;
}

absl::StatusOr<TensorMap> ParseSafetensors(std::string_view bytes,
                                           MetadataMap* metadata) {
  absl::StatusOr<Header> header = ParseHeader(bytes, metadata);
  if (!header.ok()) return header.status();
  TensorMap tensors;
  for (const Entry& entry : header->entries) {
    torch::Tensor t = torch::empty(entry.shape, torch::TensorOptions().dtype(entry.dtype));
    std::memcpy(t.data_ptr(), bytes.data() + header->data_start + entry.begin,
                entry.end - entry.begin);
    tensors.emplace(entry.name, std::move(t));
  }
  return tensors;
}

absl::StatusOr<TensorMap> ParseSafetensorsViews(std::string_view bytes, MetadataMap* metadata) {
  absl::StatusOr<Header> header = ParseHeader(bytes, metadata);
  if (!header.ok()) return header.status();
  TensorMap tensors;
  for (const Entry& entry : header->entries) {
    const char* at = bytes.data() + header->data_start + entry.begin;
    const size_t element = c10::elementSize(entry.dtype);
    torch::Tensor t;
    if (reinterpret_cast<uintptr_t>(at) % element == 0) {
      // from_blob wants a non-const pointer; nothing writes through these views.
      t = torch::from_blob(const_cast<char*>(at), entry.shape, torch::TensorOptions().dtype(entry.dtype));
    } else {
      t = torch::empty(entry.shape, torch::TensorOptions().dtype(entry.dtype));
      std::memcpy(t.data_ptr(), at, entry.end - entry.begin);
    }
    tensors.emplace(entry.name, std::move(t));
  }
  return tensors;
}

absl::StatusOr<TensorMap> ReadSafetensorsFile(const std::string& path,
                                              MetadataMap* metadata) {
  absl::StatusOr<std::shared_ptr<Mapping>> mapping = MapFile(path);
  if (!mapping.ok()) return mapping.status();
  const std::string_view bytes = (*mapping)->bytes();
  absl::StatusOr<Header> header = ParseHeader(bytes, metadata);
  if (!header.ok()) return InFile(path, header.status());

  TensorMap tensors;
  for (const Entry& entry : header->entries) {
    // PROT_READ memory: from_blob needs a non-const pointer, but nothing
    // writes through it (documented as read-only views).
    void* data = const_cast<char*>(bytes.data() + header->data_start + entry.begin);
    std::shared_ptr<Mapping> keep_alive = *mapping;
    tensors.emplace(entry.name,
                    torch::from_blob(data, entry.shape,
                                     [keep_alive](void*) mutable { keep_alive.reset(); },
                                     torch::TensorOptions().dtype(entry.dtype)));
  }
  return tensors;
}

absl::Status WriteSafetensorsFile(const std::string& path,
                                  const TensorMap& tensors,
                                  const MetadataMap& metadata) {
  uint64_t data_bytes = 0;
  const std::string header_text = BuildHeader(tensors, metadata, &data_bytes);
  const uint64_t header_len = header_text.size();
  absl::Status status = WriteFileAtomically(path, [&](int fd) -> absl::Status {
    if (absl::Status s = WriteAll(fd, &header_len, kLengthPrefixBytes, path); !s.ok()) return s;
    if (absl::Status s = WriteAll(fd, header_text.data(), header_len, path); !s.ok()) return s;
    for (const auto& [name, tensor] : tensors) {  // one CPU copy at a time
      torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
      absl::Status s = WriteAll(fd, t.data_ptr(), t.numel() * t.element_size(), path);
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  });
  if (!status.ok()) {
    return absl::Status(status.code(), absl::StrCat("safetensors: ", status.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<TensorMap> ReadSafetensorsIndex(const std::string& index_path,
                                               TensorSources* sources) {
  std::ifstream file(index_path, std::ios::binary);
  if (!file) return absl::NotFoundError(index_path + ": cannot open the checkpoint index");
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(file);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(index_path, ": not valid JSON: ", e.what()));
  }
  auto map_it = index.is_object() ? index.find("weight_map") : index.end();
  if (!index.is_object() || map_it == index.end() || !map_it->is_object()) {
    return absl::InvalidArgumentError(
        index_path + ": expected an object with a \"weight_map\" object");
  }

  // Shard file -> the tensors the index places in it.
  std::map<std::string, std::vector<std::string>> listed;
  for (const auto& [name, shard] : map_it->items()) {
    const std::string file_name = shard.is_string() ? shard.get<std::string>() : "";
    if (file_name.empty() || file_name == "." || file_name == ".." ||
        file_name.find('/') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          index_path, ": weight_map entry for tensor ", name,
          " must be a file name in the same directory, got ", shard.dump()));
    }
    listed[file_name].push_back(name);
  }

  const size_t slash = index_path.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : index_path.substr(0, slash + 1);
  TensorMap out;
  for (const auto& [file_name, names] : listed) {
    const std::string shard_path = dir + file_name;
    absl::StatusOr<TensorMap> shard = ReadSafetensorsFile(shard_path);
    if (!shard.ok()) {
      if (absl::IsNotFound(shard.status())) {
        return absl::NotFoundError(absl::StrCat(
            index_path, ": shard ", shard_path, " is missing (it should hold ",
            names.size(), " tensors, e.g. ", names.front(), ")"));
      }
      return shard.status();
    }
    for (const std::string& name : names) {
      if (!shard->count(name)) {
        return absl::InvalidArgumentError(absl::StrCat(
            shard_path, ": tensor ", name, " is listed in ", index_path,
            " but not in this shard"));
      }
    }
    for (auto& [name, tensor] : *shard) {
      auto where = map_it->find(name);
      if (where == map_it->end() || where->get<std::string>() != file_name) {
        return absl::InvalidArgumentError(absl::StrCat(
            shard_path, ": holds tensor ", name, " that ", index_path,
            where == map_it->end() ? " does not list"
                                   : " places in " + where->get<std::string>()));
      }
      if (sources != nullptr) (*sources)[name] = shard_path;
      out.emplace(name, std::move(tensor));
    }
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> WriteShardedSafetensors(
    const std::string& dir, const TensorMap& tensors, uint64_t max_shard_bytes,
    const MetadataMap& metadata) {
  // huggingface_hub's split_torch_state_dict_into_shards: fill shards in
  // order; a tensor that would overflow the current shard starts a new one;
  // a tensor larger than the limit gets a shard of its own.
  std::vector<TensorMap> shards;
  TensorMap current;
  uint64_t current_bytes = 0;
  uint64_t total_bytes = 0;
  for (const auto& [name, tensor] : tensors) {
    const uint64_t nbytes = tensor.numel() * tensor.element_size();
    total_bytes += nbytes;
    if (nbytes > max_shard_bytes) {
      shards.push_back({{name, tensor}});
      continue;
    }
    if (current_bytes + nbytes > max_shard_bytes && !current.empty()) {
      shards.push_back(std::move(current));
      current.clear();
      current_bytes = 0;
    }
    current.emplace(name, tensor);
    current_bytes += nbytes;
  }
  if (!current.empty() || shards.empty()) shards.push_back(std::move(current));

  const std::string prefix = dir.empty() ? "" : dir + "/";
  if (shards.size() == 1) {
    absl::Status s = WriteSafetensorsFile(prefix + kSafetensorsSingleFile, shards[0], metadata);
    if (!s.ok()) return s;
    return std::vector<std::string>{kSafetensorsSingleFile};
  }
  std::vector<std::string> written;
  nlohmann::json weight_map = nlohmann::json::object();
  const int count = static_cast<int>(shards.size());
  for (int i = 0; i < count; ++i) {
    const std::string file_name = SafetensorsShardName(i + 1, count);
    absl::Status s = WriteSafetensorsFile(prefix + file_name, shards[i], metadata);
    if (!s.ok()) return s;
    for (const auto& [name, tensor] : shards[i]) weight_map[name] = file_name;
    written.push_back(file_name);
  }
  const nlohmann::json index = {{"metadata", {{"total_size", total_bytes}}},
                                {"weight_map", weight_map}};
  absl::Status s = WriteFileAtomically(prefix + kSafetensorsIndexFile, index.dump(2) + "\n");
  if (!s.ok()) return s;
  written.push_back(kSafetensorsIndexFile);
  return written;
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

TensorMap StateDictViews(const torch::nn::Module& module) {
  TensorMap out;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) out[item.key()] = item.value().detach();
  for (const auto& item : module.named_buffers(/*recurse=*/true)) out[item.key()] = item.value().detach();
  return out;
}

absl::Status LoadStateDict(torch::nn::Module& module, const TensorMap& tensors,
                           const LoadStateDictOptions& options) {
  const std::string origin = options.origin.empty() ? "load state dict" : options.origin;
  // "<file>: " for errors about tensor `name`.
  auto where = [&](const std::string& name) {
    if (options.sources != nullptr) {
      auto it = options.sources->find(name);
      if (it != options.sources->end()) return it->second + ": ";
    }
    return origin + ": ";
  };
  auto dtype_name = [](torch::ScalarType type) -> std::string {
    for (const DtypeName& d : kDtypes) {
      if (type == d.type) return d.name;
    }
    return c10::toString(type);
  };

  std::vector<std::pair<torch::Tensor, const torch::Tensor*>> copies;  // (dst, src)
  std::set<std::string> used;
  auto plan = [&](const std::string& name, const torch::Tensor& dst) -> absl::Status {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          origin, ": missing tensor ", name, " (shape ", c10::str(dst.sizes()), ")"));
    }
    const torch::Tensor& src = it->second;
    if (src.sizes() != dst.sizes()) {
      return absl::InvalidArgumentError(absl::StrCat(
          where(name), "tensor ", name, " has shape ", c10::str(src.sizes()),
          ", expected ", c10::str(dst.sizes())));
    }
    const bool convertible = torch::isFloatingType(dst.scalar_type())
                                 ? torch::isFloatingType(src.scalar_type())
                                 : src.scalar_type() == dst.scalar_type();
    if (!convertible) {
      return absl::InvalidArgumentError(absl::StrCat(
          where(name), "tensor ", name, " has dtype ", dtype_name(src.scalar_type()),
          ", which cannot be loaded into the model's ", dtype_name(dst.scalar_type()),
          torch::isFloatingType(dst.scalar_type())
              ? " parameter (expected a floating-point dtype: F32, BF16, F16, F64)"
              : " tensor"));
    }
    used.insert(name);
    copies.emplace_back(dst, &src);
    return absl::OkStatus();
  };
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    if (absl::Status s = plan(item.key(), item.value()); !s.ok()) return s;
  }
  for (const auto& item : module.named_buffers(/*recurse=*/true)) {
    if (absl::Status s = plan(item.key(), item.value()); !s.ok()) return s;
  }
  for (const auto& [name, tensor] : tensors) {
    if (used.count(name)) continue;
    if (options.ignore_unexpected && options.ignore_unexpected(name)) continue;
    return absl::InvalidArgumentError(absl::StrCat(
        where(name), "unexpected tensor ", name,
        " that the model does not have (wrong config, e.g. tie_word_embeddings?)"));
  }
  torch::NoGradGuard no_grad;
  for (auto& [dst, src] : copies) dst.copy_(*src);  // dtype + device in one copy
  return absl::OkStatus();
}

}  // namespace grpo::model
