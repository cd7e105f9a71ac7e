// capture: streams committed changes of the captured tables from PostgreSQL logical decoding
// (pgoutput) into the spool, exactly once and in commit order; the slot advances only past what
// is synced in the spool.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/metrics.h"
#include "common/spool.h"
#include "common/status.h"

namespace lifeline {

struct CaptureOptions {
  std::string source;           // libpq conninfo of the primary (no password: see below)
  std::string source_password;  // from the environment or a file, never argv
  std::string spool_dir;
  std::string slot = "lifeline";
  std::string publication = "lifeline";
  std::vector<std::string> tables = {"public.emergency_requests"};
  int64_t heartbeat_interval_ms = 1000;
  std::string metrics_addr;  // HOST:PORT for /health and /metrics; empty: none
  // Make a new slot and snapshot again, after the old slot was lost or dropped. Records a marker
  // event so gapcheck can show the window in which changes may have been missed.
  bool resnapshot = false;
  size_t batch_events = 5000;  // events per synced spool write at most
  // When the spool holds this many bytes (shipped or not), capture stops reading and confirming:
  // the slot keeps the WAL and nothing is dropped. 0: no limit.
  uint64_t spool_max_bytes = 0;
  // Key files (common/event_seal.h): when given, every event's row images are sealed before they
  // reach the spool, under the last file's key, so neither the spool nor Kafka holds them in
  // clear.
  std::vector<std::string> encryption_key_files;
  // Runs on its own thread beside capture, on capture's spool and metrics (the shipper, when
  // Kafka settings are given). It must return once its stop flag is set; an error stops capture.
  std::function<Status(Spool&, Metrics&, const std::atomic<bool>& stop)> companion;
};

// Runs until `stop` is set (then flushes, confirms and returns Ok) or a non-transient error.
// Transient errors (source restart, network cut) are retried with bounded exponential backoff.
[[nodiscard]] Status RunCapture(const CaptureOptions& options, const std::atomic<bool>& stop);

}  // namespace lifeline
