// Errors as values at component boundaries: every public function of a lifeline library returns a
// Status or a Result<T>. Inside a component, code may throw (libpqxx does); the boundary converts.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace lifeline {

enum class StatusCode {
  kOk,
  kInvalidArgument,     // bad flag, config, conninfo, LSN, record: the user must fix it
  kNotFound,            // a named thing does not exist
  kCorruption,          // stored or received bytes do not decode or do not verify
  kFailedPrecondition,  // the environment is not as required (wal_level, spool owner, ...)
  kIOError,             // the filesystem or a device failed
  kUnavailable,         // transient: a server or broker cannot be reached right now
  kInternal,            // a bug
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string msg) {
    return Status(StatusCode::kInvalidArgument, std::move(msg));
  }
  static Status NotFound(std::string msg) { return Status(StatusCode::kNotFound, std::move(msg)); }
  static Status Corruption(std::string msg) {
    return Status(StatusCode::kCorruption, std::move(msg));
  }
  static Status FailedPrecondition(std::string msg) {
    return Status(StatusCode::kFailedPrecondition, std::move(msg));
  }
  static Status IOError(std::string msg) { return Status(StatusCode::kIOError, std::move(msg)); }
  static Status Unavailable(std::string msg) {
    return Status(StatusCode::kUnavailable, std::move(msg));
  }
  static Status Internal(std::string msg) { return Status(StatusCode::kInternal, std::move(msg)); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "Corruption: spool /x: event 12 does not parse"
  std::string ToString() const;
  // Prefixes the message with where it happened: Status::IOError("x").WithContext("spool /d").
  Status WithContext(std::string_view where) const;

  // The process exit code a CLI uses for this status: 0 ok, 2 for input or configuration the user
  // must fix, 1 for everything else.
  int ExitCode() const;

  // Marks a Status deliberately dropped; greppable.
  void IgnoreError() const {}

 private:
  Status(StatusCode code, std::string msg) : code_(code), message_(std::move(msg)) {}
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: implicit by design
  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &std::get<T>(v_); }
  const T* operator->() const { return &std::get<T>(v_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace lifeline

#define LIFELINE_CONCAT_INNER(a, b) a##b
#define LIFELINE_CONCAT(a, b) LIFELINE_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function when it is not ok.
#define LIFELINE_RETURN_IF_ERROR(expr) \
  do {                                 \
    ::lifeline::Status _st = (expr);   \
    if (!_st.ok()) return _st;         \
  } while (0)

// Declares `lhs` from a Result, or returns its Status.
#define LIFELINE_ASSIGN_OR_RETURN(lhs, expr)                                                    \
  auto LIFELINE_CONCAT(_res_, __LINE__) = (expr);                                               \
  if (!LIFELINE_CONCAT(_res_, __LINE__).ok()) return LIFELINE_CONCAT(_res_, __LINE__).status(); \
  lhs = std::move(LIFELINE_CONCAT(_res_, __LINE__)).value()
