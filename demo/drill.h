// `lifeline drill`: the recovery plan's drills run for real on the local pipeline, under load:
// a fault is injected, the pipeline recovers, and the result is judged against the plan's criteria
// (recovery time, data loss in seconds, emergency calls lost, counted against the load's ledger).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace lifeline {

struct DrillOptions {
  // capture-crash, replayer-crash, kafka-outage, primary-restart, standby-restart, region-loss,
  // pitr, chaos, or all (every scenario but chaos, in turn).
  std::string scenario;
  int64_t duration_ms = 60'000;  // the load's duration in each scenario
  double rate = 200;             // changes per second
  int64_t outage_ms = 30'000;    // kafka-outage: how long every broker stays down
  int rtt_ms = 0;                // Kafka round trip (a cross-region link)
  std::string workdir;           // parent of each scenario's work directory; empty: /tmp
  bool keep = false;
  std::string format = "text";
  uint32_t seed = 0;  // chaos: order and timing of the faults; 0: random
  // The plan's criteria.
  double max_recovery_seconds = 300;  // RTO 5 minutes
  double max_rpo_seconds = 30;        // RPO 30 seconds
};

struct DrillResult {
  std::string scenario;
  bool passed = false;
  double recovery_seconds = 0;  // from the fault until the standby applied what followed it
  double rpo_seconds = 0;       // data actually lost, in seconds of commits (0: nothing lost)
  double max_lag_seconds = 0;   // the worst commit-to-applied lag seen during the drill
  uint64_t calls_committed = 0;
  std::vector<std::string> lost_ids;
  bool standby_equals_primary = false;
  int gapcheck_rows_exit = -1;  // -1: not run (the primary is gone or was restored)
  int gapcheck_stream_exit = -1;
  std::vector<std::string> notes;  // what happened, in order, for the report
  std::vector<std::string> failures;
};

// Runs the scenario(s); Ok with the results whether they passed or not. Errors are set-up failures.
[[nodiscard]] Result<std::vector<DrillResult>> RunDrills(const DrillOptions& options);

// Prints the results (text or JSON) to stdout.
void PrintDrillResults(const std::vector<DrillResult>& results, const std::string& format);

}  // namespace lifeline
