// Payload encryption: seals an event's row images with AES-256-GCM under the newest of the
// operator's keys, and opens events sealed under any of them, so a topic or spool copy can leave
// the region without showing row values to whoever can read it. docs/encryption.md is the guide.
//
//   ChangeEvent (in clear: seq, source, LSNs, xid, times, op, relation, prev_hash, message)
//   └── sealed (field 17)          before/after are absent
//       ├── key_id       "2026-11"             which key file sealed it
//       ├── nonce        12 random bytes
//       ├── ciphertext   AES-256-GCM( SealedRows{before, after} ) ‖ 16-byte tag
//       └── record_key   primary-key text      in clear: Kafka partitioning needs no key
//
//   additional authenticated data (binds the blob to its event; seq is not in it, being given
//   by the spool after sealing, but seq and prev_hash are covered by the hash chain):
//     "lifeline.seal.v1" then, each as u32 big-endian length + bytes:
//     system_id, database, slot_name, schema, table, op, xid, commit_lsn, event_lsn,
//     index_in_txn, commit_time_us (numbers as decimal text), key_id, record_key ("-" + text
//     when present, "" when absent)
//
// Key file: one line of 64 hex digits (32 bytes), mode 0600 or stricter; its id is the file's
// name without directory and extension. Of several files the last one given seals; all open.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "lifeline/v1/change_event.pb.h"

namespace lifeline {

class Keyring {
 public:
  // No keys: seals nothing; an event that arrives sealed cannot be opened (and says so).
  Keyring() = default;

  // Reads every file (InvalidArgument naming the file for a bad one: unreadable, readable by group
  // or others, not 64 hex digits, or a key id given twice). The last file seals.
  [[nodiscard]] static Result<Keyring> Load(const std::vector<std::string>& files);

  bool empty() const { return keys_.empty(); }
  // The id of the key that seals ("" when empty).
  std::string sealing_key_id() const;
  // "2026-10 (/etc/lifeline/2026-10.key), 2026-11 (...)" for messages; "none" when empty.
  std::string Describe() const;

  // Moves the event's row images into `sealed`, under the sealing key. Events without row images
  // and events sealed already are left alone; so is every event when the keyring is empty.
  [[nodiscard]] Status Seal(v1::ChangeEvent& event) const;

  // Puts a sealed event's row images back in clear; an event in clear is left alone.
  // Corruption "authentication failed" when the blob was altered or moved to another event, or
  // the key of that id is a different key; FailedPrecondition naming the id when no key has it.
  [[nodiscard]] Status Open(v1::ChangeEvent& event) const;

 private:
  struct Key {
    std::string id;
    std::string file;
    std::array<unsigned char, 32> bytes{};
  };
  const Key* Find(const std::string& id) const;

  std::vector<Key> keys_;
};

// Writes a new random key to `path` (mode 0600; refuses to overwrite an existing file).
[[nodiscard]] Status WriteNewKeyFile(const std::string& path);

// The key id a key file gets: its name without directory and extension.
std::string KeyIdOfFile(const std::string& path);

}  // namespace lifeline
