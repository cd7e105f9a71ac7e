// SQL quoting, error classification and the libpqxx exception boundary.
#include "common/postgres.h"

#include <libpq-fe.h>

#include <cctype>
#include <memory>
#include <pqxx/except>
#include <vector>

#include "common/log.h"

namespace lifeline {
namespace {

bool Contains(const std::string& s, const char* needle) {
  return s.find(needle) != std::string::npos;
}

std::string TrimMessage(std::string m) {
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  return m;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Lines of a server message that carry row or statement text.
bool ValueLabel(std::string_view line) {
  for (std::string_view label : {"DETAIL:", "CONTEXT:", "LINE ", "QUERY:", "STATEMENT:"}) {
    if (StartsWith(line, label)) return true;
  }
  return false;
}

bool OtherLabel(std::string_view line) {
  for (std::string_view label : {"ERROR:", "FATAL:", "PANIC:", "WARNING:", "HINT:", "NOTICE:"}) {
    if (StartsWith(line, label)) return true;
  }
  return false;
}

// A quoted input value in a message line: `...: "VALUE"` or `value "VALUE" is ...`.
std::string HideQuotedValues(std::string line) {
  size_t at = line.find(": \"");
  if (at != std::string::npos) {
    size_t close = line.rfind('"');
    if (close > at + 2) line.replace(at + 3, close - at - 3, kHiddenValue);
  }
  at = line.find("value \"");
  if (at != std::string::npos) {
    size_t open = at + 7;
    size_t close = line.find("\" is ", open);
    if (close == std::string::npos) close = line.rfind('"');
    if (close != std::string::npos && close > open) line.replace(open, close - open, kHiddenValue);
  }
  return line;
}

bool IsTlsFailure(const std::string& m) {
  for (const char* needle :
       {"SSL error", "certificate verify failed", "does not match host name",
        "root certificate file", "certificate file", "private key file", "server certificate",
        "server does not support SSL", "requires a valid client certificate",
        "certificate authentication failed", "sslmode value", "no encryption"}) {
    if (Contains(m, needle)) return true;
  }
  return false;
}

constexpr const char* kTlsHint =
    "; check the TLS settings of this connection: sslrootcert must name the CA that signed the "
    "server's certificate, the certificate must name the host given in the conninfo (sslmode "
    "verify-full), a server that accepts only TLS needs sslmode=require or stronger, and one "
    "that wants client certificates needs sslcert and sslkey (key file mode 0600)";

}  // namespace

std::string QuoteIdent(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string QuoteLiteral(std::string_view value) {
  std::string out = "'";
  out.reserve(value.size() + 2);
  for (char c : value) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

std::string ConnInfoWithPassword(const std::string& conninfo, const std::string& password) {
  if (password.empty()) return conninfo;
  // A URI conninfo takes extra keywords as query parameters, not as appended key=value pairs.
  if (conninfo.rfind("postgres://", 0) == 0 || conninfo.rfind("postgresql://", 0) == 0) {
    // Percent-encoded, so no character of it can end the parameter or reach a parse error.
    std::string encoded;
    for (unsigned char c : password) {
      static const char* kHex = "0123456789ABCDEF";
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
        encoded += static_cast<char>(c);
      } else {
        encoded += '%';
        encoded += kHex[c >> 4];
        encoded += kHex[c & 15];
      }
    }
    return conninfo + (conninfo.find('?') == std::string::npos ? "?" : "&") + "password=" + encoded;
  }
  std::string quoted = "'";
  for (char c : password) {
    if (c == '\'' || c == '\\') quoted += '\\';
    quoted += c;
  }
  return conninfo + " password=" + quoted + "'";
}

Status CheckConnInfo(const std::string& conninfo, const std::string& flag) {
  char* error = nullptr;
  std::unique_ptr<PQconninfoOption, void (*)(PQconninfoOption*)> options(
      PQconninfoParse(conninfo.c_str(), &error), PQconninfoFree);
  if (!options) {
    std::string m = error != nullptr ? TrimMessage(error) : "out of memory";
    PQfreemem(error);
    return Status::InvalidArgument(flag + " is not a valid libpq conninfo (" + m +
                                   "): give key=value pairs such as \"host=db1 dbname=app "
                                   "user=lifeline sslmode=verify-full sslrootcert=ca.crt\" or a "
                                   "postgresql:// URI");
  }
  for (PQconninfoOption* o = options.get(); o->keyword != nullptr; ++o) {
    if (std::string_view(o->keyword) == "password" && o->val != nullptr && *o->val != '\0') {
      return Status::InvalidArgument(
          flag +
          " holds a password, which would show in the process list and in shell "
          "history: remove it and give the password through PGPASSWORD, a passfile "
          "(~/.pgpass or PGPASSFILE), LIFELINE_SOURCE_PASSWORD / "
          "LIFELINE_TARGET_PASSWORD, or --source-password-file / --target-password-file");
    }
  }
  return Status::Ok();
}

std::string RedactPostgresMessage(const std::string& message) {
  if (LogValues()) return message;
  std::string out;
  bool hiding = false;
  size_t begin = 0;
  while (begin <= message.size()) {
    size_t end = message.find('\n', begin);
    if (end == std::string::npos) end = message.size();
    std::string line = message.substr(begin, end - begin);
    std::string_view bare(line);
    while (!bare.empty() && bare.front() == ' ') bare.remove_prefix(1);
    if (ValueLabel(bare)) {
      if (!hiding)
        out += std::string(bare.substr(0, bare.find(':') + 1)) + "  " + std::string(kHiddenValue) +
               "\n";
      hiding = true;
    } else if (hiding && !OtherLabel(bare)) {
      // The rest of a hidden block (a value with a line break in it, a caret under a LINE).
    } else {
      hiding = false;
      // Only the server's statement errors quote input values; libpq's own messages quote
      // settings (sslmode, host names) that must stay readable.
      out += (StartsWith(bare, "ERROR:") ? HideQuotedValues(line) : line) + "\n";
    }
    if (end == message.size()) break;
    begin = end + 1;
  }
  if (message.empty() || message.back() != '\n') out.pop_back();
  return out;
}

Status ClassifyPostgresError(const std::string& message, const std::string& what,
                             const std::string& sqlstate) {
  std::string m = TrimMessage(RedactPostgresMessage(message));
  std::string cls = sqlstate.substr(0, 2);
  if (cls == "08" || cls == "53" || cls == "57" || cls == "58" || cls == "40" ||
      sqlstate == "55P03") {
    return Status::Unavailable(what + ": " + m);
  }
  if (cls == "22" || cls == "23" || cls == "42" || cls == "44" || cls == "0A" || cls == "2B" ||
      cls == "27" || cls == "P0") {
    return Status::FailedPrecondition(
        what + ": the server refused it (SQLSTATE " + sqlstate + "): " + m +
        "; this is not retried. Fix the data or the schema on that side and start again");
  }
  if (IsTlsFailure(m)) return Status::InvalidArgument(what + ": " + m + kTlsHint);
  if (Contains(m, "password authentication failed") || Contains(m, "no password supplied") ||
      Contains(m, "no pg_hba.conf entry")) {
    return Status::InvalidArgument(what + ": " + m +
                                   "; check the user, the password (PGPASSWORD, a passfile, "
                                   "--source-password-file or --target-password-file) and "
                                   "pg_hba.conf");
  }
  if (Contains(m, "does not exist") || Contains(m, "invalid connection option") ||
      Contains(m, "missing \"=\"") || Contains(m, "invalid URI") ||
      Contains(m, "must be superuser or replication role") || Contains(m, "permission denied")) {
    return Status::InvalidArgument(what + ": " + m);
  }
  return Status::Unavailable(what + ": " + m);
}

Status StatusFromPostgresException(const std::string& what) {
  try {
    throw;
  } catch (const pqxx::broken_connection& e) {
    // libpqxx reports a refused login as a broken connection too: that one is not transient.
    Status st = ClassifyPostgresError(e.what(), what);
    if (st.code() != StatusCode::kUnavailable) return st;
    return Status::Unavailable(
        what + ": connection lost: " + TrimMessage(RedactPostgresMessage(e.what())));
  } catch (const pqxx::in_doubt_error& e) {
    return Status::Unavailable(
        what + ": commit outcome unknown (connection lost): " + RedactPostgresMessage(e.what()));
  } catch (const pqxx::sql_error& e) {
    return ClassifyPostgresError(e.what(), what, e.sqlstate());
  } catch (const std::exception& e) {
    std::string m = TrimMessage(RedactPostgresMessage(e.what()));
    if (Contains(m, "server closed the connection") || Contains(m, "terminating connection") ||
        m.rfind("connection", 0) == 0) {
      return Status::Unavailable(what + ": " + m);
    }
    return ClassifyPostgresError(m, what);
  } catch (...) {
    return Status::Internal(what + ": unknown exception");
  }
}

}  // namespace lifeline
