// How a fuzz target reports a broken invariant: a message naming the target, then abort, which
// libFuzzer records as a crash and keeps the input of.
#pragma once

#include <errno.h>  // program_invocation_short_name

#include <cstdio>
#include <cstdlib>
#include <string>

namespace lifeline::fuzz {

[[noreturn]] inline void Fail(const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", program_invocation_short_name, what.c_str());
  std::abort();
}

inline void Check(bool ok, const std::string& what) {
  if (!ok) Fail(what);
}

}  // namespace lifeline::fuzz
