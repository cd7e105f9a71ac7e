// The spool: a durable, append-only log of ChangeEvents on RocksDB, the hand-off between capture
// (the one writer) and the shipper, `lifeline spool` and `lifeline replay --spool` (readers).
//
// On-disk layout (one RocksDB database, two column families):
//
//   "events"   key   +------------------------------+
//              seq   | u64 big-endian (8 bytes)     |  bytewise order == seq order
//                    +------------------------------+
//              value   serialized lifeline.v1.ChangeEvent (seq and prev_hash already set)
//
//   "default"  "format"          "lifeline-spool-v1"
//   (meta)     "state"           +----------+--------------+-------------+--------------+
//                                | last_seq | complete_seq | complete_   | complete_    |
//                                |   u64    |    u64       | commit_lsn  | commit_time  |
//                                |          |              |   u64       |   i64 (us)   |
//                                +----------+--------------+-------------+--------------+
//                                | complete_hash [32] | tail_hash [32] | live_events  |
//                                | SHA-256 of event   | SHA-256 of     |   u64        |
//                                | at complete_seq    | event at last  | live_bytes   |
//                                |                    | _seq           |   u64        |
//                                +--------------------+----------------+--------------+
//                                (all integers big-endian; 112 bytes)
//              "cursor/<name>"   u64 big-endian: the last seq that cursor's owner is done with
//              "prop/<name>"     free-form text (source identity: system id, timeline, slot)
//
// Every Append writes its events and the new "state" in one WriteBatch with one fsync (group
// commit), so the state always agrees with the events. A batch may end inside a transaction;
// `complete_seq` only moves on an event marked last_in_txn. Readers never see past complete_seq,
// and opening for write discards events after it: the source sends that transaction again.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/lsn.h"
#include "common/status.h"
#include "lifeline/v1/change_event.pb.h"

namespace lifeline {

using EventHash = std::array<uint8_t, 32>;

// SHA-256 of an event's serialized bytes: the next event's prev_hash.
EventHash HashEventBytes(std::string_view bytes);

struct SpoolStats {
  uint64_t first_seq = 0;  // 0 when empty
  uint64_t last_seq = 0;   // last seq of the last complete transaction
  Lsn last_commit_lsn;     // commit LSN of that transaction
  int64_t last_commit_time_us = 0;
  uint64_t events = 0;  // events held (complete transactions only)
  uint64_t bytes = 0;   // their serialized size
  std::map<std::string, uint64_t> cursors;
};

// One stored event as read back: its seq and serialized bytes (parse with ParseEvent).
struct SpoolRecord {
  uint64_t seq = 0;
  std::string bytes;
};

[[nodiscard]] Result<v1::ChangeEvent> ParseEvent(const SpoolRecord& record);

class SpoolReader;

class Spool {
 public:
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Opens (creating if missing) as the single writer. Fails with a clear message if another
  // process holds it, the directory is not a spool, or it is not writable. Discards events after
  // the last complete transaction.
  [[nodiscard]] static Result<std::unique_ptr<Spool>> OpenForWrite(const std::string& dir);
  // Opens read-only beside a live writer (a RocksDB secondary instance) or on a copied spool.
  // Refresh() catches up with the writer.
  [[nodiscard]] static Result<std::unique_ptr<Spool>> OpenForRead(const std::string& dir);

  const std::string& dir() const { return dir_; }
  bool writable() const { return writable_; }

  // Writer: assigns each event its seq and prev_hash (in place), then writes all of them, the new
  // state and `properties` (name, value) in one synced batch. Returns the last seq written. On
  // failure nothing is written and the spool's state is unchanged, so the caller may retry.
  [[nodiscard]] Result<uint64_t> Append(
      std::span<v1::ChangeEvent> events,
      const std::vector<std::pair<std::string, std::string>>& properties = {});

