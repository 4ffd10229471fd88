// Checksums and whole-file I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace grpo {

// CRC-32 (zlib polynomial) of `data`, continuing from `crc` (0 to start).
uint32_t Crc32(std::string_view data, uint32_t crc = 0);

// Writes `data` to a temp file beside `path`, fsyncs, then renames over `path`: readers
// see the old file or the new one, never a torn one.
absl::Status WriteFileAtomic(const std::string& path, std::string_view data);
absl::StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace grpo
