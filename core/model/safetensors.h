// Reading and writing the Hugging Face safetensors format, and moving a
// module's weights in and out of a name -> tensor map.
//
// Format: 8-byte little-endian u64 header length N, then N bytes of JSON
//   {"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
//    ..., "__metadata__": {"key": "value"}}
// (padded with spaces to a multiple of 8), then the raw little-endian tensor
// bytes; offsets are relative to the start of that data block. We write
// tensors in name order. Supported dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U8
// BOOL. All functions are thread-compatible (no shared state).
#ifndef GRPO_CORE_MODEL_SAFETENSORS_H_
#define GRPO_CORE_MODEL_SAFETENSORS_H_

#include <map>
#include <string>
#include <string_view>

#include <torch/nn/module.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace grpo::model {

using TensorMap = std::map<std::string, torch::Tensor>;
using MetadataMap = std::map<std::string, std::string>;

// Serializes the tensors (moved to CPU, made contiguous). Throws c10::Error
// for a dtype safetensors cannot express (e.g. complex).
std::string SerializeSafetensors(const TensorMap& tensors,
                                 const MetadataMap& metadata = {});

// Parses a whole safetensors file held in memory. The returned tensors own
// their memory. If `metadata` is non-null it receives "__metadata__".
// Errors (InvalidArgument) say what is wrong and name the tensor: short file,
// header length past the end, bad JSON, unknown dtype, bad shape, offsets out
// of range or overlapping, size != shape * dtype size.
absl::StatusOr<TensorMap> ParseSafetensors(std::string_view bytes,
                                           MetadataMap* metadata = nullptr);

// File helpers around the two functions above; errors name the path.
absl::Status WriteSafetensorsFile(const std::string& path,
                                  const TensorMap& tensors,
                                  const MetadataMap& metadata = {});
absl::StatusOr<TensorMap> ReadSafetensorsFile(const std::string& path,
                                              MetadataMap* metadata = nullptr);

// named_parameters() + named_buffers(), detached, contiguous, on the CPU, and
// copied: later changes to the module do not show in the map.
TensorMap StateDict(const torch::nn::Module& module);

// Copies `tensors` into the module's parameters and buffers (converting
// dtype and device). Checks everything before copying anything: an error
// names the first missing tensor, unexpected extra tensor or shape mismatch,
// and leaves the module unchanged.
absl::Status LoadStateDict(torch::nn::Module& module, const TensorMap& tensors);

}  // namespace grpo::model

#endif  // GRPO_CORE_MODEL_SAFETENSORS_H_
