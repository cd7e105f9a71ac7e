// The replayer's target: the standby PostgreSQL. It owns lifeline's bookkeeping tables there, the
// advisory lock that keeps a second replayer of the same stream out, schema drift checks (over
// libpqxx), and applying a batch and its position in one transaction (over a second, pipelined
// libpq connection, so the replayer builds the next batch while the target runs this one).
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
#include <string>
#include <unordered_map>
#include <vector>

#include "common/lsn.h"
#include "common/status.h"
#include "lifeline/v1/change_event.pb.h"
#include "replayer/statement_builder.h"

typedef struct pg_conn PGconn;

namespace lifeline::replayer {

struct ReplayPosition {
  std::string source_id;
  uint64_t last_seq = 0;
  Lsn last_commit_lsn;
  int64_t last_commit_time_us = 0;
  std::map<int32_t, int64_t> next_offsets;  // by partition
};

// A relation's table as the target has it.
struct RelationOnTarget {
  // format_type of each of the relation's columns on the target, in the relation's order.
  std::vector<std::string> column_types;
  // A change of one row cannot depend on, or fail because of, another row's: the table's only
  // unique index is on the stream's key columns, and no foreign key, exclusion constraint,
  // trigger, rule, partitioning or inheritance ties rows together. Only then may the changes of
  // a target transaction be netted per row and regrouped (NetChanges).
  bool independent_rows = false;
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
  // that would fix it. With `on_target`, also says what the replay needs to know of the table.
  // Read once per relation and schema version.
  [[nodiscard]] Status CheckRelation(const v1::Relation& relation,
                                     RelationOnTarget* on_target = nullptr);
  // Runs `sql` (statements ending in ';') and commits, in one round trip.
  [[nodiscard]] Status ApplyInTransaction(const std::string& sql);

  // Starts sending `statements` as one transaction (BEGIN, the statements, COMMIT) without
  // waiting for it: the target runs it while the caller goes on, and Finished sends the rest as
  // the target takes it. One batch is in flight at a time; each statement shape is prepared once
  // per connection, in the same pipeline.
  [[nodiscard]] Status Send(std::shared_ptr<const std::vector<Statement>> statements);
  // Whether the batch in flight is over: true once it committed (or none is in flight), its
  // error if it failed (rolled back). With `wait`, blocks until it is over.
  [[nodiscard]] Result<bool> Finished(bool wait);

  // The statement recording the position (the last of a batch, so it commits with the rows).
  static Statement PositionStatement(const std::string& stream, const ReplayPosition& position);
  static Statement GapStatement(const std::string& source_id, uint64_t from_seq, uint64_t to_seq);
  static Statement DeadLetterStatement(const std::string& topic, int32_t partition, int64_t offset,
                                       const std::string& raw, const std::string& error);

 private:
  Target() = default;
  Status Lost() const;
  // Hands libpq the batch's next statements while the socket takes what it holds, so its buffer
  // stays small (libpq moves what it could not send to the front of the buffer on every flush).
  Status Pump();
  // Reads what has arrived of the batch's results; true once its sync was read.
  Result<bool> ReadResults();
  Status WaitSocket(bool write);

  std::unique_ptr<pqxx::connection> conn_;
  // "schema.table#version" -> its table on the target, for relations checked.
  std::map<std::string, RelationOnTarget> checked_;

  struct PgConnCloser {
    void operator()(PGconn* c) const;
  };
  std::unique_ptr<PGconn, PgConnCloser> apply_;
  std::unordered_map<std::string, std::string> prepared_;  // statement text -> name
  std::vector<std::string> preparing_;                     // prepared by the batch in flight
  uint64_t statements_named_ = 0;
  bool in_flight_ = false;
  std::shared_ptr<const std::vector<Statement>> sending_;
  size_t next_ = 0;       // the next statement of sending_ to hand libpq
  bool sent_all_ = true;  // COMMIT and the sync handed to libpq too
  bool flushed_ = true;   // libpq holds nothing unsent
  std::string error_;     // first error of the batch in flight
  std::string sqlstate_;  // and its SQLSTATE
  bool lost_ = false;     // the connection broke during it
};

}  // namespace lifeline::replayer
