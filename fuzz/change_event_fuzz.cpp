// libFuzzer target for a ChangeEvent record as the readers take it from a spool or a Kafka topic:
// the input is the record's value. It goes through the checks they apply (replayer::ParseRecord,
// the spool's ParseEvent), and an event that passes goes on to what is done with it: its JSON and
// text renderings (spool inspect, replay --dry-run, gapcheck), the replayer's statements, the
// shipper's Kafka record, and payload encryption (opening a sealed record; sealing and opening one
// in clear).
//
// Besides "no crash", the target checks: both readers and the shipper accept the same records, and
// the shipper's record carries the full event's key and header fields; the JSON rendering
// is one JSON object that gives back the event's seq, op, table, commit LSN and (for years
// 1970..9999) commit time; every statement's highest $n placeholder matches its parameter count.
#include <google/protobuf/stubs/logging.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/event_format.h"
#include "common/event_seal.h"
#include "common/lsn.h"
#include "common/spool.h"
#include "fuzz/fuzz_check.h"
#include "replayer/event_source.h"
#include "replayer/statement_builder.h"
#include "shipper/kafka_record.h"

namespace lifeline {
namespace {

using fuzz::Check;
using fuzz::Fail;

// The highest $n outside double-quoted identifiers (and single-quoted literals) of `sql`.
size_t HighestPlaceholder(const std::string& sql) {
  size_t highest = 0;
  char quote = 0;
  for (size_t i = 0; i < sql.size(); ++i) {
    char c = sql[i];
    if (quote != 0) {
      if (c == quote) quote = 0;  // a doubled quote closes and reopens: same result
      continue;
    }
    if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '$') {
      size_t n = 0, j = i + 1;
      while (j < sql.size() && sql[j] >= '0' && sql[j] <= '9' && n < 1'000'000) {
        n = n * 10 + static_cast<size_t>(sql[j++] - '0');
      }
      highest = std::max(highest, n);
    }
  }
  Check(quote == 0, "statement ends inside a quoted name or literal: " + sql);
  return highest;
}

void CheckStatement(const replayer::Statement& st) {
  Check(st.starts.size() == st.params(), "parameter count");
  if (st.sql.empty()) return;
  Check(HighestPlaceholder(st.sql) == st.params(),
        "statement has " + std::to_string(st.params()) + " parameters: " + st.sql);
  for (size_t i = 0; i < st.params(); ++i) {
    Check(st.starts[i] < 0 || static_cast<size_t>(st.starts[i]) < st.values.size(),
          "parameter starts past the values");
  }
}

// A strict reader of the JSON that EventToJson writes (RFC 8259 values; \u escapes below 0x80 are
// decoded, others kept as written). Collects the top-level object's scalar members.
class JsonCheck {
 public:
  explicit JsonCheck(std::string_view text) : s_(text) {}

  // nullopt if `text` is not one JSON object.
  std::optional<std::map<std::string, std::string>> TopLevel() {
    if (!Value(0) || i_ != s_.size()) return std::nullopt;
    return members_;
  }

 private:
  bool Value(int depth) {
    if (depth > 8 || i_ >= s_.size()) return false;
    char c = s_[i_];
    if (c == '{') return Object(depth);
    if (c == '[') return Array(depth);
    if (c == '"') return String(&scalar_);
    if (c == '-' || (c >= '0' && c <= '9')) return Number();
    for (std::string_view word : {"null", "true", "false"}) {
      if (s_.substr(i_, word.size()) == word) {
        i_ += word.size();
        scalar_ = word;
        return true;
      }
    }
    return false;
  }
  bool Object(int depth) {
    ++i_;
    if (Eat('}')) return true;
    do {
      std::string key;
      if (!String(&key) || !Eat(':') || !Value(depth + 1)) return false;
      if (depth == 0) members_[key] = scalar_;
    } while (Eat(','));
    return Eat('}');
  }
  bool Array(int depth) {
    ++i_;
    if (Eat(']')) return true;
    do {
      if (!Value(depth + 1)) return false;
    } while (Eat(','));
    return Eat(']');
  }
  bool String(std::string* out) {
    out->clear();
    if (!Eat('"')) return false;
    while (i_ < s_.size()) {
      unsigned char c = static_cast<unsigned char>(s_[i_++]);
      if (c == '"') return true;
      if (c < 0x20) return false;
      if (c != '\\') {
        out->push_back(static_cast<char>(c));
        continue;
      }
      if (i_ >= s_.size()) return false;
      char e = s_[i_++];
      static constexpr std::string_view kFrom = "\"\\/bfnrt", kTo = "\"\\/\b\f\n\r\t";
      if (size_t k = kFrom.find(e); k != std::string_view::npos) {
        out->push_back(kTo[k]);
      } else if (e == 'u' && i_ + 4 <= s_.size()) {
        unsigned v = 0;
        for (int k = 0; k < 4; ++k) {
          char h = s_[i_++];
          int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : -1;
          if (d < 0) return false;
          v = v * 16 + static_cast<unsigned>(d);
        }
        if (v >= 0x80) return false;  // EventToJson escapes control characters only
        out->push_back(static_cast<char>(v));
      } else {
        return false;
      }
    }
    return false;
  }
  bool Number() {
    size_t start = i_;
    Eat('-');
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    scalar_ = std::string(s_.substr(start, i_ - start));
    return i_ > start && scalar_ != "-";
  }
  bool Eat(char c) {
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }

