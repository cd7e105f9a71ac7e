// Spooled events to Kafka records. The shipper reads only a few fields of each event, so it
// walks the protobuf wire format in place instead of building the whole message: a full parse
// (a dozen strings and sub-messages made and freed per event) was half of the shipper's CPU.
#include "shipper/kafka_record.h"

#include <charconv>
#include <string_view>

#include "common/event_format.h"
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

// A relation's columns and schema version, pointing into the memo's copy of its bytes.
struct RelationView {
  uint32_t schema_version = 0;
  std::vector<ColumnView> columns;
  std::vector<uint32_t> keys;  // indices of the key columns, ascending
};

// The source as the record's header has it ("system_id/slot_name"), from the memo.
struct SourceView {
  std::string header = "/";
};

// The fields of a ChangeEvent the record needs, pointing into the spooled bytes (and into the
// memo for the source and relation). Repeated occurrences of a field combine as protobuf merges
// them: scalars last wins, lists append.
struct EventView {
  uint64_t seq = 0;
  uint64_t commit_lsn = 0;
  int64_t commit_time_us = 0;
  int32_t op = 0;
  const SourceView* source = nullptr;
  const RelationView* relation = nullptr;
  bool has_before = false;
  bool has_after = false;
  std::vector<ValueView> before;
  std::vector<ValueView> after;
  bool sealed = false;
  std::string_view key_id;
  bool has_record_key = false;
  std::string_view record_key;

  // Back to empty, keeping the lists' capacity.
  void Clear() {
    seq = commit_lsn = 0;
    commit_time_us = 0;
    op = 0;
    source = nullptr;
    relation = nullptr;
    has_before = has_after = sealed = has_record_key = false;
    before.clear();
    after.clear();
    key_id = record_key = {};
  }
};

