// `gapcheck rpo`: where the standby is (lifeline.replay_position), where the primary is (its WAL
// LSN and clock), and so what would be lost if the primary died now: seconds, and with a stream
// the transactions themselves (count, seq range, operations).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "common/status.h"
#include "gapcheck/gapcheck.h"

namespace lifeline::gapcheck {

struct RpoReport {
  // The standby's applied position.
  std::string stream;  // topic name, empty for a spool
  uint64_t applied_seq = 0;
  std::string applied_commit_lsn;
  int64_t applied_commit_time_us = 0;
  int64_t applied_at_us = 0;
  // The primary now.
  std::string primary_wal_lsn;
  int64_t primary_now_us = 0;
  std::string slot_confirmed_flush_lsn;  // empty when no lifeline slot is found
  int64_t wal_bytes_unapplied = 0;       // primary WAL LSN minus applied commit LSN

  // Seconds of commits the standby does not reflect: the primary's now minus the applied commit
  // time (heartbeats keep the latter fresh on a quiet database). Judged against the objective.
  double rpo_seconds = 0;

  // With a stream: the transactions after the applied seq (lifeline's heartbeats left out).
  bool stream_read = false;
  int64_t lost_transactions = 0;
  uint64_t lost_first_seq = 0;
  uint64_t lost_last_seq = 0;
  int64_t lost_first_commit_time_us = 0;
  std::map<std::string, int64_t> lost_ops;  // op name -> events
  std::string stream_description;

  double objective_seconds = 30;
  bool clean() const { return rpo_seconds <= objective_seconds; }
};

[[nodiscard]] Result<RpoReport> MeasureRpo(const GapcheckOptions& options);

}  // namespace lifeline::gapcheck