  std::string_view s_;
  size_t i_ = 0;
  std::string scalar_;
  std::map<std::string, std::string> members_;
};

void CheckJson(const v1::ChangeEvent& ev) {
  std::string json = EventToJson(ev);
  auto doc = JsonCheck(json).TopLevel();
  if (!doc) Fail("EventToJson is not one JSON object: " + json);
  auto member = [&](const std::string& key) {
    auto it = doc->find(key);
    if (it == doc->end()) Fail("EventToJson has no \"" + key + "\": " + json);
    return it->second;
  };
  Check(member("seq") == std::to_string(ev.seq()), "JSON seq");
  Check(member("op") == OpName(ev.op()), "JSON op");
  Check(member("schema") == ev.relation().schema(), "JSON schema: " + json);
  Check(member("table") == ev.relation().table(), "JSON table: " + json);
  auto lsn = Lsn::Parse(member("commit_lsn"));
  Check(lsn.ok() && lsn->value() == ev.commit_lsn(), "JSON commit_lsn does not parse back");
  // ParseTimestampUs reads 4-digit years, as RFC 3339 has them.
  constexpr int64_t kYear10000Us = 253'402'300'800'000'000;
  if (ev.commit_time_us() >= 0 && ev.commit_time_us() < kYear10000Us) {
    auto t = ParseTimestampUs(member("commit_time"));
    Check(t.ok() && *t == ev.commit_time_us(),
          "commit time " + std::to_string(ev.commit_time_us()) + " rendered as " +
              member("commit_time") + " does not parse back");
  }
}

void CheckStatements(const v1::ChangeEvent& ev) {
  auto apply = replayer::ApplyStatement(ev);
  if (apply.ok()) CheckStatement(*apply);
  if (ev.has_after()) (void)replayer::InsertIfMissingStatement(ev, ev.after());
  if (ev.has_before()) (void)replayer::InsertIfMissingStatement(ev, ev.before());
  (void)replayer::RowKeyText(ev);
  (void)replayer::QualifiedTable(ev);

  // The same row twice ends a run; two rows join one. Column types as the target would give
  // them, so that UPDATEs may join runs too.
  const std::vector<std::string> types(static_cast<size_t>(ev.relation().columns_size()), "text");
  replayer::StatementRun run;
  std::vector<replayer::Statement> out;
  if (run.TryAdd(ev, &types)) {
    Check(!run.TryAdd(ev, &types), "a run took the same key twice");
    run.TakeInto(&out);
    Check(out.size() == 1, "a one-row run gave " + std::to_string(out.size()) + " statements");
    for (const auto& st : out) CheckStatement(st);
  }
}

// A fixed key in a file of its own, as --encryption-key-file gives one.
const Keyring& FuzzKeyring() {
  static const Keyring keyring = [] {
    char dir[] = "/tmp/lifeline-fuzz-key.XXXXXX";
    Check(mkdtemp(dir) != nullptr, "cannot make a directory for the key file");
    std::string file = std::string(dir) + "/fuzz.key";
    std::ofstream(file) << std::string(64, 'a') << "\n";
    std::filesystem::permissions(file, std::filesystem::perms::owner_read);
    auto loaded = Keyring::Load({file});
    std::filesystem::remove_all(dir);
    if (!loaded.ok()) Fail("key file: " + loaded.status().ToString());
    return *std::move(loaded);
  }();
  return keyring;
}

// A sealed record from outside opens or is refused as altered or under an unknown key; an event in
// clear seals and opens back to its own row images, and its sealed form renders as well.
void CheckSeal(const v1::ChangeEvent& ev) {
  const Keyring& keyring = FuzzKeyring();
  v1::ChangeEvent copy = ev;
  if (ev.has_sealed()) {
    Status opened = keyring.Open(copy);
    Check(opened.ok() || opened.code() == StatusCode::kCorruption ||
              opened.code() == StatusCode::kFailedPrecondition,
          "Open: " + opened.ToString());
    if (opened.ok()) Check(!copy.has_sealed(), "an opened event is still sealed");
    return;
  }
  Status sealed = keyring.Seal(copy);
  Check(sealed.ok(), "Seal: " + sealed.ToString());
  if (!copy.has_sealed()) return;  // no row images
  Check(!copy.has_before() && !copy.has_after(), "a sealed event keeps row images in clear");
  CheckJson(copy);
  (void)EventToText(copy);
  Status opened = keyring.Open(copy);
  Check(opened.ok(), "an event just sealed does not open: " + opened.ToString());
  Check(copy.has_before() == ev.has_before() && copy.has_after() == ev.has_after() &&
            copy.before().SerializeAsString() == ev.before().SerializeAsString() &&
            copy.after().SerializeAsString() == ev.after().SerializeAsString(),
        "row images differ after sealing and opening");
}

// The shipper's record fill reads a few fields in place, without the full parse: it must refuse
// what the spool's parse refuses, and otherwise make the record the full event gives.
void CheckShipperRecord(const std::string& bytes, uint64_t seq, const v1::ChangeEvent* full) {
  shipper::KafkaRecord rec;
  Status filled = shipper::FillKafkaRecord(seq, bytes, &rec);
  if (full == nullptr) {
    Check(!filled.ok(), "the shipper accepts a record the spool rejects");
    return;
  }
  Check(filled.ok(), "the shipper rejects a record the spool accepts: " + filled.ToString());
  Check(rec.seq == full->seq(), "shipper seq");
  Check(rec.key == shipper::RecordKey(*full), "shipper key differs from the full event's");
  Check(rec.value == bytes, "shipper value");
  Check(rec.commit_time_us == full->commit_time_us(), "shipper commit time");
  Check(rec.commit_lsn == full->commit_lsn(), "shipper commit LSN");
  Check(rec.source == full->source().system_id() + "/" + full->source().slot_name(),
        "shipper source header");
  Check(rec.schema_version == full->relation().schema_version(), "shipper schema version");
  Check(rec.key_id.has_value() == full->has_sealed() &&
            (!rec.key_id || *rec.key_id == full->sealed().key_id()),
        "shipper key_id header");
}

}  // namespace
}  // namespace lifeline

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // A record with invalid UTF-8 in a string field is rejected; protobuf would also log it.
  google::protobuf::SetLogHandler(nullptr);
  (void)lifeline::FuzzKeyring();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lifeline;
  std::string bytes(reinterpret_cast<const char*>(data), size);
  v1::ChangeEvent ev;
  Status parsed = replayer::ParseRecord(bytes, &ev);
  if (!parsed.ok()) {
    Check(parsed.code() == StatusCode::kCorruption, "ParseRecord: " + parsed.ToString());
    auto from_spool = ParseEvent(SpoolRecord{1, bytes});
    Check(!from_spool.ok(), "the spool accepts a record the replayer rejects: " + parsed.message());
    CheckShipperRecord(bytes, 1, nullptr);
    return 0;
  }
  auto from_spool = ParseEvent(SpoolRecord{ev.seq(), bytes});
  Check(from_spool.ok(),
        "the spool rejects a record the replayer accepts: " + from_spool.status().ToString());
  Check(from_spool->SerializeAsString() == ev.SerializeAsString(), "readers parse differently");
  auto elsewhere = ParseEvent(SpoolRecord{ev.seq() + 1, bytes});
  Check(!elsewhere.ok() && elsewhere.status().code() == StatusCode::kCorruption,
        "the spool accepts an event stored at another seq");
  CheckShipperRecord(bytes, ev.seq(), &ev);

  CheckJson(ev);
  (void)EventToText(ev);
  CheckStatements(ev);
  CheckSeal(ev);
  return 0;
}
