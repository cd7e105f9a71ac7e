// Spooled events to Kafka records. The shipper reads only a few fields of each event, so it
// walks the protobuf wire format in place instead of building the whole message: a full parse
// (a dozen strings and sub-messages made and freed per event) was half of the shipper's CPU.
#include "shipper/kafka_record.h"

#include <charconv>
#include <string_view>

#include "common/event_format.h"
#include "common/lsn.h"
#include "common/wire_reader.h"

namespace lifeline::shipper {
namespace {

struct ColumnView {
  std::string_view name;
  bool key = false;
};

struct ValueView {
  bool is_text = false;
  std::string_view text;
};

// The fields of a ChangeEvent the record needs, pointing into the spooled bytes. Repeated
// occurrences of a field combine as protobuf merges them: scalars last wins, lists append.
struct EventView {
  uint64_t seq = 0;
  uint64_t commit_lsn = 0;
  int64_t commit_time_us = 0;
  int32_t op = 0;
  std::string_view system_id;
  std::string_view slot_name;
  uint32_t schema_version = 0;
  std::vector<ColumnView> columns;
  bool has_before = false;
  bool has_after = false;
  std::vector<ValueView> before;
  std::vector<ValueView> after;
  bool sealed = false;
  std::string_view key_id;
  bool has_record_key = false;
  std::string_view record_key;
  bool has_source = false;
  bool has_relation = false;

