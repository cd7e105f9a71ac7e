// The emergency-request load: requests created, assigned, en route, completed or cancelled in the
// proportions of a busy day, at a fixed rate of changes per second, with a ledger of every request
// id the database acknowledged, so tests and drills count calls against what was really committed.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "common/status.h"

namespace lifeline {

struct LoadOptions {
  std::string target;  // conninfo of the database holding emergency_requests
  std::string password;
  double rate = 200;             // changes per second
  int64_t duration_ms = 60'000;  // 0: until stopped
  std::string ledger_path;       // appended: one committed request id per line; empty: none
  uint32_t seed = 0;             // 0: random
  // Called after each acknowledged commit that created a request (drills keep commit times).
  std::function<void(const std::string& request_id)> on_request_committed;
};

struct LoadReport {
  uint64_t changes = 0;           // committed row changes
  uint64_t requests_created = 0;  // committed inserts (the ledger's lines)
  uint64_t transactions = 0;
  uint64_t errors = 0;  // failed transactions (connection lost): nothing of them is in the ledger
};

// Runs until the duration passes or `stop` is set. Reconnects after a lost connection.
[[nodiscard]] Result<LoadReport> RunLoad(const LoadOptions& options, const std::atomic<bool>& stop,
                                         std::atomic<uint64_t>* changes_committed = nullptr);

}  // namespace lifeline
