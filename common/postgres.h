// What every component that talks to PostgreSQL shares: SQL quoting, the conninfo with a password
// supplied apart from it, sorting server errors into "fix your input" and "try again" (TLS and
// login failures, data the target refuses), keeping row values out of error messages, and the
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

// A conninfo given as `flag` must parse and must not hold a password: passwords come from
// PGPASSWORD, a passfile or a --*-password-file, never the command line. TLS keywords (sslmode,
// sslrootcert, sslcert, sslkey) pass through to libpq.
[[nodiscard]] Status CheckConnInfo(const std::string& conninfo, const std::string& flag);

// A server or libpq message with row values taken out unless --log-values: DETAIL and CONTEXT
// lines ("Key (id)=(...) already exists", "Failing row contains (...)") and quoted input values
// ("invalid input syntax for type integer: \"...\"").
std::string RedactPostgresMessage(const std::string& message);

// Failed logins, TLS set-up (an unknown CA, a host name the certificate does not name, missing
// certificate files), missing databases or roles are input to fix (InvalidArgument, exit 2);
// refused, dropped or restarting connections are transient (Unavailable, retry). With the
// SQLSTATE of a statement's error: data the server refuses (classes 22 and 23: a constraint
// violation, a bad value) and schema mismatches (42) are FailedPrecondition, never retried;
// connection, resource and operator classes (08, 53, 57, 58) and conflicts (40, 55P03) are
// Unavailable.
Status ClassifyPostgresError(const std::string& message, const std::string& what,
                             const std::string& sqlstate = "");

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
