// `gapcheck stream`: reads a spool or every partition of a topic up to where it stands now, keeps a
// compact note per record (never the event) and checks seq continuity, duplicates, order and the
// hash chain per source.
#include "gapcheck/stream_scan.h"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <numeric>
#include <set>
#include <thread>

#include "common/event_seal.h"
#include "common/kafka_config.h"
#include "common/lsn.h"
#include "common/spool.h"

namespace lifeline::gapcheck {

std::string StreamPosition::Describe() const {
  if (partition < 0) return "seq " + std::to_string(offset);
  return "partition " + std::to_string(partition) + " offset " + std::to_string(offset);
}

bool StreamReport::clean() const {
  if (!bad_records.empty()) return false;
  for (const auto& s : sources) {
    if (!s.gaps.empty() || !s.backwards.empty() || !s.chain_breaks.empty()) return false;
    for (const auto& d : s.duplicates) {
      if (!d.identical) return false;
    }
  }
  return true;
}

namespace {

using Clock = std::chrono::steady_clock;

// What the checks need of one record: about 100 bytes, so millions of events fit in memory.
struct RecordNote {
  uint64_t seq = 0;
  uint64_t commit_lsn = 0;
  int64_t commit_time_us = 0;
  int64_t offset = 0;
  int32_t partition = -1;
  bool resnapshot = false;
  bool prev_hash_sized = true;  // prev_hash holds 32 bytes (a SHA-256)
  EventHash hash{};
  EventHash prev_hash{};
};

StreamPosition PositionOf(const RecordNote& n) {
  return StreamPosition{n.partition, n.offset};
}

EventMark MarkOf(const RecordNote& n) {
  EventMark m;
  m.seq = n.seq;
  m.commit_lsn = Lsn(n.commit_lsn).ToString();
  m.commit_time_us = n.commit_time_us;
  m.position = PositionOf(n);
  return m;
}

std::string SourceId(const v1::ChangeEvent& ev) {
  if (!ev.has_source()) return "";
  const auto& s = ev.source();
  if (s.system_id().empty() && s.database().empty() && s.slot_name().empty()) return "";
  return s.system_id() + "/" + s.database() + "/" + s.slot_name();
}

// Gathers notes per source as records arrive, then judges them.
class ContinuityCheck {
 public:
  ContinuityCheck(const StreamScanOptions& options, const Keyring& keyring)
      : options_(options), keyring_(keyring) {}

  // `event` is null when the bytes did not parse (`error` says why).
  void Add(const StreamPosition& pos, std::string_view bytes, const v1::ChangeEvent* event,
           const std::string& error) {
    ++report_.records;
    if (event == nullptr) {
      report_.bad_records.push_back(BadRecord{pos, error});
      return;
    }
    // With keys, a sealed record is opened, and one that does not open is unreadable like a
    // record that does not parse (its seq, not authenticated, is not counted). Without keys
    // continuity is judged on the sealed events as they are.
    if (event->has_sealed() && !keyring_.empty()) {
      opened_ = *event;
      if (Status st = keyring_.Open(opened_); !st.ok()) {
        report_.bad_records.push_back(BadRecord{pos, st.message()});
        return;
      }
      event = &opened_;
    }
    if (options_.visit) options_.visit(pos, *event);
    RecordNote n;
    n.seq = event->seq();
    n.commit_lsn = event->commit_lsn();
    n.commit_time_us = event->commit_time_us();
    n.offset = pos.offset;
    n.partition = pos.partition;
    n.resnapshot = event->op() == v1::OP_RESNAPSHOT_MARKER;
    n.hash = HashEventBytes(bytes);
    const std::string& prev = event->prev_hash();
    n.prev_hash_sized = prev.size() == n.prev_hash.size();
    if (n.prev_hash_sized) std::copy(prev.begin(), prev.end(), n.prev_hash.begin());
    // Consecutive records nearly always share a source: skip the map lookup for them.
    std::string id = SourceId(*event);
    if (current_ == nullptr || id != current_id_) {
      current_ = &notes_[id];
      current_id_ = id;
    }
    current_->push_back(n);
  }

