// Configuration: a YAML file (`--config FILE`) whose keys are the long flag names, with flags on
// the command line overriding it; and secrets, read from the environment or a file, never argv.
//
//   source: "host=db1 dbname=app user=lifeline"   # same as --source
//   table: [public.emergency_requests]              # lists give repeated flags
//   kafka-property:                                 # maps give key=value items
//     security.protocol: SASL_SSL
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace lifeline {

// CLI11 reads the YAML through this; unknown keys are errors (CLI11 names them).
class YamlConfig : public CLI::Config {
 public:
  std::string to_config(const CLI::App* app, bool default_also, bool write_description,
                        std::string prefix) const override;
  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override;
};

// Adds `--config FILE` to a (sub)command, read as YAML.
void AddConfigFileOption(CLI::App& app);

// Adds `--log-values` (common/log.h SetLogValues) to a subcommand that could log row values.
void AddLogValuesFlag(CLI::App& app);

// A secret from the environment variable `env_var` if set, else from `file` if non-empty (its first
// line; a file others may read draws a warning), else empty. Never logged, never in a message.
[[nodiscard]] Result<std::string> ReadSecret(const std::string& env_var, const std::string& file);

// Warns that `path` (a file that may hold secrets, named by `what`) can be read by users other
// than its owner, with the chmod that fixes it. Silent when it cannot be examined.
void WarnIfOthersMayRead(const std::string& path, std::string_view what);

// Parses a duration such as "500ms", "1s", "2m", "24h", "1d" into milliseconds.
[[nodiscard]] Result<int64_t> ParseDurationMs(const std::string& text);

}  // namespace lifeline
