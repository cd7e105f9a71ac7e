// Process-wide logging through spdlog: one stderr sink, level from --log-level.
#pragma once

#include <string>

#include "common/status.h"

namespace lifeline {

// Accepts trace, debug, info, warn, error, critical, off.
[[nodiscard]] Status InitLogging(const std::string& level);

}  // namespace lifeline