  void Progress(uint64_t total) {
    if (options_.progress) options_.progress(report_.records, total);
  }

  // `trimmed`: partitions whose low watermark is above 0 (retention removed their oldest records).
  StreamReport Finish(const std::set<int32_t>& trimmed = {}) {
    for (auto& [id, notes] : notes_) {
      report_.sources.push_back(Judge(id, notes, trimmed));
      std::vector<RecordNote>().swap(notes);
    }
    return std::move(report_);
  }

  StreamReport& report() { return report_; }

  // The highest seq read of each source.
  std::map<std::string, uint64_t> HighestSeqs() const {
    std::map<std::string, uint64_t> out;
    for (const auto& [id, notes] : notes_) {
      uint64_t top = 0;
      for (const RecordNote& n : notes) top = std::max(top, n.seq);
      out[id] = top;
    }
    return out;
  }

 private:
  static SourceContinuity Judge(const std::string& id, const std::vector<RecordNote>& notes,
                                const std::set<int32_t>& trimmed) {
    SourceContinuity out;
    out.source_id = id;
    if (notes.empty()) return out;
    // Each partition holds a suffix of what it was given, so every seq from the highest first seq
    // of a trimmed partition on is held by its partition unless it was lost.
    if (!trimmed.empty()) {
      std::map<int32_t, uint64_t> first_in_partition;
      for (const RecordNote& n : notes) {
        if (!trimmed.count(n.partition)) continue;
        auto [it, fresh] = first_in_partition.emplace(n.partition, n.seq);
        if (!fresh) it->second = std::min(it->second, n.seq);
      }
      for (const auto& [p, seq] : first_in_partition) {
        out.retained_from_seq = std::max(out.retained_from_seq, seq);
      }
    }
    // Seq order; a stable sort keeps the copies of one seq in read order.
    std::vector<uint32_t> order(notes.size());
    std::iota(order.begin(), order.end(), 0u);
    std::stable_sort(order.begin(), order.end(),
                     [&](uint32_t a, uint32_t b) { return notes[a].seq < notes[b].seq; });
    std::vector<bool> repeat(notes.size(), false);  // a later copy of a seq already read

    static const EventHash kZero{};
    std::vector<EventHash> prev_hashes;  // of every copy of the previous seq
    uint64_t prev_seq = 0;
    const RecordNote* prev_first = nullptr;
    std::vector<EventHash> hashes;
    for (size_t a = 0; a < order.size();) {
      size_t b = a + 1;
      while (b < order.size() && notes[order[b]].seq == notes[order[a]].seq) ++b;
      const RecordNote& first = notes[order[a]];
      const uint64_t seq = first.seq;
      ++out.events;
      if (prev_first == nullptr) {
        out.first_seq = seq;
        out.first = MarkOf(first);
      }
      out.last_seq = seq;
      out.last = MarkOf(first);

      hashes.clear();
      if (b - a > 1) {
        Duplicate dup;
        dup.seq = seq;
        for (size_t i = a; i < b; ++i) {
          const RecordNote& copy = notes[order[i]];
          dup.positions.push_back(PositionOf(copy));
          dup.identical = dup.identical && copy.hash == first.hash;
          if (i > a) repeat[order[i]] = true;
        }
        out.duplicates.push_back(std::move(dup));
      }
      for (size_t i = a; i < b; ++i) hashes.push_back(notes[order[i]].hash);

      if (prev_first != nullptr && seq > prev_seq + 1) {
        // A hole ends at a held seq, so it lies wholly below or wholly above retained_from_seq.
        if (seq <= out.retained_from_seq) {
          out.missing_before_retained += seq - prev_seq - 1;
        } else {
          out.gaps.push_back(SeqGap{prev_seq + 1, seq - 1, MarkOf(*prev_first), MarkOf(first)});
        }
      }

      // Each copy must link to some copy of seq - 1 (differing copies are already a finding).
      bool linked_prev = prev_first != nullptr && prev_seq + 1 == seq;
      for (size_t i = a; i < b; ++i) {
        const RecordNote& n = notes[order[i]];
        if (!n.prev_hash_sized) {
          out.chain_breaks.push_back(
              ChainBreak{seq, PositionOf(n),
                         "its prev_hash is not a SHA-256 (not 32 bytes): the event was not "
                         "written by a lifeline spool, or was altered"});
        } else if (seq == 1) {
          if (n.prev_hash != kZero) {
            out.chain_breaks.push_back(ChainBreak{
                seq, PositionOf(n),
                "seq 1 is the start of its source but its prev_hash is not all zero: the event was "
                "altered or replaced"});
          }
        } else if (linked_prev && std::find(prev_hashes.begin(), prev_hashes.end(), n.prev_hash) ==
                                      prev_hashes.end()) {
          out.chain_breaks.push_back(ChainBreak{
              seq, PositionOf(n),
              "its prev_hash does not match the SHA-256 of seq " + std::to_string(seq - 1) +
                  " at " + PositionOf(*prev_first).Describe() + ": seq " + std::to_string(seq - 1) +
                  " was altered or replaced, or the prev_hash of seq " + std::to_string(seq) +
                  " was"});
        }
      }
      if (first.resnapshot) out.resnapshots.push_back(MarkOf(first));

      prev_hashes.swap(hashes);
      prev_seq = seq;
      prev_first = &first;
      a = b;
    }

    // Record order within each partition (or the spool). Later copies of a seq are a re-ship and
    // already reported as duplicates, so they are not order faults. A commit LSN is only judged
    // when the seq moved forward, so one misplaced record is reported once.
    std::map<int32_t, uint32_t> last_in_partition;
    for (uint32_t i = 0; i < notes.size(); ++i) {
      if (repeat[i]) continue;
      const RecordNote& n = notes[i];
      auto it = last_in_partition.find(n.partition);
      if (it != last_in_partition.end()) {
        const RecordNote& p = notes[it->second];
        if (n.seq < p.seq) {
          out.backwards.push_back(Backwards{"seq", MarkOf(p), MarkOf(n)});
        } else if (n.commit_lsn != 0 && p.commit_lsn != 0 && n.commit_lsn < p.commit_lsn) {
          out.backwards.push_back(Backwards{"commit_lsn", MarkOf(p), MarkOf(n)});
        }
        it->second = i;
      } else {
        last_in_partition.emplace(n.partition, i);
      }
    }
    return out;
  }

