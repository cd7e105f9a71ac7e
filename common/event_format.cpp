// Renders ChangeEvents as JSON Lines or text.
#include "common/event_format.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <utility>
#include <vector>

#include "common/lsn.h"

namespace lifeline {
namespace {

// The row image that identifies the row: after for inserts/updates, before for deletes.
const v1::Row* KeyImage(const v1::ChangeEvent& ev) {
  if (ev.op() == v1::OP_DELETE) return ev.has_before() ? &ev.before() : nullptr;
  if (ev.has_after()) return &ev.after();
  return ev.has_before() ? &ev.before() : nullptr;
}

std::string ValueJson(const v1::Value& v) {
  if (v.kind_case() == v1::Value::kText) return JsonQuote(v.text());
  return "null";  // SQL NULL; unchanged TOAST is listed under "unchanged" instead
}

}  // namespace

std::string RowToJson(const v1::ChangeEvent& ev, const v1::Row& row) {
  std::string s = "{";
  const auto& cols = ev.relation().columns();
  for (int i = 0; i < row.values_size() && i < cols.size(); ++i) {
    if (row.values(i).kind_case() == v1::Value::kUnchangedToast) continue;
    if (s.size() > 1) s += ",";
    s += JsonQuote(cols[i].name()) + ":" + ValueJson(row.values(i));
  }
  return s + "}";
}

std::string_view OpName(v1::Op op) {
  switch (op) {
    case v1::OP_INSERT:
      return "insert";
    case v1::OP_UPDATE:
      return "update";
    case v1::OP_DELETE:
      return "delete";
    case v1::OP_TRUNCATE:
      return "truncate";
    case v1::OP_SNAPSHOT:
      return "snapshot";
    case v1::OP_HEARTBEAT:
      return "heartbeat";
    case v1::OP_RESNAPSHOT_MARKER:
      return "resnapshot";
    default:
      return "unspecified";
  }
}

int64_t NowUnixMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string FormatTimestampUs(int64_t unix_micros) {
  int64_t secs = unix_micros / 1'000'000;
  int64_t micros = unix_micros % 1'000'000;
  if (micros < 0) {
    micros += 1'000'000;
    secs -= 1;
  }
  time_t t = static_cast<time_t>(secs);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(micros));
  return buf;
}

Result<int64_t> ParseTimestampUs(const std::string& text) {
  int y, mo, d, h = 0, mi = 0;
  double sec = 0;
  char sep = 0;
  int n = 0;
  auto bad = [&] {
    return Status::InvalidArgument("malformed timestamp '" + text +
                                   "': use RFC 3339, e.g. 2026-11-25T10:00:00.123456Z or "
                                   "'2026-11-25 10:00:00+01:00'");
  };
  if (std::sscanf(text.c_str(), "%4d-%2d-%2d%c%2d:%2d:%lf%n", &y, &mo, &d, &sep, &h, &mi, &sec,
                  &n) < 7 ||
      (sep != 'T' && sep != ' ') || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
      !(sec >= 0 && sec < 61)) {  // also refuses the "nan" that %lf reads
    return bad();
  }
  std::string zone = text.substr(static_cast<size_t>(n));
  int64_t offset_s = 0;
  if (!zone.empty() && zone != "Z" && zone != "z") {
    int zh = 0, zm = 0;
    char sign = zone[0];
    if ((sign != '+' && sign != '-') || (std::sscanf(zone.c_str() + 1, "%2d:%2d", &zh, &zm) < 1 &&
                                         std::sscanf(zone.c_str() + 1, "%2d%2d", &zh, &zm) < 1)) {
      return bad();
    }
    offset_s = (sign == '-' ? -1 : 1) * (zh * 3600 + zm * 60);
  }
  struct tm tm {};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  int64_t whole = static_cast<int64_t>(timegm(&tm));
  int64_t micros = static_cast<int64_t>(sec * 1'000'000 + 0.5);
  return (whole - offset_s) * 1'000'000 + micros;
}

