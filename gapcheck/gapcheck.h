// gapcheck: the DBA's reports after an incident: stream continuity (`stream`), per-bucket counts
// (`buckets`), row-level differences (`rows`) and the recovery point (`rpo`), as text, JSON or
// HTML.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace lifeline {

// A stream to read: a spool directory, or a Kafka topic (every partition). Empty: none given.
struct GapcheckStream {
  std::string spool_dir;
  std::string kafka_brokers;
  std::string topic = "lifeline.events";
  std::vector<std::string> kafka_properties;
  // Key files to open sealed row images with (common/event_seal.h); continuity needs none.
  std::vector<std::string> encryption_key_files;
  bool given() const { return !spool_dir.empty() || !kafka_brokers.empty(); }
};

struct GapcheckOptions {
  std::string report;  // "stream", "buckets", "rows" or "rpo"
  std::string source;  // conninfo of the primary
  std::string source_password;
  std::string target;  // conninfo of the standby
  std::string target_password;
  GapcheckStream stream;

  std::string table = "public.emergency_requests";
  std::string where;  // rows: an SQL condition both sides are filtered by
  int64_t since_ms = 2 * 3600 * 1000;
  int64_t bucket_ms = 60 * 1000;
  std::string time_column = "created_at";
  int64_t rpo_objective_ms = 30'000;  // rpo: the recovery point objective the report judges by

  std::string format = "text";  // "text" or "json"
  std::string html_path;        // also write the HTML report here
  bool color = false;           // ANSI colour in text output (only on a terminal)
  bool progress = false;        // progress lines on stderr (only on a terminal)
};

// What a report found: differences (exit 1) or none (exit 0). Errors are a Status (exit 2).
enum class GapcheckVerdict { kClean, kDifferences };

// Runs one report, prints it to stdout in the chosen format and writes the HTML file if asked.
[[nodiscard]] Result<GapcheckVerdict> RunGapcheck(const GapcheckOptions& options);

}  // namespace lifeline
