// SQL quoting, error classification and the libpqxx exception boundary.
#include "common/postgres.h"

#include <pqxx/except>

namespace lifeline {
namespace {

bool Contains(const std::string& s, const char* needle) {
  return s.find(needle) != std::string::npos;
}

std::string TrimMessage(std::string m) {
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  return m;
}

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
    return conninfo + (conninfo.find('?') == std::string::npos ? "?" : "&") +
           "password=" + password;
  }
  std::string quoted = "'";
  for (char c : password) {
    if (c == '\'' || c == '\\') quoted += '\\';
    quoted += c;
  }
  return conninfo + " password=" + quoted + "'";
}

Status ClassifyPostgresError(const std::string& message, const std::string& what) {
  std::string m = TrimMessage(message);
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
    return Status::Unavailable(what + ": connection lost: " + TrimMessage(e.what()));
  } catch (const pqxx::in_doubt_error& e) {
    return Status::Unavailable(what + ": commit outcome unknown (connection lost): " + e.what());
  } catch (const std::exception& e) {
    std::string m = TrimMessage(e.what());
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
