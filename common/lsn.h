// A PostgreSQL WAL position (XLogRecPtr): parsed from and printed as "X/Y", as PostgreSQL does.
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace lifeline {

class Lsn {
 public:
  constexpr Lsn() = default;
  constexpr explicit Lsn(uint64_t value) : value_(value) {}
  // Accepts "16/B374D848" (hex, either case, 1-8 digits each side), as pg_lsn's input does.
  [[nodiscard]] static Result<Lsn> Parse(std::string_view text);

  constexpr uint64_t value() const { return value_; }
  constexpr bool valid() const { return value_ != 0; }
  static constexpr size_t kTextMax = 17;  // "FFFFFFFF/FFFFFFFF"

  // "16/B374D848", uppercase hex without leading zeros: the form PostgreSQL prints.
  std::string ToString() const;
  // The same text written into `buf` (no allocation), valid while `buf` is.
  std::string_view Format(char (&buf)[kTextMax]) const;

  constexpr auto operator<=>(const Lsn&) const = default;

 private:
  uint64_t value_ = 0;  // 0 is InvalidXLogRecPtr
};

}  // namespace lifeline
