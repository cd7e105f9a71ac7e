// Lsn parsing and formatting.
#include "common/lsn.h"

#include <charconv>

namespace lifeline {
namespace {

bool ParseHexHalf(std::string_view s, uint32_t* out) {
  if (s.empty() || s.size() > 8) return false;
  uint32_t v = 0;
  for (char c : s) {
    uint32_t d;
    if (c >= '0' && c <= '9') {
      d = static_cast<uint32_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      d = static_cast<uint32_t>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      d = static_cast<uint32_t>(c - 'A' + 10);
    } else {
      return false;
    }
    v = (v << 4) | d;
  }
  *out = v;
  return true;
}

}  // namespace

Result<Lsn> Lsn::Parse(std::string_view text) {
  size_t slash = text.find('/');
  uint32_t hi = 0, lo = 0;
  if (slash == std::string_view::npos || !ParseHexHalf(text.substr(0, slash), &hi) ||
      !ParseHexHalf(text.substr(slash + 1), &lo)) {
    return Status::InvalidArgument("malformed LSN '" + std::string(text) +
                                   "': expected two hex numbers as X/Y, for example 0/16B3748");
  }
  return Lsn((static_cast<uint64_t>(hi) << 32) | lo);
}

std::string Lsn::ToString() const {
  char buf[kTextMax];
  return std::string(Format(buf));
}

std::string_view Lsn::Format(char (&buf)[kTextMax]) const {
  // As PostgreSQL prints it ("%X/%X"), without printf: the shipper formats one per record.
  char* end = std::to_chars(buf, buf + 8, static_cast<uint32_t>(value_ >> 32), 16).ptr;
  *end++ = '/';
  end = std::to_chars(end, buf + kTextMax, static_cast<uint32_t>(value_), 16).ptr;
  for (char* c = buf; c != end; ++c) {
    if (*c >= 'a' && *c <= 'f') *c = static_cast<char>(*c - 'a' + 'A');
  }
  return std::string_view(buf, static_cast<size_t>(end - buf));
}

}  // namespace lifeline
