// `lifeline demo`: the whole pipeline on this machine: a primary and a standby PostgreSQL with the
// reference schema, capture+shipper into devkafka (3 brokers), the replayer onto the standby, a
// load of emergency requests with a ledger, a live status line, and a verdict that every
// committed call reached the standby and that both sides are identical.
#pragma once

#include <string>

#include "common/status.h"

namespace lifeline {

struct DemoOptions {
  std::string workdir;  // empty: a new directory under /tmp
  int64_t duration_ms = 30'000;
  double rate = 200;  // changes per second
  bool keep = false;  // keep the work directory (cluster data, spool, logs)
  int rtt_ms = 0;     // round trip added by every Kafka broker (a cross-region link)
  std::string format = "text";
  std::string
      report_dir;  // gapcheck's reports; empty: <workdir>/report if kept, else a new /tmp dir
};

// Ok when every committed call reached the end of the pipeline. A lost call is a defect of the
// pipeline: Status::Internal naming the calls (exit 1). Set-up failures keep their own codes.
[[nodiscard]] Status RunDemo(const DemoOptions& options);

}  // namespace lifeline
