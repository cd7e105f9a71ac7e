// spdlog set-up shared by every subcommand, and the --log-values switch.
#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>

namespace lifeline {
namespace {

std::atomic<bool> log_values{false};

}  // namespace

Status InitLogging(const std::string& level) {
  auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") {
    return Status::InvalidArgument("unknown log level '" + level +
                                   "': use trace, debug, info, warn, error, critical or off");
  }
  auto logger = spdlog::stderr_color_mt("lifeline");
  spdlog::set_default_logger(logger);
  spdlog::set_level(parsed);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v");
  spdlog::flush_on(spdlog::level::warn);
  return Status::Ok();
}

void SetLogValues(bool on) {
  log_values.store(on, std::memory_order_relaxed);
}

bool LogValues() {
  return log_values.load(std::memory_order_relaxed);
}

std::string ValueForLog(std::string_view value) {
  return std::string(LogValues() ? value : kHiddenValue);
}

}  // namespace lifeline
