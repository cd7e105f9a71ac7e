// shipper: forwards complete transactions from the spool to a Kafka topic in seq order. Its
// cursor in the spool moves only over records Kafka acknowledged, so a crash re-ships (the same
// seq, which the replayer drops) and never skips.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "common/metrics.h"
#include "common/spool.h"
#include "common/status.h"

namespace lifeline {

struct ShipperOptions {
  std::string brokers;
  std::string topic = "lifeline.events";
  std::vector<std::string> kafka_properties;  // key=value, passed to librdkafka
  int partitions = 1;                         // when the topic is created
  int replication_factor = -1;                // when the topic is created; -1: cluster default
  int64_t retention_ms = 24LL * 3600 * 1000;  // shipped events older than this are trimmed
  bool until_drained = false;                 // return once everything spooled is acknowledged
  std::string cursor_name = "shipper";
};

// Ships from `spool` (a writer instance: capture's, or one opened by `lifeline ship`) until
// `stop` is set or, with until_drained, nothing is left.
[[nodiscard]] Status RunShipper(Spool& spool, const ShipperOptions& options,
                                const std::atomic<bool>& stop, Metrics& metrics);

// `lifeline ship`: drains a spool directory (for example one copied off a failed host).
[[nodiscard]] Status ShipSpool(const std::string& spool_dir, const ShipperOptions& options,
                               const std::string& metrics_addr, const std::atomic<bool>& stop);

}  // namespace lifeline
