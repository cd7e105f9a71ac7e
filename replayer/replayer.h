// replayer: applies the stream (a Kafka topic or a spool) to a standby PostgreSQL exactly once,
// whole source transactions in commit order, with its position stored in the target in the same
// transaction as the rows; and replays windows to rebuild rows after a point-in-time restore.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace lifeline {

struct ReplayOptions {
  std::string target;  // libpq conninfo of the standby
  std::string target_password;
  // Exactly one source.
  std::string spool_dir;
  std::string kafka_brokers;
  std::string topic = "lifeline.events";
  std::vector<std::string> kafka_properties;
  // Key files that open sealed row images (common/event_seal.h). An event that does not open is
  // handled as a record that does not parse: the replay stops at it, or with --dead-letter
  // stores it and goes on; it is never applied.
  std::vector<std::string> encryption_key_files;

  // Grouping of source transactions into target transactions.
  size_t batch_events = 5000;
  int64_t batch_ms = 50;
  // Apply every change as a row operation of its own, even where a target transaction holds
  // several changes of one row whose net change would do (replayer/net_changes.h).
  bool each_change = false;

  // A window (any of these makes this a window replay rather than the daemon).
  std::optional<std::pair<int32_t, int64_t>> from_offset;  // partition, offset
  std::optional<uint64_t> from_seq;
  std::optional<uint64_t> from_lsn;
  std::optional<int64_t> from_time_us;  // events committed after it
  std::optional<uint64_t> until_seq;
  std::optional<uint64_t> until_lsn;
  std::optional<int64_t> until_time_us;
  bool stop_at_end = false;
  bool dry_run = false;
  bool only_missing = false;
  bool record_position = false;  // a window replay also moves the daemon's stored position

  bool allow_gaps = false;
  bool dead_letter = false;
  std::string audit_table;  // schema.name, empty: none
  int64_t gap_timeout_ms = 10'000;
  std::string metrics_addr;
  std::string format = "text";  // of the run summary
};

// Follows the source until `stop` (daemon), or replays a window and returns. Prints a summary.
[[nodiscard]] Status RunReplay(const ReplayOptions& options, const std::atomic<bool>& stop);

}  // namespace lifeline
