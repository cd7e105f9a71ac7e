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
#include <string_view>
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
  std::string raw;  // the record's value as stored, if it did not parse or its rows are sealed
  std::optional<v1::ChangeEvent> event;  // nullopt: it did not parse (see error)
  std::string error;
};

// The check every record passes before it is replayed, from a spool or Kafka: it parses as a
// ChangeEvent (into `event`, whose buffers are reused) and carries a seq. Corruption says why not.
[[nodiscard]] Status ParseRecord(std::string_view bytes, v1::ChangeEvent* event);

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
  // Records taken from the source so far (parsed or not, duplicates included).
  virtual uint64_t records_read() const = 0;
  // Hands back an event the caller is done with, to be parsed into again.
  virtual void Recycle(SourcedEvent&& item) = 0;
};

// What a source holds, so a window outside it can say what it holds instead.
struct HeldRange {
  bool empty = true;
  uint64_t first_seq = 0, last_seq = 0;
  uint64_t first_lsn = 0, last_lsn = 0;
  int64_t first_time_us = 0, last_time_us = 0;
  std::map<int32_t, std::pair<int64_t, int64_t>> offsets;  // Kafka: partition -> [low, high)
  // "seq A..B, commit LSN X..Y, committed T1 .. T2" (and the offsets of a topic).
  std::string Describe() const;
};

// Where a window of events committed after a time starts.
struct TimeStart {
  // Kafka: per partition, the first record that may be after the time; spool: {-1, seq}.
  std::map<int32_t, int64_t> offsets;
  uint64_t first_seq = 0;  // the lowest seq at those offsets; 0: nothing after the time
  // Partitions where the broker's offsets-for-times answer did not check out and a binary search
  // over offsets found the start instead.
  std::vector<int32_t> searched;
};

// A topic's held range and (optionally) where a --from-time window starts in it, and how many
// records it took to find out.
struct TopicSurvey {
  HeldRange held;
  std::optional<TimeStart> time_start;
  uint64_t records_read = 0;
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
  // A seq missing this long (of reading without broker errors) while every partition is past it
  // is handed over as a gap.
  std::chrono::milliseconds gap_timeout{10'000};
};

// Reads the first and last record of each partition and, with `after_us`, finds per partition the
// first record committed after it: the broker's offsets-for-times answer (record timestamp =
// commit time in ms) is checked against the commit times of the records around it, and where it
// does not hold (or the broker gives none), a binary search over offsets finds it.
[[nodiscard]] Result<TopicSurvey> SurveyTopic(const KafkaSourceOptions& options,
                                              std::optional<int64_t> after_us);
// The same for a spool (seq is dense there, so the search is over seq).
[[nodiscard]] Result<TopicSurvey> SurveySpool(const std::string& dir,
                                              std::optional<int64_t> after_us);

[[nodiscard]] Result<std::unique_ptr<EventSource>> OpenSpoolSource(const std::string& dir,
                                                                   uint64_t from_seq);
[[nodiscard]] Result<std::unique_ptr<EventSource>> OpenKafkaSource(
    const KafkaSourceOptions& options);

}  // namespace lifeline::replayer