  // Writer: drops events after the last complete transaction (a transaction cut off by a lost
  // source connection, which the source sends again in full). Opening for write does this too.
  [[nodiscard]] Status DiscardIncomplete();

  // Up to `max_events` events from `from_seq` on, never past the last complete transaction and
  // never more than about `max_bytes` (at least one event is returned if any is available).
  [[nodiscard]] Result<std::vector<SpoolRecord>> Read(uint64_t from_seq, size_t max_events,
                                                      size_t max_bytes = 64 << 20) const;

  // A reader that goes through the spool in seq order (the shipper): it keeps one RocksDB iterator
  // with readahead across reads instead of opening one per slice. Must not outlive the spool.
  std::unique_ptr<SpoolReader> NewReader() const;

  // Blocks until an event after `seq` is readable or the timeout passes; true if one is. In-process
  // only (the writer's Append wakes it); a reader instance polls Refresh instead.
  bool WaitForEventsAfter(uint64_t seq, std::chrono::milliseconds timeout) const;

  // Reader: catches up with the writer's latest writes.
  [[nodiscard]] Status Refresh();

  // Stores a named cursor. Unsynced, it survives the process being killed but not the machine
  // failing: a cursor may then come back older (what follows it is shipped again, never skipped),
  // until a later synced write to the spool, such as a trim, makes it durable with itself.
  enum class CursorSync { kSynced, kUnsynced };
  [[nodiscard]] Status SetCursor(const std::string& name, uint64_t seq,
                                 CursorSync sync = CursorSync::kSynced);
  // 0 when the cursor has never been set.
  uint64_t GetCursor(const std::string& name) const;

  [[nodiscard]] Status SetProperty(const std::string& name, const std::string& value);
  // Empty when unset.
  std::string GetProperty(const std::string& name) const;

  // Writer: deletes events with seq <= `max_seq` whose commit time is before
  // `keep_after_commit_time_us`, oldest first, stopping at the first event to keep. Returns how
  // many were deleted.
  [[nodiscard]] Result<uint64_t> Trim(uint64_t max_seq, int64_t keep_after_commit_time_us);

  SpoolStats Stats() const;
  uint64_t last_complete_seq() const;
  // Serialized bytes of the events held (cheap; Stats() also scans cursors).
  uint64_t live_bytes() const;
  Lsn last_complete_commit_lsn() const;

  // Checks the whole spool: seqs contiguous from the first to the last complete one, every event
  // parses and carries its own seq, the hash chain links, and the state agrees with the data.
  [[nodiscard]] Status Verify() const;

 private:
  friend class SpoolReader;
  struct Impl;
  explicit Spool(std::unique_ptr<Impl> impl, std::string dir, bool writable);
  std::unique_ptr<Impl> impl_;
  std::string dir_;
  bool writable_;
};

// Sequential reads from one spool, for one thread. Where Spool::Read copies each event into a new
// string, Visit hands out views into RocksDB's buffers. The iterator is reused while reads go on
// from where the last one stopped and the spool has not grown past what it saw; it is renewed
// after a while so that it does not pin old memtables and files for long.
class SpoolReader {
 public:
  // Called with each event's seq and serialized bytes; the bytes are valid only during the call.
  // A non-OK status stops the read and is returned.
  using Visitor = std::function<Status(uint64_t seq, std::string_view bytes)>;

  ~SpoolReader();
  SpoolReader(const SpoolReader&) = delete;
  SpoolReader& operator=(const SpoolReader&) = delete;

  // Visits up to `max_events` events from `from_seq` on, in seq order, never past the last
  // complete transaction and stopping once about `max_bytes` were visited. Returns how many.
  [[nodiscard]] Result<size_t> Visit(uint64_t from_seq, size_t max_events, size_t max_bytes,
                                     const Visitor& visit);

 private:
  friend class Spool;
  struct Position;
  explicit SpoolReader(const Spool& spool);
  const Spool& spool_;
  std::unique_ptr<Position> pos_;
};

}  // namespace lifeline
