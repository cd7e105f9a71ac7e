// libFuzzer target for configuration text: a YAML config file read through CLI11 the way every
// command reads `--config FILE`, and the value parsers flags and config share (durations, LSNs,
// timestamps). The input is used whole by each.
//
// Besides "no crash", the target checks: bad YAML or a bad value reaches the command as a
// CLI::ParseError (which the CLI reports with exit code 2), never as another exception; parse
// errors are InvalidArgument; durations are never negative; a parsed LSN prints as text that
// parses to the same LSN; a parsed timestamp prints and parses back to itself.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <sstream>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/event_format.h"
#include "common/lsn.h"
#include "fuzz/fuzz_check.h"

namespace lifeline {
namespace {

using fuzz::Check;
using fuzz::Fail;

void CheckInvalidArgument(const Status& st, const std::string& where) {
  Check(st.code() == StatusCode::kInvalidArgument, where + ": " + st.ToString());
}

// Options of each shape the commands declare: text, repeated, key=value items, numbers.
void ParseConfig(const std::string& text) {
  CLI::App app;
  AddConfigFileOption(app);
  std::string source, spool, heartbeat;
  std::vector<std::string> tables, props;
  int batch = 0;
  int64_t max_bytes = 0;
  double ratio = 0;
  bool follow = false;
  app.add_option("--source", source);
  app.add_option("--spool", spool);
  app.add_option("--table", tables);
  app.add_option("--kafka-property", props);
  app.add_option("--batch-size", batch);
  app.add_option("--max-bytes", max_bytes);
  app.add_option("--ratio", ratio);
  app.add_option("--heartbeat-interval", heartbeat);
  app.add_flag("--follow", follow);
  std::istringstream in(text);
  try {
    app.parse_from_stream(in);
  } catch (const CLI::ParseError&) {
    return;  // reported to the user, exit code 2
  } catch (const std::exception& e) {
    Fail(std::string("config text escaped CLI11 as ") + typeid(e).name() + ": " + e.what());
  }
  if (!heartbeat.empty()) {
    auto ms = ParseDurationMs(heartbeat);
    if (!ms.ok()) CheckInvalidArgument(ms.status(), "ParseDurationMs from config");
  }
}

void ParseValues(const std::string& text) {
  auto ms = ParseDurationMs(text);
  if (ms.ok()) {
    Check(*ms >= 0, "negative duration " + std::to_string(*ms) + " from '" + text + "'");
  } else {
    CheckInvalidArgument(ms.status(), "ParseDurationMs");
  }

  auto lsn = Lsn::Parse(text);
  if (lsn.ok()) {
    auto again = Lsn::Parse(lsn->ToString());
    Check(again.ok() && *again == *lsn, "LSN '" + text + "' does not print back");
  } else {
    CheckInvalidArgument(lsn.status(), "Lsn::Parse");
  }

  auto t = ParseTimestampUs(text);
  if (t.ok()) {
    constexpr int64_t kYear10000Us = 253'402'300'800'000'000;
    if (*t >= 0 && *t < kYear10000Us) {
      auto again = ParseTimestampUs(FormatTimestampUs(*t));
      Check(again.ok() && *again == *t, "timestamp '" + text + "' = " + std::to_string(*t) +
                                            " does not print back as " + FormatTimestampUs(*t));
    }
  } else {
    CheckInvalidArgument(t.status(), "ParseTimestampUs");
  }
}

}  // namespace
}  // namespace lifeline

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  lifeline::ParseConfig(text);
  lifeline::ParseValues(text);
  return 0;
}
