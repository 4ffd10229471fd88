// Logging: spdlog to stderr with the service name in every line. The launcher sends each
// child's stderr to <run dir>/logs/<service>.log.
#pragma once

#include <string>

#include <spdlog/spdlog.h>

#include "absl/strings/string_view.h"

#if !defined(ABSL_USES_STD_STRING_VIEW)
// Debian's Abseil has its own string_view (absl::Status::message() returns one): let
// spdlog format it like any string.
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<fmt::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view s, FormatContext& ctx) const {
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(s.data(), s.size()), ctx);
  }
};
#endif

namespace grpo {

// Sets the default logger's pattern ("2026-11-23 06:50:01.123 learner I message").
// Level from GRPO_LOG_LEVEL (trace, debug, info, warn, error), default info.
void InitLogging(const std::string& service);

}  // namespace grpo
