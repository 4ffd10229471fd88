// Delta weight versions (issue #24): version v sent as a patch against an earlier
// version b that the receiver holds, instead of all of v's bytes.
//
// A patch is one zstd frame (Debian's libzstd, level 1) of v's bytes XOR b's bytes, the
// two being serialized the same way (same tensors, same dtype, same size). At RL learning
// rates most weights round to the same bf16 value from one step to the next, so the XOR
// is mostly zero bytes, which zstd stores in a few bytes per run; where everything
// changes (fp32 weights under Adam) the patch is as large as the version and the
// publisher sends the version in full instead. XOR plus a general-purpose compressor is
// chosen over a hand-made sparse-run format because zstd's long zero runs cost nothing
// to encode or decode and its frame carries the decoded size, which the receiver checks.
//
// A patch is checked three ways before its result is used: its own CRC as it arrives
// (WeightBlob, every hop), the base it names (version and CRC of the full bytes the
// receiver holds), and the CRC of the full result, computed as the patch is applied. A
// patch that fails any check is refused; the receiver's bytes of the base are not
// touched (the result is written to other pages), so it can still fetch in full.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/rpc/weight_stream.h"

namespace grpo::rpc {

// The patch from `base` to `next` (equal sizes; INVALID_ARGUMENT otherwise). Streams the
// XOR through the compressor a megabyte at a time: no copy of the version is made.
absl::StatusOr<std::string> MakeWeightPatch(std::string_view base, std::string_view next, int level = 1);

// Writes base XOR (the patch decoded) into dest, which has room for base.size() bytes.
// INVALID_ARGUMENT when the patch is not one zstd frame that decodes to exactly
// base.size() bytes. The caller checks the result's CRC.
absl::Status ApplyWeightPatch(std::string_view base, std::string_view patch, char* dest);

// A delta blob carrying `patch`, which turns `base` into `result` (both complete).
std::shared_ptr<WeightBlob> MakeDeltaBlob(std::string patch, const WeightBlob& base, const WeightBlob& result);

// Applies a complete delta blob to the full blob it names as its base: the full version,
// complete and checked (CRC of the result), in pages taken from `reuse` when they are
// free (WeightBlob::ForReceiving). FAILED_PRECONDITION when `base` is not the patch's
// base (version, CRC or size); INVALID_ARGUMENT when the patch does not decode; DATA_LOSS
// when the result's CRC is not the one the patch promised. `base` is never modified.
absl::StatusOr<std::shared_ptr<WeightBlob>> ApplyDeltaBlob(const WeightBlob& base, const WeightBlob& patch,
                                                           std::shared_ptr<WeightBlob> reuse = nullptr);

}  // namespace grpo::rpc
