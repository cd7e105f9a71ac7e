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

#include "common/lsn.h"
#include "common/spool.h"

namespace lifeline::shipper {

// Decimal text of `v`, written into `buf` without allocating.
std::string_view FormatDecimal(uint64_t v, char (&buf)[20]);

struct KafkaRecord {
  uint64_t seq = 0;
  std::optional<std::string> key;  // nullopt: no key, partition 0
  std::string_view value;          // the bytes it was made from: valid while they are
  int64_t timestamp_ms = 0;
  int64_t commit_time_us = 0;
  // What the headers carry; ForEachHeader formats them (as text, when they are produced).
  uint64_t commit_lsn = 0;
  std::string source;  // "system_id/slot_name"
  uint32_t schema_version = 0;
  std::optional<std::string> key_id;  // sealed events only
};

// Calls emit(name, value) for each header of `record`, in order; the values are valid only
// during the call.
template <typename Emit>
void ForEachHeader(const KafkaRecord& record, Emit emit) {
  char digits[20];
  emit(std::string_view("seq"), FormatDecimal(record.seq, digits));
  char lsn[Lsn::kTextMax];
  emit(std::string_view("commit_lsn"), Lsn(record.commit_lsn).Format(lsn));
  emit(std::string_view("source"), std::string_view(record.source));
  emit(std::string_view("schema_version"), FormatDecimal(record.schema_version, digits));
  if (record.key_id) emit(std::string_view("key_id"), std::string_view(*record.key_id));
}

// The headers as (name, value) pairs, for tests and diagnostics.
std::vector<std::pair<std::string, std::string>> Headers(const KafkaRecord& record);

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
