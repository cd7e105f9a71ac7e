// The replayer's target: the standby PostgreSQL through libpqxx. It owns lifeline's bookkeeping
// tables there, the advisory lock that keeps a second replayer of the same stream out, schema
// drift checks, and applying a batch and its position in one transaction.
//
//   lifeline.replay_position  (stream, partition) -> source_id, next_offset, last_seq,
//                             last_commit_lsn, last_commit_time, applied_at
//   lifeline.replay_gaps      seq ranges skipped under --allow-gaps
//   lifeline.dead_letter      records that did not parse, with their position (--dead-letter)
//
// stream is the Kafka topic, or "" for a spool (partition -1, next_offset = next seq).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <pqxx/connection>
#include <set>
#include <string>

#include "common/lsn.h"
#include "common/status.h"
#include "lifeline/v1/change_event.pb.h"

namespace lifeline::replayer {

struct ReplayPosition {
  std::string source_id;
  uint64_t last_seq = 0;
  Lsn last_commit_lsn;
  int64_t last_commit_time_us = 0;
  std::map<int32_t, int64_t> next_offsets;  // by partition
};

class Target {
 public:
  ~Target();
  [[nodiscard]] static Result<std::unique_ptr<Target>> Connect(const std::string& conninfo,
                                                               const std::string& password);
  // Creates the lifeline schema and its tables if missing.
  [[nodiscard]] Status EnsureBookkeeping();
  // A session advisory lock for `stream`; FailedPrecondition if another replayer holds it.
  [[nodiscard]] Status LockStream(const std::string& stream);
  // Position of `stream`, empty when never recorded (or the bookkeeping tables do not exist).
  [[nodiscard]] Result<ReplayPosition> ReadPosition(const std::string& stream);
  // The target has the relation's table and columns; otherwise FailedPrecondition with the DDL
  // that would fix it.
  [[nodiscard]] Status CheckRelation(const v1::Relation& relation);
  // Runs `sql` (statements ending in ';') and commits, in one round trip.
  [[nodiscard]] Status ApplyInTransaction(const std::string& sql);
  // SQL recording the position (appended to a batch, so it commits with the rows).
  static std::string PositionSql(const std::string& stream, const ReplayPosition& position);
  static std::string GapSql(const std::string& source_id, uint64_t from_seq, uint64_t to_seq);
  static std::string DeadLetterSql(const std::string& topic, int32_t partition, int64_t offset,
                                   const std::string& raw, const std::string& error);

 private:
  Target() = default;
  std::unique_ptr<pqxx::connection> conn_;
  std::set<std::string> checked_;  // "schema.table#version"
};

}  // namespace lifeline::replayer