  void Clear() {
    std::vector<ColumnView> c = std::move(columns);
    std::vector<ValueView> b = std::move(before), a = std::move(after);
    *this = EventView();
    c.clear();
    b.clear();
    a.clear();
    columns = std::move(c);
    before = std::move(b);
    after = std::move(a);
  }
};

bool ScanSource(std::string_view bytes, EventView& ev) {
  return ScanMessage(bytes, [&](WireReader& r, uint32_t field, int wt) {
    std::string_view unused;
    if (wt != kLengthDelimited || (field != 1 && field != 3 && field != 4)) return r.Skip(wt);
    return r.Text(field == 1 ? &ev.system_id : field == 4 ? &ev.slot_name : &unused);
  });
}

bool ScanColumn(std::string_view bytes, ColumnView& col) {
  return ScanMessage(bytes, [&](WireReader& r, uint32_t field, int wt) {
    std::string_view unused;
    uint64_t v = 0;
    if (wt == kLengthDelimited && (field == 1 || field == 3)) {
      return r.Text(field == 1 ? &col.name : &unused);
    }
    if (wt == kVarint && field == 4) {
      if (!r.Varint(&v)) return false;
      col.key = v != 0;
      return true;
    }
    return r.Skip(wt);
  });
}

bool ScanRelation(std::string_view bytes, EventView& ev) {
  return ScanMessage(bytes, [&](WireReader& r, uint32_t field, int wt) {
    std::string_view s;
    uint64_t v = 0;
    if (wt == kLengthDelimited && (field == 1 || field == 2)) return r.Text(&s);
    if (wt == kVarint && field == 4) {
      if (!r.Varint(&v)) return false;
      ev.schema_version = static_cast<uint32_t>(v);
      return true;
    }
    if (wt == kLengthDelimited && field == 5) {
      ev.columns.emplace_back();
      return r.Bytes(&s) && ScanColumn(s, ev.columns.back());
    }
    return r.Skip(wt);
  });
}

bool ScanValue(std::string_view bytes, ValueView& value) {
  return ScanMessage(bytes, [&](WireReader& r, uint32_t field, int wt) {
    uint64_t v = 0;
    if (wt == kLengthDelimited && field == 2) {
      value.is_text = true;
      return r.Text(&value.text);
    }
    if (wt == kVarint && (field == 1 || field == 3)) {
      // The oneof holds whichever member came last.
      value.is_text = false;
      value.text = {};
      return r.Varint(&v);
    }
    return r.Skip(wt);
  });
}

bool ScanRow(std::string_view bytes, std::vector<ValueView>& values) {
  return ScanMessage(bytes, [&](WireReader& r, uint32_t field, int wt) {
    std::string_view s;
    if (wt == kLengthDelimited && field == 1) {
      values.emplace_back();
      return r.Bytes(&s) && ScanValue(s, values.back());
    }
    return r.Skip(wt);
  });
}

bool ScanSealed(std::string_view bytes, EventView& ev) {
  return ScanMessage(bytes, [&](WireReader& r, uint32_t field, int wt) {
    if (wt == kLengthDelimited && field == 1) return r.Text(&ev.key_id);
    if (wt == kLengthDelimited && field == 4) {
      ev.has_record_key = true;
      return r.Text(&ev.record_key);
    }
    return r.Skip(wt);
  });
}

// The source and relation of consecutive events are the same bytes as a rule (one source, a few
// tables): scanned once, their views (into a copy kept here) serve every event that repeats them.
struct SubMessageMemo {
  std::string source_bytes;
  bool source_valid = false;
  std::string_view system_id, slot_name;
  std::string relation_bytes;
  bool relation_valid = false;
  EventView relation;  // its columns and schema_version, pointing into relation_bytes
};

bool ScanSourceMemo(std::string_view bytes, SubMessageMemo& memo, EventView& ev) {
  if (!memo.source_valid || bytes != memo.source_bytes) {
    memo.source_valid = false;
    memo.source_bytes.assign(bytes);
    EventView scanned;
    if (!ScanSource(memo.source_bytes, scanned)) return false;
    memo.system_id = scanned.system_id;
    memo.slot_name = scanned.slot_name;
    memo.source_valid = true;
  }
  ev.system_id = memo.system_id;
  ev.slot_name = memo.slot_name;
  return true;
}

bool ScanRelationMemo(std::string_view bytes, SubMessageMemo& memo, EventView& ev) {
  if (!memo.relation_valid || bytes != memo.relation_bytes) {
    memo.relation_valid = false;
    memo.relation_bytes.assign(bytes);
    memo.relation.Clear();
    if (!ScanRelation(memo.relation_bytes, memo.relation)) return false;
    memo.relation_valid = true;
  }
  ev.schema_version = memo.relation.schema_version;
  ev.columns.assign(memo.relation.columns.begin(), memo.relation.columns.end());
  return true;
}

bool ScanEvent(std::string_view bytes, EventView& ev) {
  thread_local SubMessageMemo memo;
  return ScanMessage(bytes, [&](WireReader& r, uint32_t field, int wt) {
    std::string_view s;
    uint64_t v = 0;
    if (wt == kVarint && (field == 1 || field == 3 || field == 6 || field == 10)) {
      if (!r.Varint(&v)) return false;
      if (field == 1) ev.seq = v;
      if (field == 3) ev.commit_lsn = v;
      if (field == 6) ev.commit_time_us = static_cast<int64_t>(v);
      if (field == 10) ev.op = static_cast<int32_t>(v);
      return true;
    }
    if (wt != kLengthDelimited) return r.Skip(wt);
    switch (field) {
      // A sub-message given twice merges with itself in protobuf: left to the full parser.
      case 2:
        if (ev.has_source) return false;
        ev.has_source = true;
        return r.Bytes(&s) && ScanSourceMemo(s, memo, ev);
      case 11:
        if (ev.has_relation) return false;
        ev.has_relation = true;
        return r.Bytes(&s) && ScanRelationMemo(s, memo, ev);
      case 12:
        ev.has_before = true;
        return r.Bytes(&s) && ScanRow(s, ev.before);
      case 13:
        ev.has_after = true;
        return r.Bytes(&s) && ScanRow(s, ev.after);
      case 15:  // message: a string
        return r.Text(&s);
      case 17:
        ev.sealed = true;
        return r.Bytes(&s) && ScanSealed(s, ev);
      default:
        return r.Skip(wt);
    }
  });
}

// RecordKey over the view, written into `key` (whose buffer is reused); false for no key. The two
// must agree (tests/shipper checks them against each other).
bool ViewKey(const EventView& ev, std::string* key) {
  if (ev.sealed) {
    if (!ev.has_record_key) return false;
    key->assign(ev.record_key);
    return true;
  }
  const std::vector<ValueView>* row = nullptr;
  if (ev.op == v1::OP_DELETE) {
    row = ev.has_before ? &ev.before : nullptr;
  } else if (ev.has_after) {
    row = &ev.after;
  }
  if (row == nullptr) return false;
  size_t n = std::min(ev.columns.size(), row->size());
  size_t keys = 0;
  size_t only = 0;
  for (size_t i = 0; i < n; ++i) {
    if (ev.columns[i].key) {
      ++keys;
      only = i;
    }
  }
  if (keys == 0) return false;
  auto text = [&](size_t i) { return (*row)[i].is_text ? (*row)[i].text : std::string_view(); };
  if (keys == 1) {
    key->assign(text(only));
    return true;
  }
  key->assign("{");
  bool first = true;
  for (size_t i = 0; i < n; ++i) {
    if (!ev.columns[i].key) continue;
    if (!first) key->append(",");
    first = false;
    key->append(JsonQuote(ev.columns[i].name)).append(":").append(JsonQuote(text(i)));
  }
  key->append("}");
  return true;
}

// Sets the record's headers in place: a record reused from an earlier slice already holds the
// names, and its value strings keep their buffers.
void SetHeaders(KafkaRecord* r, uint64_t seq, uint64_t commit_lsn, std::string_view system_id,
                std::string_view slot_name, uint32_t schema_version,
                std::optional<std::string_view> key_id) {
  static constexpr std::string_view kNames[] = {"seq", "commit_lsn", "source", "schema_version",
                                                "key_id"};
  r->headers.resize(key_id ? 5 : 4);
  for (size_t i = 0; i < r->headers.size(); ++i) {
    if (r->headers[i].first != kNames[i]) r->headers[i].first.assign(kNames[i]);
  }
  char digits[24];
  auto end = std::to_chars(digits, digits + sizeof digits, seq).ptr;
  r->headers[0].second.assign(digits, end);
  r->headers[1].second.assign(Lsn(commit_lsn).ToString());
  r->headers[2].second.assign(system_id).append("/").append(slot_name);
  end = std::to_chars(digits, digits + sizeof digits, schema_version).ptr;
  r->headers[3].second.assign(digits, end);
  if (key_id) r->headers[4].second.assign(*key_id);
}

}  // namespace

std::optional<std::string> RecordKey(const v1::ChangeEvent& event) {
  return RecordKeyText(event);
}

Status FillKafkaRecord(uint64_t seq, std::string_view bytes, KafkaRecord* out) {
  thread_local EventView ev;  // reused, so its lists keep their capacity
  ev.Clear();
  if (!ScanEvent(bytes, ev)) {
    // Whatever the scan cannot read (malformed bytes, or valid but unusual encodings such as
    // groups), the full parser judges: it gives the error, or the same record the slow way.
    LIFELINE_ASSIGN_OR_RETURN(v1::ChangeEvent full,
                              ParseEvent(SpoolRecord{seq, std::string(bytes)}));
    out->seq = full.seq();
    out->key = RecordKey(full);
    out->value.assign(bytes);
    out->commit_time_us = full.commit_time_us();
    out->timestamp_ms = full.commit_time_us() / 1000;
    std::optional<std::string_view> key_id;
    if (full.has_sealed()) key_id = full.sealed().key_id();
    SetHeaders(out, full.seq(), full.commit_lsn(), full.source().system_id(),
               full.source().slot_name(), full.relation().schema_version(), key_id);
    return Status::Ok();
  }
  if (ev.seq != seq) {
    return Status::Corruption("event stored at seq " + std::to_string(seq) + " carries seq " +
                              std::to_string(ev.seq));
  }
  out->seq = seq;
  if (!out->key) out->key.emplace();
  if (!ViewKey(ev, &*out->key)) out->key.reset();
  out->commit_time_us = ev.commit_time_us;
  out->timestamp_ms = ev.commit_time_us / 1000;
  SetHeaders(out, ev.seq, ev.commit_lsn, ev.system_id, ev.slot_name, ev.schema_version,
             ev.sealed ? std::optional<std::string_view>(ev.key_id) : std::nullopt);
  out->value.assign(bytes);  // the views above point into `bytes`, not into the value
  return Status::Ok();
}

Result<KafkaRecord> ToKafkaRecord(const SpoolRecord& record) {
  KafkaRecord r;
  LIFELINE_RETURN_IF_ERROR(FillKafkaRecord(record.seq, record.bytes, &r));
  return r;
}

}  // namespace lifeline::shipper
