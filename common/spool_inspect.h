// `lifeline spool stats|inspect|verify`: reads a spool (live or copied) and prints it.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "common/status.h"

namespace lifeline {

enum class OutputFormat { kText, kJson };

[[nodiscard]] Result<OutputFormat> ParseOutputFormat(const std::string& text);

// stats: first_seq, last_seq, last_commit_lsn, events, bytes, cursors.
[[nodiscard]] Status PrintSpoolStats(const std::string& dir, OutputFormat format,
                                     std::ostream& out);

// Events from `from_seq` (0: the first held), at most `limit` (0: all); JSON is JSON Lines.
// Sealed events are opened with the key files given, else shown as sealed with their key id; one
// that does not open is an error naming its seq.
[[nodiscard]] Status PrintSpoolEvents(const std::string& dir, uint64_t from_seq, uint64_t limit,
                                      OutputFormat format, std::ostream& out,
                                      const std::vector<std::string>& key_files = {});

// Contiguity, parse, hash chain, state agreement; prints a one-line verdict.
[[nodiscard]] Status VerifySpool(const std::string& dir, std::ostream& out);

}  // namespace lifeline
