// Reading and writing the Hugging Face safetensors format (single files,
// in-memory blobs and sharded checkpoints), and moving a module's weights in
// and out of a name -> tensor map.
//
// Format: 8-byte little-endian u64 header length N, then N bytes of JSON
//   {"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
//    ..., "__metadata__": {"key": "value"}}
// (padded with spaces to a multiple of 8), then the raw little-endian tensor
// bytes; offsets are relative to the start of that data block, and the
// tensors cover it exactly (no gaps, no overlaps), as the reference
// implementation requires. We write tensors in name order. Supported dtypes:
// F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL.
//
// Sharded checkpoints (transformers' layout): model.safetensors.index.json
//   {"metadata": {"total_size": N}, "weight_map": {"<name>": "<shard file>"}}
// beside shards named model-00001-of-00003.safetensors, ...
//
// All functions are thread-compatible (no shared state).
#ifndef GRPO_CORE_MODEL_SAFETENSORS_H_
#define GRPO_CORE_MODEL_SAFETENSORS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <torch/nn/module.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace grpo::model {

using TensorMap = std::map<std::string, torch::Tensor>;
using MetadataMap = std::map<std::string, std::string>;
// Tensor name -> path of the file it was read from (for error messages).
using TensorSources = std::map<std::string, std::string>;

// transformers' file names for a checkpoint in a model directory.
inline constexpr char kSafetensorsSingleFile[] = "model.safetensors";
inline constexpr char kSafetensorsIndexFile[] = "model.safetensors.index.json";
// "model-00002-of-00003.safetensors" for index 2 (1-based) of 3.
std::string SafetensorsShardName(int index, int count);

// "F32", "BF16", ... for a dtype safetensors can store; throws c10::Error
// otherwise (e.g. complex).
const char* SafetensorsDtypeName(torch::ScalarType type);

// Serializes the tensors (moved to CPU, made contiguous). Throws c10::Error
// for a dtype safetensors cannot express (e.g. complex).
std::string SerializeSafetensors(const TensorMap& tensors,
                                 const MetadataMap& metadata = {});

// Parses a whole safetensors file held in memory (e.g. weights received over
// the wire). The returned tensors own their memory (copied out of `bytes`).
// If `metadata` is non-null it receives "__metadata__". Errors
// (InvalidArgument) say what is wrong and name the tensor: short file,
// header length past the end, bad JSON, unknown dtype, bad shape, offsets out
// of range, overlapping or leaving gaps, size != shape * dtype size.
absl::StatusOr<TensorMap> ParseSafetensors(std::string_view bytes,
                                           MetadataMap* metadata = nullptr);
// The same checks, no copy: each tensor is a view into `bytes` (a tensor whose bytes
// are not aligned to its element size is copied instead). Valid only while `bytes`
// lives and read-only in spirit: for loading into a module at once (LoadStateDict
// copies out of them), as an actor does with a received version.
absl::StatusOr<TensorMap> ParseSafetensorsViews(std::string_view bytes,
                                                MetadataMap* metadata = nullptr);

// Maps the file (mmap, MAP_PRIVATE, PROT_READ) and validates it as
// ParseSafetensors does; every error message starts with the path. The
// returned tensors are views into the mapping, not copies: each holds a
// reference that keeps the mapping alive, so the file's bytes are read once,
// when a tensor is first used (typically copied into a module). The views
// are READ-ONLY: writing into one faults; clone() it first. The file must not
// be truncated while they live (the mapping would fault, as with any mmap).
absl::StatusOr<TensorMap> ReadSafetensorsFile(const std::string& path,
                                              MetadataMap* metadata = nullptr);

// Writes the tensors (any device, converted to contiguous CPU one at a time)
// to `path` atomically: a temporary file beside it, fsync, rename. Errors
// name the path; a failed write leaves any previous file in place.
absl::Status WriteSafetensorsFile(const std::string& path,
                                  const TensorMap& tensors,
                                  const MetadataMap& metadata = {});

// Reads a sharded checkpoint given its index file; shards are mapped as by
// ReadSafetensorsFile. `sources` (optional) receives each tensor's shard
// path. Errors name the file and the tensor: unreadable or malformed index,
// a shard name that is not a plain file name, a missing or corrupt shard, a
// tensor listed in the index but absent from its shard, a shard holding a
// tensor the index does not list (or lists in another shard).
absl::StatusOr<TensorMap> ReadSafetensorsIndex(const std::string& index_path,
                                               TensorSources* sources = nullptr);

// Writes `tensors` into directory `dir` as transformers does: one file
// kSafetensorsSingleFile when they fit in max_shard_bytes, else shards of at
// most max_shard_bytes (a larger tensor gets a shard of its own) named
// SafetensorsShardName(i, n) plus kSafetensorsIndexFile. Every file is written
// atomically; the index last. Returns the file names written (shards, then
// the index if any). Does not delete files of an earlier save.
absl::StatusOr<std::vector<std::string>> WriteShardedSafetensors(
    const std::string& dir, const TensorMap& tensors, uint64_t max_shard_bytes,
    const MetadataMap& metadata = {});

// named_parameters() + named_buffers(), detached, contiguous, on the CPU, and
// copied: later changes to the module do not show in the map.
TensorMap StateDict(const torch::nn::Module& module);
// The same tensors without the copy: the module's own storage, detached (wherever it
// lives). For serializing at once (SerializeSafetensors copies each tensor once, moving
// it to the CPU on the way); later changes to the module show in these tensors.
TensorMap StateDictViews(const torch::nn::Module& module);

struct LoadStateDictOptions {
  // Where each tensor came from; errors about a tensor then start with its
  // file ("model-00002-of-00002.safetensors: tensor ..."). Optional.
  const TensorSources* sources = nullptr;
  // Named in errors about missing tensors (e.g. the checkpoint directory).
  std::string origin;
  // Tensors the module does not have but which are skipped rather than
  // reported as unexpected (e.g. "*.rotary_emb.inv_freq" buffers). Optional.
  std::function<bool(const std::string& name)> ignore_unexpected;
};

// Copies `tensors` into the module's parameters and buffers, converting dtype
// and device in one copy each. Checks everything before copying anything: an
// error names the first missing tensor, unexpected extra tensor, shape
// mismatch or non-convertible dtype (a floating-point parameter takes any
// floating-point dtype; anything else must match exactly), and leaves the
// module unchanged.
absl::Status LoadStateDict(torch::nn::Module& module, const TensorMap& tensors,
                           const LoadStateDictOptions& options = {});

}  // namespace grpo::model

#endif  // GRPO_CORE_MODEL_SAFETENSORS_H_
