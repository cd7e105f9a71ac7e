// The loop that drives the replayer: read the source in seq order, enforce seq discipline, group
// whole source transactions into target transactions, apply them with the position, and report.
// One batch is in flight on the target while the next is read and built.
#include <spdlog/spdlog.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <unordered_set>

#include "common/event_format.h"
#include "common/event_seal.h"
#include "common/metrics.h"
#include "common/shutdown.h"
#include "common/status_server.h"
#include "replayer/event_source.h"
#include "replayer/net_changes.h"
#include "replayer/replayer.h"
#include "replayer/statement_builder.h"
#include "replayer/target.h"

namespace lifeline {
namespace {

using Clock = std::chrono::steady_clock;
using replayer::ReplayPosition;
using replayer::SourcedEvent;
using replayer::Target;

std::string SourceId(const v1::ChangeEvent& ev) {
  return ev.source().system_id() + "/" + ev.source().slot_name();
}

// The distinct row keys a window touched: counted by a 64-bit hash of their text, and the first
// kListed of them in order kept for the summary, so a window of millions of events holds neither
// every key's text nor a tree of them.
class TouchedKeys {
 public:
  static constexpr size_t kListed = 1000;
  void Add(std::string key) {
    if (!hashes_.insert(std::hash<std::string>{}(key)).second) return;
    if (listed_.size() < kListed) {
      listed_.insert(std::move(key));
    } else if (key < *listed_.rbegin()) {
      listed_.erase(std::prev(listed_.end()));
      listed_.insert(std::move(key));
    }
  }
  size_t size() const { return hashes_.size(); }
  const std::set<std::string>& listed() const { return listed_; }

 private:
  std::unordered_set<size_t> hashes_;
  std::set<std::string> listed_;
};

// What a run did, for the summary (and what a dry run would do).
struct RunSummary {
  std::map<std::string, uint64_t> by_op_table;  // "insert public.t" -> count
  uint64_t events = 0, transactions = 0, duplicates = 0, gaps = 0, dead_letters = 0;
  uint64_t first_seq = 0, last_seq = 0, first_lsn = 0, last_lsn = 0;
  int64_t first_time_us = 0, last_time_us = 0;
  TouchedKeys keys;  // "table key" touched (window replays only)
  uint64_t rows_inserted_if_missing = 0;
  uint64_t survey_records_read = 0;  // records read to find where the window starts
};

class Replayer {
 public:
  Replayer(const ReplayOptions& o, const std::atomic<bool>& stop)
      : options_(o),
        stop_(stop),
        lag_(metrics_.gauge("lifeline_replay_lag_seconds",
                            "Now minus the commit time of the last applied event or heartbeat")),
        position_(metrics_.gauge("lifeline_replay_last_seq", "Last applied seq")),
        transactions_(
            metrics_.counter("lifeline_replay_transactions_total", "Source transactions applied")),
        gaps_(metrics_.counter("lifeline_replay_gaps_total", "Seq gaps met")),
        dead_letters_(metrics_.counter("lifeline_replay_dead_letters_total",
                                       "Records stored in lifeline.dead_letter")) {}

  Status Run();

 private:
  bool IsWindow() const {
    return options_.from_offset || options_.from_seq || options_.from_lsn ||
           options_.from_time_us || options_.until_seq || options_.until_lsn ||
           options_.until_time_us || options_.stop_at_end || options_.dry_run ||
           options_.only_missing;
  }
  Status Validate() const;
  Status ConnectTarget();
  Status OpenSource();
  Status CheckWindow(const replayer::HeldRange& held, const std::string& source) const;
  // Adds one event to the batch; `done` when the window's end was passed.
  Status Accept(const SourcedEvent& item, bool* done);
  // Takes the stream's lock on the target (at start, and again after a reconnect).
  Status LockStream();
  Status Loop();
  // Adds the row change of `ev` to the batch, as part of a multi-row statement where it can.
  Status AddRowChange(const v1::ChangeEvent& ev, const std::vector<std::string>& column_types);
  // Moves the net changes held into the batch.
  Status TakeNetChanges();
  // Sends the batch built so far (whole source transactions only) once the one before it is over.
  Status Flush();
  // Settles the batch in flight: with `wait`, until it committed (resending it across reconnects
  // unless the stored position shows it committed); without, only if it is already over.
  Status Collect(bool wait);
  Status FinishOnlyMissing();
  void PrintSummary() const;
  HealthReport Health() const;

  const ReplayOptions& options_;
  const std::atomic<bool>& stop_;
  Metrics metrics_;
  Gauge& lag_;
  Gauge& position_;
  Counter& transactions_;
  Counter& gaps_;
  Counter& dead_letters_;

