// What every component that talks to PostgreSQL shares: SQL quoting, the conninfo with a password
// supplied apart from it, sorting server errors into "fix your input" and "try again", and the
// boundary where libpqxx exceptions become a Status.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace lifeline {

// "name" with embedded quotes doubled.
std::string QuoteIdent(std::string_view name);
// 'value' with embedded quotes doubled (standard_conforming_strings = on).
std::string QuoteLiteral(std::string_view value);

// `conninfo` plus a separately supplied password (never logged); unchanged when it is empty.
std::string ConnInfoWithPassword(const std::string& conninfo, const std::string& password);

// Authentication failures and missing databases or roles are input to fix (InvalidArgument,
// exit 2); refused, dropped or restarting connections are transient (Unavailable, retry).
Status ClassifyPostgresError(const std::string& message, const std::string& what);

// Runs `f` (which uses libpqxx and returns a Status or Result) and turns a libpqxx or standard
// exception into a classified Status naming `what`.
template <typename F>
auto GuardPostgres(const std::string& what, F&& f) -> decltype(f());

// Classifies an exception thrown by libpqxx (used by GuardPostgres).
Status StatusFromPostgresException(const std::string& what);

template <typename F>
auto GuardPostgres(const std::string& what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (...) {
    return StatusFromPostgresException(what);
  }
}

}  // namespace lifeline
