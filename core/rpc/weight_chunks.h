// A weight blob on the wire: the WeightChunk stream of PublishWeights (learner to
// coordinator) and FetchWeights (coordinator to actors), written in one place.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "grpo/v1/coordinator.pb.h"

namespace grpo::rpc {

// Writes `blob` as chunks of at most `chunk` bytes (one empty chunk for an empty blob),
// each carrying the version, step, offset, total size and the blob's CRC-32. Returns
// false when the stream broke or `cancelled` (optional) said so.
template <typename Writer>
bool WriteWeightChunks(Writer* writer, std::string_view blob, uint64_t version, uint64_t step, uint32_t crc,
                       size_t chunk, const std::function<bool()>& cancelled = nullptr) {
  for (size_t off = 0; off < blob.size() || off == 0; off += chunk) {
    if (cancelled && cancelled()) return false;
    v1::WeightChunk c;
    c.set_version(version);
    c.set_step(step);
    c.set_offset(off);
    c.set_total_size(blob.size());
    c.set_crc32(crc);
    c.set_data(std::string(blob.substr(off, chunk)));
    if (!writer->Write(c)) return false;
    if (blob.empty()) break;
  }
  return true;
}

}  // namespace grpo::rpc