  const StreamScanOptions& options_;
  const Keyring& keyring_;
  v1::ChangeEvent opened_;  // the last sealed event, opened
  StreamReport report_;
  std::map<std::string, std::vector<RecordNote>> notes_;
  std::vector<RecordNote>* current_ = nullptr;
  std::string current_id_;
};

constexpr uint64_t kProgressEvery = 8192;

Result<StreamReport> ScanSpool(const StreamScanOptions& options, const Keyring& keyring) {
  const std::string& dir = options.stream.spool_dir;
  LIFELINE_ASSIGN_OR_RETURN(auto spool, Spool::OpenForRead(dir));
  const uint64_t total = spool->Stats().events;
  ContinuityCheck check(options, keyring);
  check.report().description = "spool " + dir;
  check.Progress(total);
  uint64_t next = 1;
  uint64_t since_progress = 0;
  while (true) {
    LIFELINE_ASSIGN_OR_RETURN(auto batch, spool->Read(next, 4096, 16 << 20));
    if (batch.empty()) break;
    for (const auto& rec : batch) {
      StreamPosition pos{-1, static_cast<int64_t>(rec.seq)};
      auto ev = ParseEvent(rec);
      if (!ev.ok()) {
        check.Add(pos, rec.bytes, nullptr, ev.status().message());
      } else if (ev->seq() == 0) {
        check.Add(pos, rec.bytes, nullptr, "the event carries no seq");
      } else {
        check.Add(pos, rec.bytes, &*ev, "");
      }
      if (++since_progress >= kProgressEvery) {
        since_progress = 0;
        check.Progress(total);
      }
    }
    next = batch.back().seq + 1;
  }
  check.Progress(total);
  return check.Finish();
}

// --- Kafka -------------------------------------------------------------------------------------

struct ConsumerCloser {
  void operator()(rd_kafka_t* rk) const {
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
  }
};
using Consumer = std::unique_ptr<rd_kafka_t, ConsumerCloser>;

struct MetadataDeleter {
  void operator()(const rd_kafka_metadata_t* md) const { rd_kafka_metadata_destroy(md); }
};

int RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<int64_t>(left.count(), 0));
}

