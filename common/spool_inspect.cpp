// Spool stats/inspect/verify output for operators and scripts.
#include "common/spool_inspect.h"

#include "common/event_format.h"
#include "common/event_seal.h"
#include "common/spool.h"

namespace lifeline {

Result<OutputFormat> ParseOutputFormat(const std::string& text) {
  if (text == "text") return OutputFormat::kText;
  if (text == "json") return OutputFormat::kJson;
  return Status::InvalidArgument("unknown --format '" + text + "': use text or json");
}

Status PrintSpoolStats(const std::string& dir, OutputFormat format, std::ostream& out) {
  LIFELINE_ASSIGN_OR_RETURN(auto spool, Spool::OpenForRead(dir));
  SpoolStats st = spool->Stats();
  if (format == OutputFormat::kJson) {
    out << "{\"first_seq\":" << st.first_seq << ",\"last_seq\":" << st.last_seq
        << ",\"last_commit_lsn\":" << JsonQuote(st.last_commit_lsn.ToString())
        << ",\"last_commit_time\":"
        << (st.last_commit_time_us ? JsonQuote(FormatTimestampUs(st.last_commit_time_us))
                                   : std::string("null"))
        << ",\"events\":" << st.events << ",\"bytes\":" << st.bytes << ",\"cursors\":{";
    bool first = true;
    for (const auto& [name, seq] : st.cursors) {
      out << (first ? "" : ",") << JsonQuote(name) << ":" << seq;
      first = false;
    }
    out << "}}\n";
    return Status::Ok();
  }
  out << "spool            " << dir << "\n"
      << "first seq        " << st.first_seq << "\n"
      << "last seq         " << st.last_seq << "\n"
      << "last commit LSN  " << st.last_commit_lsn.ToString() << "\n"
      << "last commit time "
      << (st.last_commit_time_us ? FormatTimestampUs(st.last_commit_time_us) : "-") << "\n"
      << "events           " << st.events << "\n"
      << "bytes            " << st.bytes << "\n";
  for (const auto& [name, seq] : st.cursors) {
    out << "cursor " << name << std::string(name.size() < 10 ? 10 - name.size() : 1, ' ') << seq
        << " (" << (st.last_seq > seq ? st.last_seq - seq : 0) << " behind)\n";
  }
  return Status::Ok();
}

Status PrintSpoolEvents(const std::string& dir, uint64_t from_seq, uint64_t limit,
                        OutputFormat format, std::ostream& out,
                        const std::vector<std::string>& key_files) {
  LIFELINE_ASSIGN_OR_RETURN(Keyring keyring, Keyring::Load(key_files));
  LIFELINE_ASSIGN_OR_RETURN(auto spool, Spool::OpenForRead(dir));
  uint64_t next = from_seq;
  if (next == 0) next = spool->Stats().first_seq;
  uint64_t printed = 0;
  while (limit == 0 || printed < limit) {
    size_t want =
        limit == 0 ? 1000 : static_cast<size_t>(std::min<uint64_t>(1000, limit - printed));
    LIFELINE_ASSIGN_OR_RETURN(auto batch, spool->Read(next, want));
    if (batch.empty()) break;
    for (const auto& rec : batch) {
      LIFELINE_ASSIGN_OR_RETURN(auto ev, ParseEvent(rec));
      if (!keyring.empty()) {
        if (Status opened = keyring.Open(ev); !opened.ok()) {
          return opened.WithContext("spool seq " + std::to_string(rec.seq));
        }
      }
      out << (format == OutputFormat::kJson ? EventToJson(ev) : EventToText(ev)) << "\n";
      ++printed;
      next = rec.seq + 1;
    }
  }
  return Status::Ok();
}

Status VerifySpool(const std::string& dir, std::ostream& out) {
  LIFELINE_ASSIGN_OR_RETURN(auto spool, Spool::OpenForRead(dir));
  LIFELINE_RETURN_IF_ERROR(spool->Verify());
  SpoolStats st = spool->Stats();
  out << "spool " << dir << " verified: seq " << st.first_seq << ".." << st.last_seq << ", "
      << st.events << " events, hash chain intact\n";
  return Status::Ok();
}

}  // namespace lifeline
