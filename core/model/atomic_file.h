// Writing a file atomically: the contents go to a temporary file beside the
// target, which is fsynced and renamed over it, so readers see either the
// old file or the complete new one, never a partial write. Used for model
// checkpoints and their JSON side files. Thread-compatible.
#ifndef GRPO_CORE_MODEL_ATOMIC_FILE_H_
#define GRPO_CORE_MODEL_ATOMIC_FILE_H_

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace grpo::model {

// Writes all `size` bytes to `fd`, retrying short writes and EINTR.
// Errors name `path` (the file being written, for the message only).
absl::Status WriteAll(int fd, const void* data, size_t size,
                      const std::string& path);

// Creates a temporary file beside `path` (mode 0644), lets `write` fill it
// through its descriptor, then fsyncs, renames it to `path` and fsyncs the
// directory. On any error the temporary file is removed and an existing
// file at `path` is left as it was.
absl::Status WriteFileAtomically(
    const std::string& path, const std::function<absl::Status(int fd)>& write);

// WriteFileAtomically with fixed contents.
absl::Status WriteFileAtomically(const std::string& path,
                                 std::string_view contents);

}  // namespace grpo::model

#endif  // GRPO_CORE_MODEL_ATOMIC_FILE_H_