Result<Consumer> OpenConsumer(const GapcheckStream& stream) {
  const std::vector<KafkaProperty> defaults = {
      {"bootstrap.servers", stream.kafka_brokers},
      {"group.id", "lifeline-gapcheck"},
      {"auto.offset.reset", "earliest"},
      {"client.id", "lifeline-gapcheck"},
  };
  // Nothing is committed, so the scan leaves no trace; and a check must never create the topic it
  // was asked about.
  std::vector<KafkaProperty> fixed = FixedKafkaProperties(KafkaRole::kConsumer);
  fixed.emplace_back("allow.auto.create.topics", "false");
  LIFELINE_ASSIGN_OR_RETURN(KafkaConf conf,
                            BuildKafkaConf(defaults, stream.kafka_properties, fixed));
  char err[512];
  // Connection refusals are expected while probing and end in a clear Status; keep them quiet.
  rd_kafka_conf_set_log_cb(conf.get(),
                           [](const rd_kafka_t*, int, const char* fac, const char* buf) {
                             spdlog::debug("gapcheck: Kafka {}: {}", fac, buf);
                           });
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), err, sizeof err);
  if (rk == nullptr) return Status::InvalidArgument(std::string("Kafka consumer: ") + err);
  conf.release();
  rd_kafka_poll_set_consumer(rk);
  return Consumer(rk);
}

// The topic's partition count from the all-topics list: asking for the topic by name would create
// it on brokers that auto-create topics.
Result<int> TopicPartitions(rd_kafka_t* rk, const GapcheckStream& stream,
                            Clock::time_point deadline) {
  std::string last;
  while (true) {
    const rd_kafka_metadata_t* raw = nullptr;
    int wait = std::max(RemainingMs(deadline), 1);
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, nullptr, &raw, wait);
    std::unique_ptr<const rd_kafka_metadata_t, MetadataDeleter> md(raw);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::vector<std::string> names;
      for (int i = 0; i < md->topic_cnt; ++i) {
        const auto& t = md->topics[i];
        if (stream.topic != t.topic) {
          names.emplace_back(t.topic);
          continue;
        }
        if (t.err == RD_KAFKA_RESP_ERR_NO_ERROR && t.partition_cnt > 0) return t.partition_cnt;
        last = std::string("topic ") + t.topic + ": " + rd_kafka_err2str(t.err);
        break;
      }
      if (last.empty()) {
        std::sort(names.begin(), names.end());
        std::string list;
        constexpr size_t kListed = 20;
        for (size_t i = 0; i < names.size() && i < kListed; ++i) list += (i ? ", " : "") + names[i];
        if (names.size() > kListed) list += ", ... (" + std::to_string(names.size()) + " in all)";
        return Status::NotFound(
            "topic " + stream.topic + " does not exist on " + stream.kafka_brokers + " (" +
            (names.empty() ? "it holds no topics" : "topics there: " + list) + "); check --topic");
      }
    } else {
      last = rd_kafka_err2str(e);
    }
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(200, RemainingMs(deadline))));
    if (Clock::now() >= deadline) break;
  }
  return Status::Unavailable("cannot read the topic list from Kafka brokers " +
                             stream.kafka_brokers + " in time: " + last +
                             "; check --kafka-brokers and that the brokers are up");
}

