#include "core/common/logging.h"

#include <cstdlib>

#include <spdlog/sinks/stdout_sinks.h>

namespace grpo {

void InitLogging(const std::string& service) {
  auto logger = spdlog::stderr_logger_mt(service);
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e " + service + " %L %v");
  const char* level = std::getenv("GRPO_LOG_LEVEL");
  logger->set_level(level ? spdlog::level::from_str(level) : spdlog::level::info);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace grpo
