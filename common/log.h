// Process-wide logging through spdlog: one stderr sink, level from --log-level; and the one switch
// (--log-values) that lets row values, which carry personal data, into log lines and errors.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace lifeline {

// Accepts trace, debug, info, warn, error, critical or off.
[[nodiscard]] Status InitLogging(const std::string& level);

// Off unless --log-values: logs, error messages and metrics then name rows by position (seq,
// offset, LSN) and columns by name, never by their contents.
void SetLogValues(bool on);
bool LogValues();

// What stands in a message for a hidden row value.
inline constexpr std::string_view kHiddenValue = "(row values hidden; --log-values shows them)";

// `value` when --log-values is on, else kHiddenValue.
std::string ValueForLog(std::string_view value);

}  // namespace lifeline
