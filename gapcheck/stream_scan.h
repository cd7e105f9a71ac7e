// Reads a whole stream (a spool, or every partition of a Kafka topic) record by record and checks
// its continuity per source: seq gaps, duplicates, seq or commit LSN going backwards, records that
// do not parse, and the hash chain (each event's prev_hash is the SHA-256 of the previous event).
// With key files (GapcheckStream::encryption_key_files) sealed records are opened too: one that
// does not open is reported as unreadable at its position, and visitors see its rows in clear.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "gapcheck/gapcheck.h"
#include "lifeline/v1/change_event.pb.h"

namespace lifeline::gapcheck {

// Where a record sits: a spool seq (partition -1), or a Kafka partition and offset.
struct StreamPosition {
  int32_t partition = -1;
  int64_t offset = -1;
  std::string Describe() const;  // "seq 12" or "partition 2 offset 345"
};

// An event named by what a DBA can act on: its seq, commit LSN ("X/Y"), commit time, position.
struct EventMark {
  uint64_t seq = 0;
  std::string commit_lsn;
  int64_t commit_time_us = 0;
  StreamPosition position;
};

// Seqs from_seq..to_seq (inclusive) are absent; `before`/`after` are the events around the hole.
struct SeqGap {
  uint64_t from_seq = 0;
  uint64_t to_seq = 0;
  std::optional<EventMark> before;
  std::optional<EventMark> after;
};

// One seq found more than once. Identical copies are what a re-ship after a crash leaves (the
// replayer drops them); copies whose bytes differ are a fault.
struct Duplicate {
  uint64_t seq = 0;
  std::vector<StreamPosition> positions;
  bool identical = true;
};

// In a partition's (or the spool's) record order, `at` came after `previous` but has a lower seq
// (`what` = "seq") or a lower commit LSN (`what` = "commit_lsn").
struct Backwards {
  std::string what;
  EventMark previous;
  EventMark at;
};

struct BadRecord {
  StreamPosition position;
  std::string error;
};

// The event at `seq` does not link to the one before it: that one (seq - 1) was altered, or
// replaced, or this event's prev_hash was.
struct ChainBreak {
  uint64_t seq = 0;
  StreamPosition position;
  std::string detail;
};

// Continuity of one source (a database's stream, named by system id, database and slot).
struct SourceContinuity {
  std::string source_id;
  uint64_t events = 0;  // distinct seqs seen
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  EventMark first;
  EventMark last;
  std::vector<SeqGap> gaps;
  std::vector<Duplicate> duplicates;
  std::vector<Backwards> backwards;
  std::vector<ChainBreak> chain_breaks;
  std::vector<EventMark> resnapshots;  // RESNAPSHOT_MARKER events: windows to look at
  // Kafka: a partition whose oldest records were removed (retention) holds this source only from
  // its first seq there on, so below the highest such first seq, seqs may be absent without any
  // fault. Holes below it are counted here, not listed as gaps. 0: no partition was trimmed.
  uint64_t retained_from_seq = 0;
  uint64_t missing_before_retained = 0;
};

struct PartitionSummary {
  int64_t low = 0;   // first offset held
  int64_t high = 0;  // next offset to be written
  uint64_t records = 0;
};

struct StreamReport {
  std::string description;  // "spool /var/lib/lifeline/spool" or "topic T at B (3 partitions)"
  uint64_t records = 0;     // every record read, bad ones included
  std::vector<SourceContinuity> sources;
  std::vector<BadRecord> bad_records;
  std::map<int32_t, PartitionSummary> partitions;  // Kafka only
  // Differences: gaps, differing duplicates, backwards, bad records, chain breaks. Identical
  // duplicates alone leave a stream clean.
  bool clean() const;
};

struct StreamScanOptions {
  GapcheckStream stream;
  // Called for every record that parses, in read order (reports build their own indexes with it).
  std::function<void(const StreamPosition&, const v1::ChangeEvent&)> visit;
  // Called now and then with records read so far and the total expected (0 if unknown).
  std::function<void(uint64_t read, uint64_t total)> progress;
  // How long the brokers may take to answer (metadata, watermarks) and how long a partition's
  // reading may stall before the scan gives up with Unavailable.
  int kafka_timeout_ms = 15'000;
};

// Reads everything the stream holds now (a topic: up to each partition's high watermark) and
// checks it. A missing spool or topic is NotFound, an unreachable broker Unavailable.
[[nodiscard]] Result<StreamReport> ScanStream(const StreamScanOptions& options);

}  // namespace lifeline::gapcheck
