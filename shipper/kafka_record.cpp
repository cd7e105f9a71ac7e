// Spooled events to Kafka records.
#include "shipper/kafka_record.h"

#include "common/event_format.h"
#include "common/lsn.h"

namespace lifeline::shipper {

std::optional<std::string> RecordKey(const v1::ChangeEvent& event) {
  const v1::Row* row = nullptr;
  if (event.op() == v1::OP_DELETE) {
    row = event.has_before() ? &event.before() : nullptr;
  } else if (event.has_after()) {
    row = &event.after();
  }
  if (row == nullptr) return std::nullopt;
  std::vector<std::pair<std::string, std::string>> parts;
  const auto& cols = event.relation().columns();
  for (int i = 0; i < cols.size() && i < row->values_size(); ++i) {
    if (!cols[i].key()) continue;
    const auto& v = row->values(i);
    parts.emplace_back(cols[i].name(), v.kind_case() == v1::Value::kText ? v.text() : "");
  }
  if (parts.empty()) return std::nullopt;
  if (parts.size() == 1) return parts[0].second;
  std::string json = "{";
  for (size_t i = 0; i < parts.size(); ++i) {
    json += (i ? "," : "") + JsonQuote(parts[i].first) + ":" + JsonQuote(parts[i].second);
  }
  return json + "}";
}

Result<KafkaRecord> ToKafkaRecord(SpoolRecord record) {
  LIFELINE_ASSIGN_OR_RETURN(v1::ChangeEvent ev, ParseEvent(record));
  KafkaRecord r;
  r.seq = record.seq;
  r.key = RecordKey(ev);
  r.value = std::move(record.bytes);
  r.commit_time_us = ev.commit_time_us();
  r.timestamp_ms = ev.commit_time_us() / 1000;
  r.headers = {{"seq", std::to_string(ev.seq())},
               {"commit_lsn", Lsn(ev.commit_lsn()).ToString()},
               {"source", ev.source().system_id() + "/" + ev.source().slot_name()},
               {"schema_version", std::to_string(ev.relation().schema_version())}};
  return r;
}

}  // namespace lifeline::shipper