Result<StreamReport> ScanKafka(const StreamScanOptions& options, const Keyring& keyring) {
  const GapcheckStream& stream = options.stream;
  if (stream.topic.empty()) return Status::InvalidArgument("no topic given; pass --topic");
  const auto timeout = std::chrono::milliseconds(std::max(options.kafka_timeout_ms, 1));
  LIFELINE_ASSIGN_OR_RETURN(Consumer consumer, OpenConsumer(stream));
  rd_kafka_t* rk = consumer.get();
  LIFELINE_ASSIGN_OR_RETURN(int partitions, TopicPartitions(rk, stream, Clock::now() + timeout));

  ContinuityCheck check(options, keyring);
  StreamReport& report = check.report();
  report.description = "topic " + stream.topic + " at " + stream.kafka_brokers + " (" +
                       std::to_string(partitions) +
                       (partitions == 1 ? " partition)" : " partitions)");

  // Where each partition stands now: the first look reads up to these high watermarks.
  uint64_t total = 0;
  std::map<int32_t, int64_t> next;  // partitions still to read: next offset expected
  std::set<int32_t> trimmed;
  for (int32_t p = 0; p < partitions; ++p) {
    int64_t low = 0, high = 0;
    auto deadline = Clock::now() + timeout;
    rd_kafka_resp_err_t e;
    while (true) {
      e = rd_kafka_query_watermark_offsets(rk, stream.topic.c_str(), p, &low, &high,
                                           std::max(RemainingMs(deadline), 1));
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR || Clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Status::Unavailable("cannot read the offsets of topic " + stream.topic +
                                 " partition " + std::to_string(p) + " from " +
                                 stream.kafka_brokers + ": " + rd_kafka_err2str(e) +
                                 "; check that the partition has a leader");
    }
    report.partitions[p] = PartitionSummary{low, high, 0};
    if (low > 0) trimmed.insert(p);
    total += static_cast<uint64_t>(high - low);
    if (high > low) next[p] = low;
  }
  check.Progress(total);
  if (next.empty()) return check.Finish(trimmed);

  // Reads each partition of `next` from its offset up to `stop` (or the broker's end, when
  // records were removed meanwhile). Records a second look brings in are taken only if their seq
  // is at most `cut` of their source. No progress for `timeout` is an error.
  auto read_partitions = [&](rd_kafka_t* rk, std::map<int32_t, int64_t> next,
                             const std::map<int32_t, int64_t>& stop,
                             const std::map<std::string, uint64_t>* cut) -> Status {
    rd_kafka_topic_partition_list_t* list =
        rd_kafka_topic_partition_list_new(static_cast<int>(next.size()));
    for (const auto& [p, offset] : next) {
      rd_kafka_topic_partition_list_add(list, stream.topic.c_str(), p)->offset = offset;
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Status::Unavailable("assigning the partitions of topic " + stream.topic + ": " +
                                 rd_kafka_err2str(e));
    }
    auto finish_partition = [&](int32_t p) {
      next.erase(p);
      rd_kafka_topic_partition_list_t* one = rd_kafka_topic_partition_list_new(1);
      rd_kafka_topic_partition_list_add(one, stream.topic.c_str(), p);
      rd_kafka_pause_partitions(rk, one);
      rd_kafka_topic_partition_list_destroy(one);
    };
    auto last_progress = Clock::now();
    std::string last_error;
    uint64_t since_progress = 0;
    while (!next.empty()) {
      if (Clock::now() - last_progress > timeout) {
        std::string where;
        for (const auto& [p, offset] : next) {
          where += (where.empty() ? "" : ", ") + std::string("partition ") + std::to_string(p) +
                   " at offset " + std::to_string(offset) + " of " + std::to_string(stop.at(p));
        }
        return Status::Unavailable("reading topic " + stream.topic + " from " +
                                   stream.kafka_brokers + " stalled for " +
                                   std::to_string(timeout.count() / 1000) + " s (" + where + ")" +
                                   (last_error.empty() ? "" : "; last error: " + last_error) +
                                   "; check that the brokers are up");
      }
      rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
      if (m == nullptr) continue;
      std::unique_ptr<rd_kafka_message_t, void (*)(rd_kafka_message_t*)> held(
          m, rd_kafka_message_destroy);
      const int32_t p = m->partition;
      auto it = next.find(p);
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (it != next.end()) finish_partition(p);
        last_progress = Clock::now();
        continue;
      }
      if (m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
          m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
        return Status::NotFound("reading topic " + stream.topic + " partition " +
                                std::to_string(p) + ": " + rd_kafka_message_errstr(m));
      }
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        last_error = rd_kafka_message_errstr(m);
        spdlog::debug("gapcheck: Kafka: {}", last_error);
        continue;
      }
      if (it == next.end() || m->offset < it->second || m->offset >= stop.at(p)) continue;
      last_progress = Clock::now();
      it->second = m->offset + 1;
      PartitionSummary& summary = report.partitions[p];
      StreamPosition pos{p, m->offset};
      std::string_view bytes(static_cast<const char*>(m->payload), m->payload ? m->len : 0);
      v1::ChangeEvent ev;
      const bool decoded =
          m->payload != nullptr && ev.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
      const bool parsed = decoded && ev.seq() != 0;
      if (cut != nullptr) {
        summary.high = std::max(summary.high, m->offset + 1);
        auto limit = parsed ? cut->find(SourceId(ev)) : cut->end();
        if (limit != cut->end() && ev.seq() <= limit->second) {
          summary.records += 1;
          check.Add(pos, bytes, &ev, "");
        }
      } else {
        summary.records += 1;
        if (parsed) {
          check.Add(pos, bytes, &ev, "");
        } else if (m->payload == nullptr) {
          check.Add(pos, bytes, nullptr,
                    "the record has no value (a tombstone), not a ChangeEvent");
        } else if (!decoded) {
          check.Add(pos, bytes, nullptr,
                    "the record is not a ChangeEvent (" + std::to_string(bytes.size()) + " bytes)");
        } else {
          check.Add(pos, bytes, nullptr, "the record carries no seq");
        }
        if (++since_progress >= kProgressEvery) {
          since_progress = 0;
          check.Progress(total);
        }
      }
      if (it->second >= stop.at(p)) finish_partition(p);
    }
    return Status::Ok();
  };

  std::map<int32_t, int64_t> first_stop;
  for (const auto& [p, summary] : report.partitions) first_stop[p] = summary.high;
  LIFELINE_RETURN_IF_ERROR(read_partitions(rk, next, first_stop, nullptr));

  // A live producer writes partitions at slightly different moments, and the high watermarks were
  // taken one after the other: a partition looked at early may not yet hold seqs that a later one
  // is already past. A second look reads on where partitions grew, taking only seqs up to the
  // highest each source had reached, so the report stands for one consistent cut of the stream.
  if (partitions > 1) {
    std::map<int32_t, int64_t> again, again_stop;
    for (auto& [p, summary] : report.partitions) {
      int64_t low = 0, high = 0;
      if (rd_kafka_query_watermark_offsets(rk, stream.topic.c_str(), p, &low, &high,
                                           static_cast<int>(timeout.count())) ==
              RD_KAFKA_RESP_ERR_NO_ERROR &&
          high > summary.high) {
        again[p] = summary.high;
        again_stop[p] = high;
      }
    }
    if (!again.empty()) {
      // A consumer of its own: the first one paused the partitions it finished, and assigning
      // them again and resuming them raced librdkafka's handling of the new assignment (now and
      // then a partition never fetched and the second look stalled).
      LIFELINE_ASSIGN_OR_RETURN(Consumer second, OpenConsumer(stream));
      std::map<std::string, uint64_t> cut = check.HighestSeqs();
      LIFELINE_RETURN_IF_ERROR(read_partitions(second.get(), again, again_stop, &cut));
    }
  }
  check.Progress(total);
  return check.Finish(trimmed);
}

}  // namespace

Result<StreamReport> ScanStream(const StreamScanOptions& options) {
  const GapcheckStream& stream = options.stream;
  if (!stream.spool_dir.empty() && !stream.kafka_brokers.empty()) {
    return Status::InvalidArgument(
        "both a spool and Kafka brokers were given; check one stream at a time: pass either "
        "--spool or --kafka-brokers");
  }
  LIFELINE_ASSIGN_OR_RETURN(Keyring keyring, Keyring::Load(stream.encryption_key_files));
  if (!stream.spool_dir.empty()) return ScanSpool(options, keyring);
  if (!stream.kafka_brokers.empty()) return ScanKafka(options, keyring);
  return Status::InvalidArgument("no stream to check; pass --spool DIR or --kafka-brokers");
}

}  // namespace lifeline::gapcheck
