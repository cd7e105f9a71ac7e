// Builds plausible emergency_requests INSERT events.
#include "tests/support/sample_events.h"

#include <cstdio>

namespace lifeline::testing {

v1::ChangeEvent SampleEvent(uint32_t xid, uint32_t index, uint32_t count, size_t approx_bytes) {
  v1::ChangeEvent ev;
  ev.mutable_source()->set_system_id("7312345678901234567");
  ev.mutable_source()->set_timeline(1);
  ev.mutable_source()->set_database("app");
  ev.mutable_source()->set_slot_name("lifeline");
  ev.set_commit_lsn(0x1000000ull + uint64_t{xid} * 0x1000);
  ev.set_event_lsn(ev.commit_lsn() - 0x800 + index);
  ev.set_xid(xid);
  ev.set_commit_time_us(1'764'000'000'000'000LL + int64_t{xid} * 1000);
  ev.set_index_in_txn(index);
  ev.set_txn_event_count(count);
  ev.set_last_in_txn(index + 1 == count);
  ev.set_op(v1::OP_INSERT);
  auto* rel = ev.mutable_relation();
  rel->set_schema("public");
  rel->set_table("emergency_requests");
  rel->set_relation_oid(16400);
  rel->set_schema_version(1);
  auto add_col = [rel](const char* name, uint32_t oid, const char* type, bool key) {
    auto* c = rel->add_columns();
    c->set_name(name);
    c->set_type_oid(oid);
    c->set_type_name(type);
    c->set_key(key);
  };
  add_col("id", 2950, "uuid", true);
  add_col("customer_name", 25, "text", false);
  add_col("phone_number", 25, "text", false);
  add_col("notes", 3802, "jsonb", false);
  char id[40];
  std::snprintf(id, sizeof id, "00000000-0000-4000-8000-%04x%08x", index & 0xffff, xid);
  auto* after = ev.mutable_after();
  after->add_values()->set_text(id);
  after->add_values()->set_text("Customer " + std::to_string(xid));
  after->add_values()->set_text("+44 7700 900" + std::to_string(index % 1000));
  size_t used = ev.ByteSizeLong() + 40;  // seq and prev_hash are added by the spool
  std::string notes = "{\"pad\":\"";
  if (approx_bytes > used + 12) notes.append(approx_bytes - used - 12, 'x');
  notes += "\"}";
  after->add_values()->set_text(notes);
  return ev;
}

std::vector<v1::ChangeEvent> SampleTransaction(uint32_t xid, uint32_t count, size_t approx_bytes) {
  std::vector<v1::ChangeEvent> out;
  out.reserve(count);
  for (uint32_t i = 0; i < count; ++i) out.push_back(SampleEvent(xid, i, count, approx_bytes));
  return out;
}

}  // namespace lifeline::testing
