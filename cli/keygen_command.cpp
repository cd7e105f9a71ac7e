// `lifeline keygen FILE`, and the `--encryption-key-file` flag of every command that seals or
// opens events (common/event_seal.h).
#include <iostream>

#include "cli/commands.h"
#include "common/event_seal.h"

namespace lifeline::cli {

void AddEncryptionKeyFileFlag(CLI::App& sub, std::vector<std::string>* files) {
  sub.add_option("--encryption-key-file", *files,
                 "Key file for sealed row images (repeatable; the last one seals, all open; "
                 "make one with 'lifeline keygen FILE')");
}

void AddKeygenCommand(CLI::App& app, CommandBody* body) {
  auto* sub = app.add_subcommand(
      "keygen",
      "Write a new random AES-256 key for --encryption-key-file (mode 0600; the key id is the "
      "file name without extension)");
  auto path = std::make_shared<std::string>();
  sub->add_option("file", *path, "Key file to create, e.g. /etc/lifeline/keys/2026-11.key")
      ->required();
  sub->callback([path, body] {
    *body = [path]() -> Status {
      LIFELINE_RETURN_IF_ERROR(WriteNewKeyFile(*path));
      std::cout << "wrote key '" << KeyIdOfFile(*path) << "' to " << *path << " (mode 0600)\n";
      return Status::Ok();
    };
  });
}

}  // namespace lifeline::cli