std::string JsonQuote(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string EventToJson(const v1::ChangeEvent& ev) {
  std::string s = "{\"seq\":" + std::to_string(ev.seq());
  s += ",\"op\":" + JsonQuote(OpName(ev.op()));
  s += ",\"schema\":" + JsonQuote(ev.relation().schema());
  s += ",\"table\":" + JsonQuote(ev.relation().table());
  s += ",\"xid\":" + std::to_string(ev.xid());
  s += ",\"commit_lsn\":" + JsonQuote(Lsn(ev.commit_lsn()).ToString());
  s += ",\"commit_time\":" + JsonQuote(FormatTimestampUs(ev.commit_time_us()));
  s += ",\"key\":";
  const v1::Row* key_row = KeyImage(ev);
  if (key_row == nullptr) {
    s += "null";
  } else {
    std::string k = "{";
    const auto& cols = ev.relation().columns();
    for (int i = 0; i < key_row->values_size() && i < cols.size(); ++i) {
      if (!cols[i].key()) continue;
      if (k.size() > 1) k += ",";
      k += JsonQuote(cols[i].name()) + ":" + ValueJson(key_row->values(i));
    }
    s += k + "}";
  }
  s += ",\"before\":" + (ev.has_before() ? RowToJson(ev, ev.before()) : std::string("null"));
  s += ",\"after\":" + (ev.has_after() ? RowToJson(ev, ev.after()) : std::string("null"));
  s += ",\"unchanged\":[";
  bool first = true;
  if (ev.has_after()) {
    const auto& cols = ev.relation().columns();
    for (int i = 0; i < ev.after().values_size() && i < cols.size(); ++i) {
      if (ev.after().values(i).kind_case() != v1::Value::kUnchangedToast) continue;
      if (!first) s += ",";
      s += JsonQuote(cols[i].name());
      first = false;
    }
  }
  if (ev.has_sealed()) s += "],\"sealed\":" + JsonQuote(ev.sealed().key_id()) + "}";
  return ev.has_sealed() ? s : s + "]}";
}

std::optional<std::string> RecordKeyText(const v1::ChangeEvent& ev) {
  if (ev.has_sealed()) {
    if (!ev.sealed().has_record_key()) return std::nullopt;
    return ev.sealed().record_key();
  }
  const v1::Row* row = nullptr;
  if (ev.op() == v1::OP_DELETE) {
    row = ev.has_before() ? &ev.before() : nullptr;
  } else if (ev.has_after()) {
    row = &ev.after();
  }
  if (row == nullptr) return std::nullopt;
  std::vector<std::pair<std::string, std::string>> parts;
  const auto& cols = ev.relation().columns();
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

std::string EventToText(const v1::ChangeEvent& ev) {
  std::string s = "seq=" + std::to_string(ev.seq()) + " " + std::string(OpName(ev.op()));
  if (!ev.relation().table().empty()) {
    s += " " + ev.relation().schema() + "." + ev.relation().table();
  }
  s += " xid=" + std::to_string(ev.xid()) + " lsn=" + Lsn(ev.commit_lsn()).ToString() +
       " time=" + FormatTimestampUs(ev.commit_time_us());
  const v1::Row* key_row = KeyImage(ev);
  if (key_row != nullptr) {
    s += " key=(";
    bool first = true;
    const auto& cols = ev.relation().columns();
    for (int i = 0; i < key_row->values_size() && i < cols.size(); ++i) {
      if (!cols[i].key()) continue;
      if (!first) s += ",";
      s += cols[i].name() + "=" +
           (key_row->values(i).kind_case() == v1::Value::kText ? key_row->values(i).text()
                                                               : std::string("NULL"));
      first = false;
    }
    s += ")";
  }
  if (ev.has_sealed()) s += " sealed (key " + ev.sealed().key_id() + ")";
  if (ev.last_in_txn()) s += " [end of txn]";
  return s;
}

}  // namespace lifeline
