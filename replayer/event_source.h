// Where the replayer reads events: a spool directory (read-only, live or copied) or a Kafka topic
// (every partition, manually assigned, merged back into seq order). Both hand out events in seq
// order with their position, or a record that does not parse, with its position.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "lifeline/v1/change_event.pb.h"

namespace lifeline::replayer {

// Where a record sits: a spool seq, or a Kafka partition and offset.
struct RecordPosition {
  std::string topic;  // empty for a spool
  int32_t partition = -1;
  int64_t offset = -1;  // spool: the seq
  std::string Describe() const;
};

struct SourcedEvent {
  RecordPosition position;
  std::string raw;                       // the record's value as stored
  std::optional<v1::ChangeEvent> event;  // nullopt: it did not parse (see error)
  std::string error;
};

class EventSource {
 public:
  virtual ~EventSource() = default;
  // The next event after the given seq, waiting up to `timeout`; nullopt if none arrived.
  // `at_end` is set when the source has nothing more right now (for --stop-at-end).
  [[nodiscard]] virtual Result<std::optional<SourcedEvent>> Next(std::chrono::milliseconds timeout,
                                                                 bool* at_end) = 0;
  // Where to resume per partition after everything up to `seq` was applied (Kafka: offsets of
  // the records handed out; spool: seq + 1 in partition -1).
  virtual std::map<int32_t, int64_t> NextOffsets() const = 0;
  virtual std::string topic() const = 0;
};

struct KafkaSourceOptions {
  std::string brokers;
  std::string topic;
  std::vector<std::string> properties;
  // Per partition: the offset to start at; partitions not listed start at the beginning.
  std::map<int32_t, int64_t> start_offsets;
  // The seq the caller expects next: records below it are passed over quickly, and records of
  // other partitions wait for it, so a seq split across partitions is merged back in order.
  uint64_t next_seq = 1;
  // A seq missing this long while every partition is past it is handed over as a gap.
  std::chrono::milliseconds gap_timeout{10'000};
};

[[nodiscard]] Result<std::unique_ptr<EventSource>> OpenSpoolSource(const std::string& dir,
                                                                   uint64_t from_seq);
[[nodiscard]] Result<std::unique_ptr<EventSource>> OpenKafkaSource(
    const KafkaSourceOptions& options);

}  // namespace lifeline::replayer
