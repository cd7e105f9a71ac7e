// The transform step of the shipper: a spooled event becomes a Kafka record.
//
//   key        the row's primary-key text (one key column), or a JSON object of key column to
//              text (several); null for events without a row (heartbeat, truncate, marker),
//              which go to partition 0 so that they keep their place in one partition. A sealed
//              event's key is its clear Sealed.record_key (the same text), so partitioning
//              needs no encryption key
//   value      the serialized ChangeEvent, as spooled
//   timestamp  commit time, milliseconds (so offsets-for-times finds a wall-clock position)
//   headers    seq (decimal), commit_lsn ("X/Y"), source (system id/slot), schema_version, and
//              key_id (the sealing key's id) when the event's rows are sealed
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/spool.h"

namespace lifeline::shipper {

struct KafkaRecord {
  uint64_t seq = 0;
  std::optional<std::string> key;  // nullopt: no key, partition 0
  std::string_view value;          // the bytes it was made from: valid while they are
  int64_t timestamp_ms = 0;
  int64_t commit_time_us = 0;
  std::vector<std::pair<std::string, std::string>> headers;
};

// Makes `out` the record of the event stored at `seq` as `bytes`, which must outlive its use (the
// value is a view of them: the producer copies it once, into its own message). `out` may hold an
// earlier record: its strings are overwritten in place, so a shipper that reuses one record
// allocates nothing for it at a steady pace.
[[nodiscard]] Status FillKafkaRecord(uint64_t seq, std::string_view bytes, KafkaRecord* out);
// The record's value is a view of `record.bytes`, hence no temporaries.
[[nodiscard]] Result<KafkaRecord> ToKafkaRecord(const SpoolRecord& record);
Result<KafkaRecord> ToKafkaRecord(SpoolRecord&& record) = delete;

// The primary-key text of an event's row, as the record key: nullopt for rowless events.
std::optional<std::string> RecordKey(const v1::ChangeEvent& event);

}  // namespace lifeline::shipper