  std::unique_ptr<Target> target_;
  std::unique_ptr<replayer::EventSource> source_;
  Keyring keyring_;  // opens sealed row images
  std::string stream_;
  bool persist_position_ = false;
  ReplayPosition applied_;     // as committed in the target
  ReplayPosition pending_;     // including the batch being built
  uint64_t expected_seq_ = 0;  // 0: take the first seq as it comes
  std::vector<replayer::Statement> batch_;
  replayer::NetChanges net_;    // rows not yet in run_ (tables with independent rows)
  replayer::StatementRun run_;  // rows not yet in batch_
  replayer::ShapeCache shapes_;
  // The batch sent and not yet known committed.
  struct InFlight {
    std::shared_ptr<const std::vector<replayer::Statement>> statements;
    ReplayPosition position;
    uint64_t transactions = 0;  // summary_.transactions through it
    Status sent;                // how sending it went
  };
  std::optional<InFlight> in_flight_;
  // The record the replay stops at, when the batch before it is applied first.
  std::optional<replayer::RecordPosition> stopped_at_;
  size_t batch_events_ = 0;
  uint64_t transactions_counted_ = 0;
  bool in_txn_ = false;
  bool window_started_ = false;
  Clock::time_point batch_started_ = Clock::now();
  RunSummary summary_;
  // The relation of the last row event, checked on the target, with its summary counters: most
  // events are of the relation before them, so nothing per event is looked up by name.
  struct LastRelation {
    uint32_t oid = 0, version = 0;
    std::string schema, name, table;       // table: "schema.name"
    replayer::RelationOnTarget on_target;  // empty in a dry run
    std::array<uint64_t*, 8> by_op{};
    bool Is(const v1::Relation& r) const {
      return !table.empty() && r.relation_oid() == oid && r.schema_version() == version &&
             r.table() == name && r.schema() == schema;
    }
    void Take(const v1::Relation& r) {
      oid = r.relation_oid();
      version = r.schema_version();
      schema = r.schema();
      name = r.table();
      table = schema + "." + name;
      by_op.fill(nullptr);
    }
  } relation_;
  std::string source_system_id_, source_slot_;  // of pending_.source_id
  // --only-missing: the latest image of each row in the window, by table and key.
  std::map<std::pair<std::string, std::string>, v1::ChangeEvent> latest_;
};

Status Replayer::Validate() const {
  bool spool = !options_.spool_dir.empty(), kafka = !options_.kafka_brokers.empty();
  if (spool == kafka) {
    return Status::InvalidArgument(
        "give exactly one source: --spool DIR, or --kafka-brokers B with --topic T");
  }
  int froms = (options_.from_offset ? 1 : 0) + (options_.from_seq ? 1 : 0) +
              (options_.from_lsn ? 1 : 0) + (options_.from_time_us ? 1 : 0);
  if (froms > 1) {
    return Status::InvalidArgument(
        "--from-offset, --from-seq, --from-lsn and --from-time exclude each other; give one");
  }
  if (options_.from_offset && spool) {
    return Status::InvalidArgument(
        "--from-offset is for a Kafka source; use --from-seq with a "
        "spool");
  }
  if (options_.from_seq && options_.until_seq && *options_.until_seq < *options_.from_seq) {
    return Status::InvalidArgument("--until-seq is before --from-seq");
  }
  if (options_.from_time_us && options_.until_time_us &&
      *options_.until_time_us < *options_.from_time_us) {
    return Status::InvalidArgument("--until-time is before --from-time");
  }
  if (options_.dry_run && options_.record_position) {
    return Status::InvalidArgument("--dry-run changes nothing, so it cannot --record-position");
  }
  if (options_.only_missing && options_.record_position) {
    return Status::InvalidArgument(
        "--only-missing inserts rows without bringing the target to a position of the stream, so "
        "it cannot --record-position; leave one out");
  }
  if (options_.format != "text" && options_.format != "json") {
    return Status::InvalidArgument("unknown --format '" + options_.format + "': use text or json");
  }
  return Status::Ok();
}

Status Replayer::ConnectTarget() {
  auto backoff = std::chrono::milliseconds(250);
  for (int attempt = 1;; ++attempt) {
    auto t = Target::Connect(options_.target, options_.target_password);
    if (t.ok()) {
      target_ = std::move(t).value();
      return Status::Ok();
    }
    if (t.status().code() != StatusCode::kUnavailable) return t.status();
    spdlog::warn("target unavailable (attempt {}): {}; retrying in {} ms", attempt,
                 t.status().message(), backoff.count());
    if (SleepUnlessStopped(stop_, backoff)) return Status::Unavailable("stopped");
    backoff = std::min(backoff * 2, std::chrono::milliseconds(10'000));
  }
}

// A window must lie in what the source holds, or it says what that is. A start before the
// source's first event is fine only when nothing was ever trimmed from it (seq 1 is there).
Status Replayer::CheckWindow(const replayer::HeldRange& held, const std::string& source) const {
  auto outside = [&](const std::string& what) {
    return Status::NotFound(what + " is outside what " + source + " holds (" + held.Describe() +
                            "); nothing was applied. Give a start inside that range");
  };
  const bool ends = options_.stop_at_end || options_.dry_run;
  const bool trimmed = !held.empty && held.first_seq > 1;
  if (options_.from_offset) {
    auto [partition, offset] = *options_.from_offset;
    auto it = held.offsets.find(partition);
    if (it == held.offsets.end()) {
      return outside("--from-offset " + std::to_string(partition) + ":" + std::to_string(offset) +
                     " (no such partition)");
    }
    if (offset < it->second.first || offset > it->second.second ||
        (ends && offset == it->second.second)) {
      return outside("--from-offset " + std::to_string(partition) + ":" + std::to_string(offset));
    }
  }
  if (options_.from_seq) {
    uint64_t seq = *options_.from_seq;
    if ((trimmed && seq < held.first_seq) || (ends && (held.empty || seq > held.last_seq)) ||
        (!ends && !held.empty && seq > held.last_seq + 1)) {
      return outside("--from-seq " + std::to_string(seq));
    }
  }
  if (options_.from_lsn) {
    uint64_t lsn = *options_.from_lsn;
    if ((trimmed && lsn < held.first_lsn) || (ends && (held.empty || lsn > held.last_lsn))) {
      return outside("--from-lsn " + Lsn(lsn).ToString());
    }
  }
  if (options_.from_time_us) {
    int64_t t = *options_.from_time_us;
    // Events committed after t and before the first one held may have been trimmed away.
    if ((trimmed && t < held.first_time_us) || (ends && (held.empty || t >= held.last_time_us))) {
      return outside("--from-time " + FormatTimestampUs(t));
    }
  }
  return Status::Ok();
}

Status Replayer::OpenSource() {
  uint64_t from_seq = applied_.last_seq + 1;
  if (IsWindow()) from_seq = options_.from_seq.value_or(1);
  const bool has_from =
      options_.from_offset || options_.from_seq || options_.from_lsn || options_.from_time_us;
  if (!options_.spool_dir.empty()) {
    if (has_from) {
      LIFELINE_ASSIGN_OR_RETURN(auto survey,
                                replayer::SurveySpool(options_.spool_dir, options_.from_time_us));
      summary_.survey_records_read = survey.records_read;
      LIFELINE_RETURN_IF_ERROR(CheckWindow(survey.held, "spool " + options_.spool_dir));
      if (survey.time_start && survey.time_start->first_seq > 0) {
        from_seq = survey.time_start->first_seq;
      }
    }
    auto backoff = std::chrono::milliseconds(100);
    while (true) {
      auto s = replayer::OpenSpoolSource(options_.spool_dir, from_seq);
      if (s.ok()) {
        source_ = std::move(s).value();
        return Status::Ok();
      }
      // A daemon started beside a capture that is still creating its spool waits for it.
      bool transient = s.status().code() == StatusCode::kUnavailable ||
                       s.status().code() == StatusCode::kNotFound;
      if (!transient || IsWindow()) return s.status();
      spdlog::warn("replay: {}; waiting", s.status().message());
      if (SleepUnlessStopped(stop_, backoff)) return Status::Unavailable("stopped");
      backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
    }
  }
  replayer::KafkaSourceOptions k;
  k.brokers = options_.kafka_brokers;
  k.topic = options_.topic;
  k.properties = options_.kafka_properties;
  k.gap_timeout = std::chrono::milliseconds(options_.gap_timeout_ms);
  k.next_seq = from_seq;
  if (has_from) {
    LIFELINE_ASSIGN_OR_RETURN(auto survey, replayer::SurveyTopic(k, options_.from_time_us));
    summary_.survey_records_read = survey.records_read;
    LIFELINE_RETURN_IF_ERROR(CheckWindow(survey.held, "topic " + options_.topic));
    if (survey.time_start) {
      k.start_offsets = survey.time_start->offsets;
      // Nothing after the time: start past the last seq, so every partition is simply at its end.
      k.next_seq = survey.time_start->first_seq > 0 ? survey.time_start->first_seq
                                                    : survey.held.last_seq + 1;
      spdlog::info(
          "replay: events committed after {} start at seq {} (offsets {}){}",
          FormatTimestampUs(*options_.from_time_us), k.next_seq,
          [&] {
            std::string out;
            for (const auto& [p, o] : k.start_offsets) {
              out += (out.empty() ? "" : " ") + std::to_string(p) + ":" + std::to_string(o);
            }
            return out;
          }(),
          survey.time_start->searched.empty()
              ? std::string(", as the broker's offsets-for-times answered")
              : ", found by binary search on " +
                    std::to_string(survey.time_start->searched.size()) +
                    " partition(s) where the broker's answer did not hold");
    } else if (options_.from_offset) {
      k.start_offsets[options_.from_offset->first] = options_.from_offset->second;
      // Other partitions start at their beginning; the first seq at the offset decides where
      // the merged order starts.
      k.next_seq = 1;
    }
  } else if (!IsWindow()) {
    k.start_offsets = applied_.next_offsets;
  }
  LIFELINE_ASSIGN_OR_RETURN(source_, replayer::OpenKafkaSource(k));
  return Status::Ok();
}

Status Replayer::Accept(const SourcedEvent& item, bool* done) {
  if (!item.event) {
    if (!options_.dead_letter) {
      return Status::Corruption("the record at " + item.position.Describe() +
                                " does not parse: " + item.error +
                                "; nothing after it was applied. Rerun with --dead-letter to "
                                "store it in lifeline.dead_letter and go on");
    }
    spdlog::warn("replay: storing the record at {} in lifeline.dead_letter: {}",
                 item.position.Describe(), item.error);
    batch_.push_back(Target::DeadLetterStatement(item.position.topic, item.position.partition,
                                                 item.position.offset, item.raw, item.error));
    ++summary_.dead_letters;
    dead_letters_.Add();
    return Status::Ok();
  }
  const v1::ChangeEvent& ev = *item.event;
  // The window's end is decided at transaction starts, so a transaction is never cut.
  if (!in_txn_ && ((options_.until_seq && ev.seq() > *options_.until_seq) ||
                   (options_.until_lsn && ev.commit_lsn() > *options_.until_lsn) ||
                   (options_.until_time_us && ev.commit_time_us() > *options_.until_time_us))) {
    *done = true;
    return Status::Ok();
  }
  if (expected_seq_ != 0 && ev.seq() < expected_seq_) {
    ++summary_.duplicates;  // re-shipped: applied already
    return Status::Ok();
  }
  // The window starts at the first transaction past the --from-* point and takes everything after
  // it, as recovery stops at the first commit past its target: a later commit stamped a little
  // earlier (commit times are not strictly ordered) was not in the restored state either.
  bool before_window = !window_started_ &&
                       ((options_.from_seq && ev.seq() < *options_.from_seq) ||
                        (options_.from_lsn && ev.commit_lsn() < *options_.from_lsn) ||
                        (options_.from_time_us && ev.commit_time_us() <= *options_.from_time_us));
  if (before_window && !in_txn_) {
    expected_seq_ = ev.seq() + 1;
    return Status::Ok();
  }
  if (expected_seq_ != 0 && ev.seq() > expected_seq_) {
    ++summary_.gaps;
    gaps_.Add();
    if (!options_.allow_gaps) {
      return Status::FailedPrecondition(
          "seq " + std::to_string(expected_seq_) + ".." + std::to_string(ev.seq() - 1) +
          " is missing from the stream (next is seq " + std::to_string(ev.seq()) + " at " +
          item.position.Describe() +
          "); nothing after the gap was applied. Find the events (lifeline gapcheck stream) or "
          "rerun with --allow-gaps to record the gap and go on");
    }
    spdlog::warn("replay: seq {}..{} missing; recorded in lifeline.replay_gaps", expected_seq_,
                 ev.seq() - 1);
    if (!options_.dry_run) {
      batch_.push_back(Target::GapStatement(SourceId(ev), expected_seq_, ev.seq() - 1));
    }
  }
  expected_seq_ = ev.seq() + 1;
  window_started_ = true;
  if (ev.op() != v1::OP_HEARTBEAT && ev.op() != v1::OP_RESNAPSHOT_MARKER) {
    const v1::Relation& rel = ev.relation();
    if (!relation_.Is(rel)) {
      replayer::RelationOnTarget on_target;
      if (!options_.dry_run) LIFELINE_RETURN_IF_ERROR(target_->CheckRelation(rel, &on_target));
      relation_.Take(rel);
      relation_.on_target = std::move(on_target);
    }
    const std::string& table = relation_.table;
    // Keys are listed for a window's summary only: a daemon runs for months and would keep them
    // all.
    if (IsWindow() && ev.op() != v1::OP_TRUNCATE) {
      summary_.keys.Add(table + " " + replayer::RowKeyText(ev));
    }
    const auto op = static_cast<size_t>(ev.op());
    uint64_t* count = op < relation_.by_op.size() ? relation_.by_op[op] : nullptr;
    if (count == nullptr) {
      count = &summary_.by_op_table[std::string(OpName(ev.op())) + " " + table];
      if (op < relation_.by_op.size()) relation_.by_op[op] = count;
    }
    ++*count;
    if (options_.only_missing) {
      auto key = std::make_pair(table, replayer::RowKeyText(ev));
      if (ev.op() == v1::OP_DELETE || ev.op() == v1::OP_TRUNCATE) {
        if (ev.op() == v1::OP_DELETE) latest_.erase(key);
      } else if (ev.op() == v1::OP_UPDATE && ev.has_before() && ev.before().values_size() > 0 &&
                 replayer::RowKeyText(ev) != key.second) {
        latest_[key] = ev;
      } else {
        auto it = latest_.find(key);
        if (it != latest_.end() && ev.op() == v1::OP_UPDATE) {
          // Keep values an UPDATE did not resend (unchanged TOAST).
          v1::ChangeEvent merged = ev;
          for (int i = 0; i < merged.after().values_size(); ++i) {
            if (merged.after().values(i).kind_case() == v1::Value::kUnchangedToast &&
                i < it->second.after().values_size() &&
                it->second.relation().schema_version() == ev.relation().schema_version()) {
              *merged.mutable_after()->mutable_values(i) = it->second.after().values(i);
            }
          }
          it->second = merged;
        } else {
          latest_[key] = ev;
        }
      }
    } else if (!options_.dry_run) {
      const auto& types = relation_.on_target.column_types;
      const bool nettable = !options_.each_change && relation_.on_target.independent_rows;
      if (!nettable || !net_.TryAdd(ev, types)) {
        LIFELINE_RETURN_IF_ERROR(TakeNetChanges());
        if (!nettable || !net_.TryAdd(ev, types)) {
          LIFELINE_RETURN_IF_ERROR(AddRowChange(ev, types));
        }
      }
      if (!options_.audit_table.empty() && ev.op() != v1::OP_TRUNCATE) {
        replayer::Statement audit;
        audit.sql = "INSERT INTO " + options_.audit_table +
                    " (operation_type, \"timestamp\", table_name, record_id, old_values, "
                    "new_values) VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb)";
        std::string op = std::string(OpName(ev.op()));
        for (char& c : op) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        audit.AddText(op);
        audit.AddText(FormatTimestampUs(ev.commit_time_us()));
        audit.AddText(table);
        const v1::Value* record_id = nullptr;
        int keys = 0;
        const v1::Row& key_row = ev.op() == v1::OP_DELETE ? ev.before() : ev.after();
        for (int i = 0; i < ev.relation().columns_size() && i < key_row.values_size(); ++i) {
          if (ev.relation().columns(i).key()) {
            ++keys;
            record_id = &key_row.values(i);
          }
        }
        if (keys == 1) {
          audit.AddText(record_id->text());
        } else {
          audit.AddNull();
        }
        if (ev.has_before() && ev.before().values_size() > 0) {
          audit.AddText(RowToJson(ev, ev.before()));
        } else {
          audit.AddNull();
        }
        if (ev.has_after()) {
          audit.AddText(RowToJson(ev, ev.after()));
        } else {
          audit.AddNull();
        }
        batch_.push_back(std::move(audit));
      }
    }
  }
  ++summary_.events;
  ++batch_events_;
  if (summary_.first_seq == 0) {
    summary_.first_seq = ev.seq();
    summary_.first_lsn = ev.commit_lsn();
    summary_.first_time_us = ev.commit_time_us();
  }
  summary_.last_seq = ev.seq();
  summary_.last_lsn = ev.commit_lsn();
  summary_.last_time_us = ev.commit_time_us();
  if (ev.source().system_id() != source_system_id_ || ev.source().slot_name() != source_slot_) {
    source_system_id_ = ev.source().system_id();
    source_slot_ = ev.source().slot_name();
    pending_.source_id = SourceId(ev);
  }
  pending_.last_seq = ev.seq();
  pending_.last_commit_lsn = Lsn(ev.commit_lsn());
  pending_.last_commit_time_us = ev.commit_time_us();
  in_txn_ = !ev.last_in_txn();
  if (ev.last_in_txn()) ++summary_.transactions;
  return Status::Ok();
}

Status Replayer::AddRowChange(const v1::ChangeEvent& ev,
                              const std::vector<std::string>& column_types) {
  if (!run_.TryAdd(ev, &column_types)) {
    run_.TakeInto(&batch_);
    if (!run_.TryAdd(ev, &column_types)) {
      LIFELINE_ASSIGN_OR_RETURN(replayer::Statement st, replayer::ApplyStatement(ev, &shapes_));
      if (!st.sql.empty()) batch_.push_back(std::move(st));
    }
  }
  return Status::Ok();
}

Status Replayer::TakeNetChanges() {
  return net_.TakeInto([this](const v1::ChangeEvent& ev, const std::vector<std::string>& types) {
    return AddRowChange(ev, types);
  });
}

Status Replayer::Flush() {
  if (in_txn_) return Status::Ok();  // only whole source transactions are applied
  LIFELINE_RETURN_IF_ERROR(TakeNetChanges());
  run_.TakeInto(&batch_);
  const uint64_t sent_seq = in_flight_ ? in_flight_->position.last_seq : applied_.last_seq;
  if (batch_.empty() && pending_.last_seq == sent_seq) return Status::Ok();
  pending_.next_offsets = source_->NextOffsets();
  if (stopped_at_) {
    int64_t& next = pending_.next_offsets[stopped_at_->partition];
    next = std::min(next, stopped_at_->offset);
  }
  if (options_.dry_run) {
    transactions_.Add(summary_.transactions - transactions_counted_);
    transactions_counted_ = summary_.transactions;
    applied_ = pending_;
  } else {
    LIFELINE_RETURN_IF_ERROR(Collect(/*wait=*/true));
    if (persist_position_) batch_.push_back(Target::PositionStatement(stream_, pending_));
    in_flight_.emplace();
    in_flight_->statements =
        std::make_shared<const std::vector<replayer::Statement>>(std::move(batch_));
    in_flight_->position = pending_;
    in_flight_->transactions = summary_.transactions;
    in_flight_->sent = target_->Send(in_flight_->statements);
  }
  batch_.clear();
  batch_events_ = 0;
  batch_started_ = Clock::now();
  return Status::Ok();
}

Status Replayer::Collect(bool wait) {
  if (!in_flight_) return Status::Ok();
  Status st = in_flight_->sent;
  if (st.ok()) {
    auto over = target_->Finished(wait);
    if (over.ok() && !*over) return Status::Ok();  // still running
    st = over.status();
  }
  auto backoff = std::chrono::milliseconds(250);
  while (!st.ok()) {
    if (st.code() != StatusCode::kUnavailable) {
      Status failed =
          st.WithContext("applying seq up to " + std::to_string(in_flight_->position.last_seq));
      in_flight_.reset();
      return failed;
    }
    // The target went away (restart, network). The commit may or may not have happened:
    // reconnect, and skip the batch if the stored position shows it.
    spdlog::warn("replay: {}; reconnecting in {} ms", st.message(), backoff.count());
    if (SleepUnlessStopped(stop_, backoff)) {
      in_flight_.reset();
      return Status::Unavailable("stopped");
    }
    backoff = std::min(backoff * 2, std::chrono::milliseconds(10'000));
    Status c = ConnectTarget();
    if (c.ok() && persist_position_) c = LockStream();
    if (!c.ok()) {
      in_flight_.reset();
      return c;
    }
    if (persist_position_) {
      auto pos = target_->ReadPosition(stream_);
      if (pos.ok() && pos->last_seq >= in_flight_->position.last_seq) break;
    }
    st = target_->Send(in_flight_->statements);
    if (st.ok()) st = target_->Finished(/*wait=*/true).status();
  }
  transactions_.Add(in_flight_->transactions - transactions_counted_);
  transactions_counted_ = in_flight_->transactions;
  applied_ = std::move(in_flight_->position);
  in_flight_.reset();
  position_.Set(static_cast<double>(applied_.last_seq));
  if (applied_.last_commit_time_us > 0) {
    lag_.Set(std::max(0.0, (NowUnixMicros() - applied_.last_commit_time_us) / 1e6));
  }
  return Status::Ok();
}

Status Replayer::Loop() {
  bool done = false;
  size_t since_collect = 0;
  while (!stop_.load() && !done) {
    bool at_end = false;
    auto wait = batch_events_ > 0 ? std::chrono::milliseconds(5) : std::chrono::milliseconds(200);
    if (in_flight_) wait = std::min(wait, std::chrono::milliseconds(20));
    LIFELINE_ASSIGN_OR_RETURN(auto item, source_->Next(wait, &at_end));
    if (item && item->event) {
      // Sealed rows are opened before anything reads the event. One that fails authentication is
      // a record that does not parse (it stops the replay, or --dead-letter stores it): it is
      // never applied. A key that was not given stops the replay whatever the flags.
      if (Status opened = keyring_.Open(*item->event); !opened.ok()) {
        if (opened.code() != StatusCode::kCorruption) {
          return opened.WithContext("the record at " + item->position.Describe() +
                                    " (nothing from it on was applied)");
        }
        item->error = opened.message();
        item->event.reset();
      }
    }
    if (item) {
      Status accepted = Accept(*item, &done);
      if (!accepted.ok()) {
        // A record that stops the replay (one that does not parse, a gap, a table the target
        // lacks) stops it after the whole transactions read before it, not after the last batch
        // that happened to be sent: a window then leaves the target at the last of them.
        const bool source_stop = accepted.code() == StatusCode::kCorruption ||
                                 accepted.code() == StatusCode::kFailedPrecondition;
        if (source_stop && !in_txn_) {
          stopped_at_ = item->position;  // read, not applied: the position must not pass it
          if (Status flushed = Flush(); !flushed.ok()) {
            spdlog::warn("replay: applying the transactions before it: {}", flushed.message());
          }
        }
        return accepted;
      }
      source_->Recycle(std::move(*item));
    }
    // Keep the batch in flight moving (its rest sent, its results read) while this one is built.
    if (in_flight_ && (!item || ++since_collect >= 256)) {
      since_collect = 0;
      LIFELINE_RETURN_IF_ERROR(Collect(/*wait=*/false));
    }
    bool full = batch_events_ >= options_.batch_events ||
                Clock::now() - batch_started_ >= std::chrono::milliseconds(options_.batch_ms);
    if ((!item || full || done) && !in_txn_) LIFELINE_RETURN_IF_ERROR(Flush());
    // A dry run reads the window as it stands and reports; it never follows.
    if (!item && at_end && (options_.stop_at_end || options_.dry_run) && !in_txn_) done = true;
    // Heartbeats keep the lag honest between batches too.
    if (applied_.last_commit_time_us > 0) {
      lag_.Set(std::max(0.0, (NowUnixMicros() - applied_.last_commit_time_us) / 1e6));
    }
  }
  LIFELINE_RETURN_IF_ERROR(Flush());
  return Collect(/*wait=*/true);
}

Status Replayer::FinishOnlyMissing() {
  std::string sql;
  size_t n = 0;
  for (const auto& [key, ev] : latest_) {
    LIFELINE_ASSIGN_OR_RETURN(std::string insert,
                              replayer::InsertIfMissingStatement(ev, ev.after()));
    sql += insert;
    ++summary_.rows_inserted_if_missing;
    if (++n % 1000 == 0 && !options_.dry_run) {
      LIFELINE_RETURN_IF_ERROR(target_->ApplyInTransaction(sql));
      sql.clear();
    }
  }
  if (!sql.empty() && !options_.dry_run) LIFELINE_RETURN_IF_ERROR(target_->ApplyInTransaction(sql));
  return Status::Ok();
}

HealthReport Replayer::Health() const {
  double lag = lag_.value();
  std::string json = "{\"status\":\"ok\",\"last_seq\":" + std::to_string(applied_.last_seq) +
                     ",\"last_commit_lsn\":" + JsonQuote(applied_.last_commit_lsn.ToString()) +
                     ",\"lag_seconds\":" + std::to_string(lag) + "}";
  return {true, json};
}

void Replayer::PrintSummary() const {
  const RunSummary& s = summary_;
  const uint64_t records_read =
      (source_ ? source_->records_read() : 0) + summary_.survey_records_read;
  if (options_.format == "json") {
    std::string ops = "{";
    for (const auto& [k, v] : s.by_op_table) {
      ops += (ops.size() > 1 ? "," : "") + JsonQuote(k) + ":" + std::to_string(v);
    }
    ops += "}";
    std::string keys = "[";
    size_t i = 0;
    for (const auto& k : s.keys.listed()) {
      keys += (i++ > 0 ? "," : "") + JsonQuote(k);
    }
    keys += "]";
    std::printf(
        "{\"dry_run\":%s,\"events\":%llu,\"transactions\":%llu,\"duplicates_dropped\":%llu,"
        "\"gaps\":%llu,\"dead_letters\":%llu,\"first_seq\":%llu,\"last_seq\":%llu,"
        "\"first_commit_lsn\":%s,\"last_commit_lsn\":%s,\"first_commit_time\":%s,"
        "\"last_commit_time\":%s,\"by_op_table\":%s,\"keys_touched\":%zu,\"keys\":%s,"
        "\"rows_inserted_if_missing\":%llu,\"records_read\":%llu,\"records_read_to_find_start\":%"
        "llu,\"row_changes_netted\":%llu}\n",
        options_.dry_run ? "true" : "false", static_cast<unsigned long long>(s.events),
        static_cast<unsigned long long>(s.transactions),
        static_cast<unsigned long long>(s.duplicates), static_cast<unsigned long long>(s.gaps),
        static_cast<unsigned long long>(s.dead_letters),
        static_cast<unsigned long long>(s.first_seq), static_cast<unsigned long long>(s.last_seq),
        JsonQuote(Lsn(s.first_lsn).ToString()).c_str(),
        JsonQuote(Lsn(s.last_lsn).ToString()).c_str(),
        s.first_time_us ? JsonQuote(FormatTimestampUs(s.first_time_us)).c_str() : "null",
        s.last_time_us ? JsonQuote(FormatTimestampUs(s.last_time_us)).c_str() : "null", ops.c_str(),
        s.keys.size(), keys.c_str(), static_cast<unsigned long long>(s.rows_inserted_if_missing),
        static_cast<unsigned long long>(records_read),
        static_cast<unsigned long long>(s.survey_records_read),
        static_cast<unsigned long long>(net_.events_taken() - net_.changes_given()));
    return;
  }
  std::printf(
      "%s%llu events in %llu transactions, seq %llu..%llu, LSN %s..%s, %s .. %s\n",
      options_.dry_run ? "dry run (nothing changed): " : "",
      static_cast<unsigned long long>(s.events), static_cast<unsigned long long>(s.transactions),
      static_cast<unsigned long long>(s.first_seq), static_cast<unsigned long long>(s.last_seq),
      Lsn(s.first_lsn).ToString().c_str(), Lsn(s.last_lsn).ToString().c_str(),
      s.first_time_us ? FormatTimestampUs(s.first_time_us).c_str() : "-",
      s.last_time_us ? FormatTimestampUs(s.last_time_us).c_str() : "-");
  for (const auto& [k, v] : s.by_op_table) {
    std::printf("  %-40s %llu\n", k.c_str(), static_cast<unsigned long long>(v));
  }
  std::printf(
      "  keys touched %zu, duplicates dropped %llu, gaps %llu, dead letters %llu, records read "
      "%llu\n",
      s.keys.size(), static_cast<unsigned long long>(s.duplicates),
      static_cast<unsigned long long>(s.gaps), static_cast<unsigned long long>(s.dead_letters),
      static_cast<unsigned long long>(records_read));
  if (net_.events_taken() > 0) {
    std::printf("  row changes netted within target transactions: %llu of %llu\n",
                static_cast<unsigned long long>(net_.events_taken() - net_.changes_given()),
                static_cast<unsigned long long>(net_.events_taken()));
  }
  if (options_.only_missing) {
    std::printf("  rows inserted where missing (never overwritten): %llu candidates\n",
                static_cast<unsigned long long>(s.rows_inserted_if_missing));
  }
}

// The backend of a replayer killed mid-batch (or of this one's connection before a reconnect)
// keeps the stream's lock until it finishes the batch and finds its client gone, so the lock is
// waited for a little before concluding that another replayer is running.
Status Replayer::LockStream() {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  bool said = false;
  while (true) {
    Status st = target_->LockStream(stream_);
    if (st.code() != StatusCode::kFailedPrecondition ||
        std::chrono::steady_clock::now() >= deadline) {
      return st;
    }
    if (!said) {
      spdlog::info(
          "replay: {}; waiting up to 10 s in case its holder is a replayer or a connection just "
          "gone",
          st.message());
      said = true;
    }
    if (SleepUnlessStopped(stop_, std::chrono::milliseconds(250))) return st;
  }
}

Status Replayer::Run() {
  LIFELINE_RETURN_IF_ERROR(Validate());
  LIFELINE_ASSIGN_OR_RETURN(keyring_, Keyring::Load(options_.encryption_key_files));
  LIFELINE_RETURN_IF_ERROR(ConnectTarget());
  stream_ = options_.spool_dir.empty() ? options_.topic : "";
  persist_position_ = !options_.dry_run && (!IsWindow() || options_.record_position);
  if (persist_position_) LIFELINE_RETURN_IF_ERROR(LockStream());
  LIFELINE_ASSIGN_OR_RETURN(applied_, target_->ReadPosition(stream_));
  pending_ = applied_;
  // The first seq this run must see. A source that no longer holds it (a topic past its
  // retention, a trimmed spool) is a gap, never a silent start further on. Windows starting at an
  // offset, an LSN or a time take the first seq the source hands out there.
  if (!IsWindow()) {
    expected_seq_ = applied_.last_seq + 1;
  } else if (options_.from_seq) {
    expected_seq_ = *options_.from_seq;
  } else if (!options_.from_offset && !options_.from_lsn && !options_.from_time_us) {
    expected_seq_ = 1;
  }
  LIFELINE_RETURN_IF_ERROR(OpenSource());
  // Only once the source and the window check out: a refused run leaves the target as it was.
  if (!options_.dry_run) LIFELINE_RETURN_IF_ERROR(target_->EnsureBookkeeping());
  std::unique_ptr<StatusServer> http;
  if (!options_.metrics_addr.empty()) {
    LIFELINE_ASSIGN_OR_RETURN(
        http, StatusServer::Start(options_.metrics_addr, &metrics_, [this] { return Health(); }));
  }
  spdlog::info(
      "replay: {} from {} into the target, {} seq {}", IsWindow() ? "window" : "following",
      options_.spool_dir.empty() ? "topic " + options_.topic : "spool " + options_.spool_dir,
      applied_.last_seq > 0 ? "applied through" : "nothing applied yet;", applied_.last_seq);
  Status looped = Loop();
  if (!looped.ok()) {
    // What was sent before the failure still commits (or not) as a whole; wait to know which.
    if (in_flight_ && in_flight_->sent.ok()) {
      auto over = target_->Finished(/*wait=*/true);
      if (over.ok()) {
        applied_ = in_flight_->position;
      } else {
        spdlog::warn("replay: the last batch sent (seq up to {}) failed too: {}",
                     in_flight_->position.last_seq, over.status().message());
      }
    }
    in_flight_.reset();
    return looped;
  }
  if (options_.only_missing) LIFELINE_RETURN_IF_ERROR(FinishOnlyMissing());
  PrintSummary();
  return Status::Ok();
}

}  // namespace

Status RunReplay(const ReplayOptions& options, const std::atomic<bool>& stop) {
  Replayer r(options, stop);
  return r.Run();
}

}  // namespace lifeline
