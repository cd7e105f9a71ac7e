// `lifeline spool stats|inspect|verify --spool DIR`.
#include <iostream>

#include "cli/commands.h"
#include "common/spool_inspect.h"

namespace lifeline::cli {

void AddSpoolCommand(CLI::App& app, CommandBody* body) {
  auto* spool = app.add_subcommand("spool", "Look into a spool: stats, inspect, verify");
  spool->require_subcommand(1);

  struct Flags {
    std::string dir;
    std::string format = "text";
    uint64_t from_seq = 0;
    uint64_t limit = 0;
    std::vector<std::string> key_files;
  };
  auto flags = std::make_shared<Flags>();
  auto add_common = [flags](CLI::App* sub) {
    sub->add_option("--spool", flags->dir, "Spool directory")->required();
    sub->add_option("--format", flags->format, "text or json")->capture_default_str();
  };

  auto* stats = spool->add_subcommand("stats", "Seq range, size, last commit LSN, cursors");
  add_common(stats);
  stats->callback([flags, body] {
    *body = [flags]() -> Status {
      LIFELINE_ASSIGN_OR_RETURN(OutputFormat fmt, ParseOutputFormat(flags->format));
      return PrintSpoolStats(flags->dir, fmt, std::cout);
    };
  });

  auto* inspect = spool->add_subcommand("inspect", "Print events (JSON Lines with --format json)");
  add_common(inspect);
  inspect->add_option("--from-seq", flags->from_seq, "First seq to print (default: first held)");
  inspect->add_option("--limit", flags->limit, "At most this many events (default: all)");
  AddEncryptionKeyFileFlag(*inspect, &flags->key_files);
  inspect->callback([flags, body] {
    *body = [flags]() -> Status {
      LIFELINE_ASSIGN_OR_RETURN(OutputFormat fmt, ParseOutputFormat(flags->format));
      return PrintSpoolEvents(flags->dir, flags->from_seq, flags->limit, fmt, std::cout,
                              flags->key_files);
    };
  });

  auto* verify = spool->add_subcommand(
      "verify", "Check seq continuity, the hash chain and the metadata; exit 2 if damaged");
  verify->add_option("--spool", flags->dir, "Spool directory")->required();
  verify->callback([flags, body] {
    *body = [flags]() -> Status { return VerifySpool(flags->dir, std::cout); };
  });
}

}  // namespace lifeline::cli