bool ScanSource(std::string_view bytes, std::string_view* system_id, std::string_view* slot_name) {
  return ScanMessage(bytes, [&](WireReader& r, uint32_t field, int wt) {
    std::string_view unused;
    if (wt != kLengthDelimited || (field != 1 && field != 3 && field != 4)) return r.Skip(wt);
    return r.Text(field == 1 ? system_id : field == 4 ? slot_name : &unused);
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

bool ScanRelation(std::string_view bytes, RelationView& rel) {
  bool ok = ScanMessage(bytes, [&](WireReader& r, uint32_t field, int wt) {
    std::string_view s;
    uint64_t v = 0;
    if (wt == kLengthDelimited && (field == 1 || field == 2)) return r.Text(&s);
    if (wt == kVarint && field == 4) {
      if (!r.Varint(&v)) return false;
      rel.schema_version = static_cast<uint32_t>(v);
      return true;
    }
    if (wt == kLengthDelimited && field == 5) {
      rel.columns.emplace_back();
      return r.Bytes(&s) && ScanColumn(s, rel.columns.back());
    }
    return r.Skip(wt);
  });
  for (uint32_t i = 0; i < rel.columns.size(); ++i) {
    if (rel.columns[i].key) rel.keys.push_back(i);
  }
  return ok;
}

// The hot scans below run their loops over a local reader rather than through ScanMessage's
// callback, so that the compiler keeps the read position in a register.
bool ScanValue(std::string_view bytes, ValueView& value) {
  WireReader r(bytes);
  while (!r.done()) {
    uint32_t field = 0;
    int wt = 0;
    uint64_t v = 0;
    if (!r.Tag(&field, &wt)) return false;
    if (wt == kLengthDelimited && field == 2) {
      value.is_text = true;
      if (!r.Text(&value.text)) return false;
    } else if (wt == kVarint && (field == 1 || field == 3)) {
      // The oneof holds whichever member came last.
      value.is_text = false;
      value.text = {};
      if (!r.Varint(&v)) return false;
    } else if (!r.Skip(wt)) {
      return false;
    }
  }
  return true;
}

bool ScanRow(std::string_view bytes, std::vector<ValueView>& values) {
  WireReader r(bytes);
  while (!r.done()) {
    uint32_t field = 0;
    int wt = 0;
    std::string_view s;
    if (!r.Tag(&field, &wt)) return false;
    if (wt == kLengthDelimited && field == 1) {
      values.emplace_back();
      if (!r.Bytes(&s) || !ScanValue(s, values.back())) return false;
    } else if (!r.Skip(wt)) {
      return false;
    }
  }
  return true;
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
// tables): scanned once, what was read from them serves every event that repeats them.
struct SubMessageMemo {
  std::string source_bytes;
  bool source_valid = false;
  SourceView source;
  std::string relation_bytes;
  bool relation_valid = false;
  RelationView relation;  // its names point into relation_bytes
};

const SourceView* ScanSourceMemo(std::string_view bytes, SubMessageMemo& memo) {
  if (!memo.source_valid || bytes != memo.source_bytes) {
    memo.source_valid = false;
    memo.source_bytes.assign(bytes);
    std::string_view system_id, slot_name;
    if (!ScanSource(memo.source_bytes, &system_id, &slot_name)) return nullptr;
    memo.source.header.assign(system_id).append("/").append(slot_name);
    memo.source_valid = true;
  }
  return &memo.source;
}

const RelationView* ScanRelationMemo(std::string_view bytes, SubMessageMemo& memo) {
  if (!memo.relation_valid || bytes != memo.relation_bytes) {
    memo.relation_valid = false;
    memo.relation_bytes.assign(bytes);
    memo.relation = RelationView();
    if (!ScanRelation(memo.relation_bytes, memo.relation)) return nullptr;
    memo.relation_valid = true;
  }
  return &memo.relation;
}

bool ScanEvent(std::string_view bytes, SubMessageMemo& memo, EventView& ev) {
  WireReader r(bytes);
  while (!r.done()) {
    uint32_t field = 0;
    int wt = 0;
    std::string_view s;
    uint64_t v = 0;
    if (!r.Tag(&field, &wt)) return false;
    if (wt == kVarint) {
      if (!r.Varint(&v)) return false;
      if (field == 1) ev.seq = v;
      if (field == 3) ev.commit_lsn = v;
      if (field == 6) ev.commit_time_us = static_cast<int64_t>(v);
      if (field == 10) ev.op = static_cast<int32_t>(v);
      continue;
    }
    if (wt != kLengthDelimited) {
      if (!r.Skip(wt)) return false;
      continue;
    }
    bool ok = true;
    switch (field) {
      // A sub-message given twice merges with itself in protobuf: left to the full parser.
      case 2:
        if (ev.source != nullptr || !r.Bytes(&s)) return false;
        ev.source = ScanSourceMemo(s, memo);
        ok = ev.source != nullptr;
        break;
      case 11:
        if (ev.relation != nullptr || !r.Bytes(&s)) return false;
        ev.relation = ScanRelationMemo(s, memo);
        ok = ev.relation != nullptr;
        break;
      case 12:
        ev.has_before = true;
        ok = r.Bytes(&s) && ScanRow(s, ev.before);
        break;
      case 13:
        ev.has_after = true;
        ok = r.Bytes(&s) && ScanRow(s, ev.after);
        break;
      case 15:  // message: a string
        ok = r.Text(&s);
        break;
      case 17:
        ev.sealed = true;
        ok = r.Bytes(&s) && ScanSealed(s, ev);
        break;
      default:
        ok = r.Skip(wt);
    }
    if (!ok) return false;
  }
  return true;
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
  if (row == nullptr || ev.relation == nullptr) return false;
  const RelationView& rel = *ev.relation;
  // Key columns past the row's last value do not count (the full form stops there too).
  size_t keys = 0;
  while (keys < rel.keys.size() && rel.keys[keys] < row->size()) ++keys;
  if (keys == 0) return false;
  auto text = [&](uint32_t i) { return (*row)[i].is_text ? (*row)[i].text : std::string_view(); };
  if (keys == 1) {
    key->assign(text(rel.keys[0]));
    return true;
  }
  key->assign("{");
  for (size_t k = 0; k < keys; ++k) {
    uint32_t i = rel.keys[k];
    if (k > 0) key->append(",");
    key->append(JsonQuote(rel.columns[i].name)).append(":").append(JsonQuote(text(i)));
  }
  key->append("}");
  return true;
}

// Sets what the headers carry; the record's strings keep their buffers.
void SetHeaderFields(KafkaRecord* r, uint64_t commit_lsn, std::string_view source,
                     uint32_t schema_version, std::optional<std::string_view> key_id) {
  r->commit_lsn = commit_lsn;
  if (r->source != source) r->source.assign(source);
  r->schema_version = schema_version;
  if (key_id) {
    r->key_id.emplace(*key_id);
  } else {
    r->key_id.reset();
  }
}

}  // namespace

std::optional<std::string> RecordKey(const v1::ChangeEvent& event) {
  return RecordKeyText(event);
}

std::string_view FormatDecimal(uint64_t v, char (&buf)[20]) {
  char* end = std::to_chars(buf, buf + sizeof buf, v).ptr;
  return std::string_view(buf, static_cast<size_t>(end - buf));
}

std::vector<std::pair<std::string, std::string>> Headers(const KafkaRecord& record) {
  std::vector<std::pair<std::string, std::string>> out;
  ForEachHeader(record, [&](std::string_view name, std::string_view value) {
    out.emplace_back(name, value);
  });
  return out;
}

Status FillKafkaRecord(uint64_t seq, std::string_view bytes, KafkaRecord* out) {
  struct ScanState {
    EventView ev;  // reused, so its lists keep their capacity
    SubMessageMemo memo;
  };
  thread_local ScanState state;
  EventView& ev = state.ev;
  ev.Clear();
  if (!ScanEvent(bytes, state.memo, ev)) {
    // Whatever the scan cannot read (malformed bytes, or valid but unusual encodings such as
    // groups), the full parser judges: it gives the error, or the same record the slow way.
    LIFELINE_ASSIGN_OR_RETURN(v1::ChangeEvent full,
                              ParseEvent(SpoolRecord{seq, std::string(bytes)}));
    out->seq = full.seq();
    out->key = RecordKey(full);
    out->value = bytes;
    out->commit_time_us = full.commit_time_us();
    out->timestamp_ms = full.commit_time_us() / 1000;
    std::optional<std::string_view> key_id;
    if (full.has_sealed()) key_id = full.sealed().key_id();
    SetHeaderFields(out, full.commit_lsn(),
                    full.source().system_id() + "/" + full.source().slot_name(),
                    full.relation().schema_version(), key_id);
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
  SetHeaderFields(out, ev.commit_lsn, ev.source ? ev.source->header : std::string_view("/"),
                  ev.relation ? ev.relation->schema_version : 0,
                  ev.sealed ? std::optional<std::string_view>(ev.key_id) : std::nullopt);
  out->value = bytes;
  return Status::Ok();
}

Result<KafkaRecord> ToKafkaRecord(const SpoolRecord& record) {
  KafkaRecord r;
  LIFELINE_RETURN_IF_ERROR(FillKafkaRecord(record.seq, record.bytes, &r));
  return r;
}

}  // namespace lifeline::shipper
