// Spooled events to Kafka records. The shipper reads only a few fields of each event, so it
// walks the protobuf wire format in place instead of building the whole message: a full parse
// (a dozen strings and sub-messages made and freed per event) was half of the shipper's CPU.
#include "shipper/kafka_record.h"

#include <google/protobuf/stubs/common.h>

#include <string_view>

#include "common/event_format.h"
#include "common/lsn.h"

namespace lifeline::shipper {
namespace {

// Wire types of the protobuf encoding.
constexpr int kVarint = 0;
constexpr int kFixed64 = 1;
constexpr int kLengthDelimited = 2;
constexpr int kFixed32 = 5;

// A cursor over protobuf wire format; every read fails (returns false) rather than run past the
// end. It knows nothing of groups (never written by lifeline); meeting one fails the scan.
class WireReader {
 public:
  explicit WireReader(std::string_view in) : p_(in.data()), end_(in.data() + in.size()) {}

  bool done() const { return p_ == end_; }

  bool Varint(uint64_t* v) {
    uint64_t out = 0;
    for (int shift = 0; shift < 70; shift += 7) {
      if (p_ == end_) return false;
      auto b = static_cast<uint8_t>(*p_++);
      out |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        *v = out;
        return true;
      }
    }
    return false;  // more than 10 bytes
  }

  bool Tag(uint32_t* field, int* wire_type) {
    uint64_t tag = 0;
    if (!Varint(&tag) || tag > UINT32_MAX || (tag >> 3) == 0) return false;
    *field = static_cast<uint32_t>(tag >> 3);
    *wire_type = static_cast<int>(tag & 7);
    return true;
  }

  bool Bytes(std::string_view* out) {
    uint64_t n = 0;
    if (!Varint(&n) || n > static_cast<uint64_t>(end_ - p_) || n > INT32_MAX) return false;
    *out = std::string_view(p_, n);
    p_ += n;
    return true;
  }

  // A proto3 string: valid UTF-8, as the full parser insists.
  bool Text(std::string_view* out) {
    return Bytes(out) && google::protobuf::internal::IsStructurallyValidUTF8(
                             out->data(), static_cast<int>(out->size()));
  }

  bool Skip(int wire_type) {
    uint64_t v = 0;
    std::string_view s;
    switch (wire_type) {
      case kVarint:
        return Varint(&v);
      case kFixed64:
        return Advance(8);
      case kLengthDelimited:
        return Bytes(&s);
      case kFixed32:
        return Advance(4);
      default:
        return false;
    }
  }

 private:
  bool Advance(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) return false;
    p_ += n;
    return true;
  }

  const char* p_;
  const char* end_;
};

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

// Calls on_field(reader, field, wire_type) for each field of a message; on_field consumes the
// field's payload and returns false on malformed input. A known field number with an unexpected
// wire type is an unknown field to protobuf, so callers skip it.
template <typename OnField>
bool ScanMessage(std::string_view bytes, OnField on_field) {
  WireReader r(bytes);
  while (!r.done()) {
    uint32_t field = 0;
    int wire_type = 0;
    if (!r.Tag(&field, &wire_type) || !on_field(r, field, wire_type)) return false;
  }
  return true;
}

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

bool ScanEvent(std::string_view bytes, EventView& ev) {
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
      case 2:
        return r.Bytes(&s) && ScanSource(s, ev);
      case 11:
        return r.Bytes(&s) && ScanRelation(s, ev);
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

// RecordKey over the view; the two must agree (tests/shipper checks them against each other).
std::optional<std::string> ViewKey(const EventView& ev) {
  if (ev.sealed) {
    if (!ev.has_record_key) return std::nullopt;
    return std::string(ev.record_key);
  }
  const std::vector<ValueView>* row = nullptr;
  if (ev.op == v1::OP_DELETE) {
    row = ev.has_before ? &ev.before : nullptr;
  } else if (ev.has_after) {
    row = &ev.after;
  }
  if (row == nullptr) return std::nullopt;
  size_t n = std::min(ev.columns.size(), row->size());
  size_t keys = 0;
  size_t only = 0;
  for (size_t i = 0; i < n; ++i) {
    if (ev.columns[i].key) {
      ++keys;
      only = i;
    }
  }
  if (keys == 0) return std::nullopt;
  auto text = [&](size_t i) { return (*row)[i].is_text ? (*row)[i].text : std::string_view(); };
  if (keys == 1) return std::string(text(only));
  std::string json = "{";
  bool first = true;
  for (size_t i = 0; i < n; ++i) {
    if (!ev.columns[i].key) continue;
    if (!first) json += ",";
    first = false;
    json += JsonQuote(ev.columns[i].name) + ":" + JsonQuote(text(i));
  }
  return json + "}";
}

}  // namespace

std::optional<std::string> RecordKey(const v1::ChangeEvent& event) {
  return RecordKeyText(event);
}

namespace {

KafkaRecord RecordFromEvent(const v1::ChangeEvent& ev, std::string bytes) {
  KafkaRecord r;
  r.seq = ev.seq();
  r.key = RecordKey(ev);
  r.value = std::move(bytes);
  r.commit_time_us = ev.commit_time_us();
  r.timestamp_ms = ev.commit_time_us() / 1000;
  r.headers = {{"seq", std::to_string(ev.seq())},
               {"commit_lsn", Lsn(ev.commit_lsn()).ToString()},
               {"source", ev.source().system_id() + "/" + ev.source().slot_name()},
               {"schema_version", std::to_string(ev.relation().schema_version())}};
  if (ev.has_sealed()) r.headers.emplace_back("key_id", ev.sealed().key_id());
  return r;
}

}  // namespace

Result<KafkaRecord> ToKafkaRecord(SpoolRecord record) {
  thread_local EventView ev;  // reused, so its lists keep their capacity
  ev.Clear();
  if (!ScanEvent(record.bytes, ev)) {
    // Whatever the scan cannot read (malformed bytes, or valid but unusual encodings such as
    // groups), the full parser judges: it gives the error, or the same record the slow way.
    LIFELINE_ASSIGN_OR_RETURN(v1::ChangeEvent full, ParseEvent(record));
    return RecordFromEvent(full, std::move(record.bytes));
  }
  if (ev.seq != record.seq) {
    return Status::Corruption("event stored at seq " + std::to_string(record.seq) +
                              " carries seq " + std::to_string(ev.seq));
  }
  KafkaRecord r;
  r.seq = record.seq;
  r.key = ViewKey(ev);
  r.commit_time_us = ev.commit_time_us;
  r.timestamp_ms = ev.commit_time_us / 1000;
  std::string source;
  source.reserve(ev.system_id.size() + 1 + ev.slot_name.size());
  source.append(ev.system_id).append("/").append(ev.slot_name);
  // Built in place: an initializer list would copy every string once more.
  r.headers.reserve(5);
  r.headers.emplace_back("seq", std::to_string(ev.seq));
  r.headers.emplace_back("commit_lsn", Lsn(ev.commit_lsn).ToString());
  r.headers.emplace_back("source", std::move(source));
  r.headers.emplace_back("schema_version", std::to_string(ev.schema_version));
  if (ev.sealed) r.headers.emplace_back("key_id", std::string(ev.key_id));
  r.value = std::move(record.bytes);  // after the views into it are used
  return r;
}

}  // namespace lifeline::shipper
