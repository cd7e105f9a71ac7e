// Spool and Kafka sources for the replayer.
#include "replayer/event_source.h"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <thread>

#include "common/event_format.h"
#include "common/kafka_config.h"
#include "common/lsn.h"
#include "common/spool.h"
#include "common/wire_reader.h"

namespace lifeline::replayer {

std::string RecordPosition::Describe() const {
  if (topic.empty()) return "spool seq " + std::to_string(offset);
  return "topic " + topic + " partition " + std::to_string(partition) + " offset " +
         std::to_string(offset);
}

namespace {

// Events come back once applied and are parsed into again: a cleared message keeps its strings
// and repeated fields, so reading at a steady pace allocates little.
class EventPool {
 public:
  SourcedEvent Parse(RecordPosition pos, std::string_view bytes) {
    SourcedEvent out;
    if (!free_.empty()) {
      out = std::move(free_.back());
      free_.pop_back();
    }
    out.position = std::move(pos);
    out.raw.clear();
    out.error.clear();
    if (!out.event) out.event.emplace();
    if (Status parsed = ParseRecord(bytes, &*out.event); !parsed.ok()) {
      out.error = parsed.message();
      out.event.reset();
    }
    // Kept only where a dead letter may need them: a record that did not parse, or sealed rows
    // that may yet fail to open.
    if (!out.event || out.event->has_sealed()) out.raw.assign(bytes.data(), bytes.size());
    return out;
  }
  void Recycle(SourcedEvent&& item) {
    if (item.event && free_.size() < kKept) free_.push_back(std::move(item));
  }

 private:
  static constexpr size_t kKept = 16384;  // a merge of many partitions may hold thousands
  std::vector<SourcedEvent> free_;
};

class SpoolSource : public EventSource {
 public:
  SpoolSource(std::unique_ptr<Spool> spool, std::string dir, uint64_t from_seq)
      : spool_(std::move(spool)), dir_(std::move(dir)), next_(from_seq == 0 ? 1 : from_seq) {
    uint64_t first = spool_->Stats().first_seq;
    if (first > next_) next_ = first;
  }

  Result<std::optional<SourcedEvent>> Next(std::chrono::milliseconds timeout,
                                           bool* at_end) override {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (buffer_.empty()) {
      LIFELINE_ASSIGN_OR_RETURN(auto batch, spool_->Read(next_, 1000));
      for (auto& rec : batch) buffer_.push_back(std::move(rec));
      if (!buffer_.empty()) break;
      *at_end = true;
      if (std::chrono::steady_clock::now() >= deadline) return std::optional<SourcedEvent>();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      LIFELINE_RETURN_IF_ERROR(spool_->Refresh());
    }
    *at_end = false;
    SpoolRecord rec = std::move(buffer_.front());
    buffer_.pop_front();
    next_ = rec.seq + 1;
    ++records_read_;
    RecordPosition pos;
    pos.offset = static_cast<int64_t>(rec.seq);
    return std::optional<SourcedEvent>(pool_.Parse(pos, rec.bytes));
  }

  std::map<int32_t, int64_t> NextOffsets() const override {
    return {{-1, static_cast<int64_t>(next_)}};
  }
  std::string topic() const override { return ""; }
  uint64_t records_read() const override { return records_read_; }
  void Recycle(SourcedEvent&& item) override { pool_.Recycle(std::move(item)); }

 private:
  EventPool pool_;
  std::unique_ptr<Spool> spool_;
  std::string dir_;
  uint64_t next_;
  uint64_t records_read_ = 0;
  std::deque<SpoolRecord> buffer_;
};

// Counts the client-level errors librdkafka reports outside any message (a broker unreachable,
// all brokers down): they reach the error callback, never the consumer's message stream.
void CountBrokerError(rd_kafka_t* /*rk*/, int err, const char* reason, void* opaque) {
  spdlog::warn("replay: Kafka: {}: {}", rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err)),
               reason);
  if (opaque != nullptr) static_cast<std::atomic<uint64_t>*>(opaque)->fetch_add(1);
}

// A consumer for manual assignment: positions live in the target database, not in consumer-group
// commits. `overrides` (for one kind of reader) replace ours; the user's properties come after.
// `broker_errors`, if given, counts the client's errors (it must outlive the consumer).
Result<rd_kafka_t*> NewConsumer(const KafkaSourceOptions& o,
                                const std::vector<std::pair<std::string, std::string>>& overrides,
                                std::atomic<uint64_t>* broker_errors = nullptr) {
  std::vector<KafkaProperty> defaults = {
      {"bootstrap.servers", o.brokers},
      {"group.id", "lifeline-replayer"},
      {"auto.offset.reset", "earliest"},
      {"client.id", "lifeline-replayer"},
      // Lag is what the replayer is judged on: do not let an idle partition hold a fetch long.
      {"fetch.wait.max.ms", "10"},
      // As the shipper: back within a second of the brokers' return.
      {"reconnect.backoff.max.ms", "1000"},
  };
  defaults.insert(defaults.end(), overrides.begin(), overrides.end());
  LIFELINE_ASSIGN_OR_RETURN(
      KafkaConf conf,
      BuildKafkaConf(defaults, o.properties, FixedKafkaProperties(KafkaRole::kConsumer)));
  rd_kafka_conf_set_error_cb(conf.get(), CountBrokerError);
  rd_kafka_conf_set_opaque(conf.get(), broker_errors);
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), err, sizeof err);
  if (rk == nullptr) return Status::InvalidArgument(std::string("Kafka consumer: ") + err);
  conf.release();
  rd_kafka_poll_set_consumer(rk);
  return rk;
}

// The merge into seq order needs a fetch of every partition in hand at once (the next seq may be
// in one partition's next batch while the others wait), so the consumer's queue must hold about
// two fetches per partition. librdkafka's defaults (64 MB and 100,000 messages for the whole
// queue) stop fetching short of that with many partitions, and the merge then stalls for a fetch
// backoff every few tens of thousands of events.
std::vector<std::pair<std::string, std::string>> MergeQueueSettings(int partitions) {
  const int64_t kbytes = std::clamp<int64_t>(int64_t{partitions} * 2048, 65536, 2097151);
  return {{"queued.max.messages.kbytes", std::to_string(kbytes)},
          {"queued.min.messages", "1000000"}};
}

// Partitions of the topic from metadata; a missing topic is an error naming it.
Result<int> PartitionCount(rd_kafka_t* rk, const KafkaSourceOptions& o) {
  int partitions = 0;
  std::string last;
  for (int attempt = 0; attempt < 20 && partitions == 0; ++attempt) {
    rd_kafka_topic_t* t = rd_kafka_topic_new(rk, o.topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, 5000);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1) {
      e = md->topics[0].err;
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) partitions = md->topics[0].partition_cnt;
    }
    if (md != nullptr) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    last = rd_kafka_err2name(e);
    if (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
      return Status::NotFound("topic " + o.topic + " does not exist on " + o.brokers +
                              "; check --topic");
    }
    if (partitions == 0) std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  if (partitions == 0) {
    return Status::Unavailable("cannot read the metadata of topic " + o.topic + " from " +
                               o.brokers + ": " + last);
  }
  return partitions;
}

// The seq of a serialized ChangeEvent (field 1), found without parsing the rest: a merge of many
// partitions holds records until their turn, and parsing them only then keeps that cheap. 0 if
// the bytes do not show one.
uint64_t PeekSeq(std::string_view bytes) {
  WireReader r(bytes);
  uint32_t field = 0;
  int wire_type = 0;
  uint64_t seq = 0;
  while (!r.done() && r.Tag(&field, &wire_type)) {
    if (field == 1 && wire_type == kVarint) return r.Varint(&seq) ? seq : 0;
    if (!r.Skip(wire_type)) return 0;
  }
  return 0;
}

class KafkaSource : public EventSource {
 public:
  ~KafkaSource() override {
    for (auto& q : partitions_) {
      for (auto& held : q.events) rd_kafka_message_destroy(held.message);
    }
    if (rk_ != nullptr) {
      rd_kafka_consumer_close(rk_);
      rd_kafka_destroy(rk_);
    }
  }

  Status Open(const KafkaSourceOptions& o) {
    options_ = o;
    expected_ = o.next_seq == 0 ? 1 : o.next_seq;
    LIFELINE_ASSIGN_OR_RETURN(rd_kafka_t * probe, NewConsumer(o, {}, &broker_errors_));
    Result<int> counted = PartitionCount(probe, o);
    rd_kafka_consumer_close(probe);
    rd_kafka_destroy(probe);
    LIFELINE_ASSIGN_OR_RETURN(int partitions, std::move(counted));
    LIFELINE_ASSIGN_OR_RETURN(rk_, NewConsumer(o, MergeQueueSettings(partitions), &broker_errors_));
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
    for (int32_t p = 0; p < partitions; ++p) {
      auto it = o.start_offsets.find(p);
      rd_kafka_topic_partition_list_add(list, o.topic.c_str(), p)->offset =
          it != o.start_offsets.end() ? it->second : RD_KAFKA_OFFSET_BEGINNING;
      partitions_.emplace_back().consumed = it != o.start_offsets.end() ? it->second : 0;
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(rk_, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Status::Unavailable(std::string("assigning partitions of ") + o.topic + ": " +
                                 rd_kafka_err2name(e));
    }
    return Status::Ok();
  }

  Result<std::optional<SourcedEvent>> Next(std::chrono::milliseconds timeout,
                                           bool* at_end) override {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      if (auto ready = TakeReady(); ready) {
        *at_end = false;
        return ready;
      }
      bool all_eof = true;
      for (const auto& q : partitions_) all_eof = all_eof && q.eof && q.events.empty();
      *at_end = all_eof;
      auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return std::optional<SourcedEvent>();
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
      rd_kafka_message_t* m =
          rd_kafka_consumer_poll(rk_, static_cast<int>(std::min<int64_t>(left.count(), 100)));
      NoteBrokerErrors();
      if (m == nullptr) continue;
      const bool assigned =
          m->partition >= 0 && static_cast<size_t>(m->partition) < partitions_.size();
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        spdlog::warn("replay: Kafka: {}", rd_kafka_message_errstr(m));
        ForgetPartitionEnds();
      } else if (assigned) {
        if (recovering_) {
          // The first fetch answered since the errors: the gap clock starts again from here,
          // since the producer may reach the brokers again later than this consumer did.
          recovering_ = false;
          waiting_since_ = std::chrono::steady_clock::now();
        }
        PartitionQueue& q = partitions_[static_cast<size_t>(m->partition)];
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
          q.eof = true;
        } else {
          q.eof = false;
          q.consumed = m->offset + 1;
          ++records_read_;
          // Held as it came, parsed when its turn comes: a record whose seq cannot be seen
          // (seq 0) does not parse either, and is handed over where it stands.
          q.events.push_back(HeldRecord{
              m, PeekSeq(std::string_view(static_cast<const char*>(m->payload), m->len))});
          m = nullptr;
        }
      }
      if (m != nullptr) rd_kafka_message_destroy(m);
    }
  }

  std::map<int32_t, int64_t> NextOffsets() const override {
    std::map<int32_t, int64_t> out;
    for (size_t p = 0; p < partitions_.size(); ++p) {
      const PartitionQueue& q = partitions_[p];
      out[static_cast<int32_t>(p)] =
          q.events.empty() ? q.consumed : q.events.front().message->offset;
    }
    return out;
  }
  std::string topic() const override { return options_.topic; }
  uint64_t records_read() const override { return records_read_; }
  void Recycle(SourcedEvent&& item) override { pool_.Recycle(std::move(item)); }

 private:
  // A seq is missing only after gap_timeout of reading without errors: while brokers are down,
  // the partition holding it may simply be out of reach, and what each partition's end was is
  // unknown again until it is fetched anew.
  void ForgetPartitionEnds() {
    waiting_since_ = std::chrono::steady_clock::now();
    recovering_ = true;
    for (auto& q : partitions_) q.eof = false;
  }
  void NoteBrokerErrors() {
    uint64_t errors = broker_errors_.load();
    if (errors == broker_errors_seen_) return;
    broker_errors_seen_ = errors;
    ForgetPartitionEnds();
  }

  EventPool pool_;
  // The next record in seq order, if it can be decided now.
  std::optional<SourcedEvent> TakeReady() {
    PartitionQueue* best = nullptr;
    uint64_t best_seq = UINT64_MAX;
    for (auto& partition : partitions_) {
      std::deque<HeldRecord>& q = partition.events;
      // Records below the expected seq are duplicates (a re-ship): pass them over.
      while (!q.empty() && q.front().seq != 0 && q.front().seq < expected_) {
        rd_kafka_message_destroy(q.front().message);
        q.pop_front();
      }
      if (q.empty()) continue;
      if (q.front().seq == 0) return Take(partition);  // poison: hand it over where it stands
      if (q.front().seq < best_seq) {
        best_seq = q.front().seq;
        best = &partition;
        // Nothing can come before the expected seq: the rest need not be looked at now (a
        // merge of many partitions would otherwise scan them all for every event).
        if (best_seq == expected_) break;
      }
    }
    if (best == nullptr) return std::nullopt;
    if (best_seq != expected_) {
      // A later seq: the expected one may still come from a partition that has not caught up.
      auto now = std::chrono::steady_clock::now();
      if (waiting_for_ != expected_) {
        waiting_for_ = expected_;
        waiting_since_ = now;
      }
      // Even with every partition at its end: a live producer writes partitions independently,
      // so the missing seq may still be on its way to another one.
      if (now - waiting_since_ < options_.gap_timeout) return std::nullopt;
      // And only once every partition that could still hold it has been read to its end since
      // (after an outage a partition may reconnect well after the others).
      for (const auto& q : partitions_) {
        if (q.events.empty() && !q.eof) return std::nullopt;
      }
    }
    std::optional<SourcedEvent> ev = Take(*best);
    if (ev->event) expected_ = ev->event->seq() + 1;
    return ev;
  }

  KafkaSourceOptions options_;
  rd_kafka_t* rk_ = nullptr;
  struct HeldRecord {
    rd_kafka_message_t* message;
    uint64_t seq;  // as PeekSeq saw it
  };
  struct PartitionQueue {
    std::deque<HeldRecord> events;  // read, not yet handed out
    bool eof = false;               // read to its end (since the last broker error)
    int64_t consumed = 0;           // offset after the last record read
  };
  std::vector<PartitionQueue> partitions_;  // indexed by partition
  // The record at the front of `q`, parsed.
  std::optional<SourcedEvent> Take(PartitionQueue& q) {
    rd_kafka_message_t* m = q.events.front().message;
    q.events.pop_front();
    SourcedEvent ev = pool_.Parse(RecordPosition{options_.topic, m->partition, m->offset},
                                  std::string_view(static_cast<const char*>(m->payload), m->len));
    rd_kafka_message_destroy(m);
    return ev;
  }
  uint64_t expected_ = 1;
  uint64_t records_read_ = 0;
  uint64_t waiting_for_ = 0;
  std::chrono::steady_clock::time_point waiting_since_;
  std::atomic<uint64_t> broker_errors_{0};
  uint64_t broker_errors_seen_ = 0;
  bool recovering_ = false;
};

// Reads single records at given offsets of a topic, for the survey: a consumer assigned to one
// partition at a time, fetching little, since each probe wants one record.
class OffsetReader {
 public:
  using Found = std::optional<std::pair<int64_t, v1::ChangeEvent>>;  // offset, event

  ~OffsetReader() {
    if (rk_ != nullptr) {
      rd_kafka_consumer_close(rk_);
      rd_kafka_destroy(rk_);
    }
  }

  Status Open(const KafkaSourceOptions& o) {
    options_ = o;
    LIFELINE_ASSIGN_OR_RETURN(rk_, NewConsumer(o, {{"max.partition.fetch.bytes", "65536"},
                                                   {"queued.min.messages", "1"}}));
    LIFELINE_ASSIGN_OR_RETURN(partitions_, PartitionCount(rk_, o));
    return Status::Ok();
  }
  int partitions() const { return partitions_; }
  uint64_t records_read() const { return records_read_; }

  // [low, high) of a partition.
  Result<std::pair<int64_t, int64_t>> Watermarks(int32_t p) {
    int64_t low = 0, high = 0;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int attempt = 0; attempt < 10; ++attempt) {
      e = rd_kafka_query_watermark_offsets(rk_, options_.topic.c_str(), p, &low, &high, 5000);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) return std::make_pair(low, high);
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
    return Status::Unavailable("cannot read the offsets of " + options_.topic + " partition " +
                               std::to_string(p) + " from " + options_.brokers + ": " +
                               rd_kafka_err2name(e));
  }

  // The broker's offsets-for-times answer per partition for `ts_ms` (the end offset where it
  // holds nothing that late); empty when the broker gives no answer.
  std::map<int32_t, int64_t> OffsetsForTimes(int64_t ts_ms) {
    std::map<int32_t, int64_t> out;
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions_);
    for (int32_t p = 0; p < partitions_; ++p) {
      rd_kafka_topic_partition_list_add(list, options_.topic.c_str(), p)->offset = ts_ms;
    }
    rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(rk_, list, 10'000);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      spdlog::info("replay: the broker gave no offsets-for-times answer ({}); searching offsets",
                   rd_kafka_err2name(e));
    } else {
      for (int i = 0; i < list->cnt; ++i) {
        const auto& tp = list->elems[i];
        if (tp.err == RD_KAFKA_RESP_ERR_NO_ERROR) out[tp.partition] = tp.offset;
      }
    }
    rd_kafka_topic_partition_list_destroy(list);
    return out;
  }

  // The first record at or after `offset` (and before `end`) that parses, with its offset.
  Result<Found> EventAt(int32_t p, int64_t offset, int64_t end) {
    if (offset >= end) return Found();
    auto key = std::make_pair(p, offset);
    if (auto it = cache_.find(key); it != cache_.end()) return it->second;
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, options_.topic.c_str(), p)->offset = offset;
    rd_kafka_resp_err_t e = rd_kafka_assign(rk_, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Status::Unavailable("reading " + options_.topic + " partition " + std::to_string(p) +
                                 " at offset " + std::to_string(offset) + ": " +
                                 rd_kafka_err2name(e));
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    int unparsed = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_, 100);
      if (m == nullptr) continue;
      std::unique_ptr<rd_kafka_message_t, void (*)(rd_kafka_message_t*)> hold(
          m, rd_kafka_message_destroy);
      if (m->partition != p) continue;
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return cache_[key] = Found();
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        spdlog::warn("replay: Kafka: {}", rd_kafka_message_errstr(m));
        continue;
      }
      if (m->offset < offset) continue;  // left over from an earlier probe
      if (m->offset >= end) return cache_[key] = Found();
      ++records_read_;
      v1::ChangeEvent ev;
      if (ParseRecord(std::string_view(static_cast<const char*>(m->payload), m->len), &ev).ok()) {
        return cache_[key] = Found(std::make_pair(m->offset, std::move(ev)));
      }
      if (++unparsed > 1000) break;  // a run of poison: give up on this probe
    }
    return Status::Unavailable("no record of " + options_.topic + " partition " +
                               std::to_string(p) + " at or after offset " + std::to_string(offset) +
                               " could be read from " + options_.brokers);
  }

 private:
  KafkaSourceOptions options_;
  rd_kafka_t* rk_ = nullptr;
  int partitions_ = 0;
  uint64_t records_read_ = 0;
  std::map<std::pair<int32_t, int64_t>, Found> cache_;
};

void Widen(HeldRange& held, const v1::ChangeEvent& ev) {
  if (held.empty || ev.seq() < held.first_seq) {
    held.first_seq = ev.seq();
    held.first_lsn = ev.commit_lsn();
    held.first_time_us = ev.commit_time_us();
  }
  if (held.empty || ev.seq() > held.last_seq) {
    held.last_seq = ev.seq();
    held.last_lsn = ev.commit_lsn();
    held.last_time_us = ev.commit_time_us();
  }
  held.empty = false;
}

// The smallest x in [low, high) whose event (the first that parses at or after x) is committed
// after `after_us`, or high. Commit times grow with offsets within a partition.
template <typename EventAtFn>
Result<int64_t> FirstAfter(int64_t low, int64_t high, int64_t after_us, EventAtFn event_at) {
  while (low < high) {
    int64_t mid = low + (high - low) / 2;
    LIFELINE_ASSIGN_OR_RETURN(auto found, event_at(mid));
    if (!found || found->second.commit_time_us() > after_us) {
      high = mid;
    } else {
      low = found->first + 1;
    }
  }
  return low;
}

}  // namespace

std::string HeldRange::Describe() const {
  if (empty) return "no events";
  std::string out = "seq " + std::to_string(first_seq) + ".." + std::to_string(last_seq) +
                    ", commit LSN " + Lsn(first_lsn).ToString() + ".." + Lsn(last_lsn).ToString() +
                    ", committed " + FormatTimestampUs(first_time_us) + " .. " +
                    FormatTimestampUs(last_time_us);
  if (!offsets.empty()) {
    out += ", offsets";
    for (const auto& [p, range] : offsets) {
      out += " " + std::to_string(p) + ":" + std::to_string(range.first) + ".." +
             std::to_string(range.second - 1);
    }
  }
  return out;
}

Result<TopicSurvey> SurveyTopic(const KafkaSourceOptions& options,
                                std::optional<int64_t> after_us) {
  OffsetReader reader;
  LIFELINE_RETURN_IF_ERROR(reader.Open(options));
  TopicSurvey survey;
  for (int32_t p = 0; p < reader.partitions(); ++p) {
    LIFELINE_ASSIGN_OR_RETURN(auto range, reader.Watermarks(p));
    survey.held.offsets[p] = range;
    auto [low, high] = range;
    LIFELINE_ASSIGN_OR_RETURN(auto first, reader.EventAt(p, low, high));
    if (first) Widen(survey.held, first->second);
    // The last record that parses: step back over any poison at the end.
    for (int64_t back = 1; first && back <= 64 && high - back >= low; back *= 2) {
      LIFELINE_ASSIGN_OR_RETURN(auto last, reader.EventAt(p, high - back, high));
      if (last) {
        Widen(survey.held, last->second);
        break;
      }
    }
  }
  if (after_us) {
    const int64_t t = *after_us;
    // The record timestamp is the commit time in whole milliseconds.
    const int64_t ts_ms = t >= 0 ? t / 1000 : -((-t + 999) / 1000);
    std::map<int32_t, int64_t> answer = reader.OffsetsForTimes(ts_ms);
    TimeStart start;
    for (int32_t p = 0; p < reader.partitions(); ++p) {
      auto [low, high] = survey.held.offsets[p];
      auto event_at = [&, high = high](int64_t x) { return reader.EventAt(p, x, high); };
      int64_t offset = -1;
      if (auto it = answer.find(p); it != answer.end()) {
        int64_t b = it->second < 0 ? high : it->second;  // -1: nothing that late
        // The answer holds if the record before it was committed by the time and the record at
        // it was not committed in an earlier millisecond.
        bool holds = b >= low && b <= high;
        if (holds && b > low) {
          LIFELINE_ASSIGN_OR_RETURN(auto before, event_at(b - 1));
          holds = before && before->first == b - 1 && before->second.commit_time_us() <= t;
        }
        if (holds && b < high) {
          LIFELINE_ASSIGN_OR_RETURN(auto at, event_at(b));
          holds = at && at->second.commit_time_us() / 1000 >= ts_ms;
        }
        if (holds) offset = b;
      }
      if (offset < 0) {
        start.searched.push_back(p);
        LIFELINE_ASSIGN_OR_RETURN(offset, FirstAfter(low, high, t, event_at));
      }
      start.offsets[p] = offset;
      LIFELINE_ASSIGN_OR_RETURN(auto at, event_at(offset));
      if (at && (start.first_seq == 0 || at->second.seq() < start.first_seq)) {
        start.first_seq = at->second.seq();
      }
    }
    survey.time_start = std::move(start);
  }
  survey.records_read = reader.records_read();
  return survey;
}

Result<TopicSurvey> SurveySpool(const std::string& dir, std::optional<int64_t> after_us) {
  LIFELINE_ASSIGN_OR_RETURN(auto spool, Spool::OpenForRead(dir));
  TopicSurvey survey;
  SpoolStats stats = spool->Stats();
  using Found = std::optional<std::pair<int64_t, v1::ChangeEvent>>;
  // Seq is dense in a spool; a record that does not parse is passed for the next one.
  auto event_at = [&](int64_t seq) -> Result<Found> {
    LIFELINE_ASSIGN_OR_RETURN(auto batch, spool->Read(static_cast<uint64_t>(seq), 8));
    for (const auto& rec : batch) {
      if (rec.seq > stats.last_seq) break;
      ++survey.records_read;
      auto ev = ParseEvent(rec);
      if (ev.ok()) return Found(std::make_pair(static_cast<int64_t>(rec.seq), *std::move(ev)));
    }
    return Found();
  };
  if (stats.first_seq == 0 || stats.last_seq < stats.first_seq) return survey;
  const int64_t low = static_cast<int64_t>(stats.first_seq);
  const int64_t high = static_cast<int64_t>(stats.last_seq) + 1;
  LIFELINE_ASSIGN_OR_RETURN(auto first, event_at(low));
  if (first) Widen(survey.held, first->second);
  LIFELINE_ASSIGN_OR_RETURN(auto last, event_at(high - 1));
  if (last) Widen(survey.held, last->second);
  if (after_us) {
    TimeStart start;
    LIFELINE_ASSIGN_OR_RETURN(int64_t seq, FirstAfter(low, high, *after_us, event_at));
    start.offsets[-1] = seq;
    if (seq < high) start.first_seq = static_cast<uint64_t>(seq);
    survey.time_start = std::move(start);
  }
  return survey;
}

Result<std::unique_ptr<EventSource>> OpenSpoolSource(const std::string& dir, uint64_t from_seq) {
  LIFELINE_ASSIGN_OR_RETURN(auto spool, Spool::OpenForRead(dir));
  return std::unique_ptr<EventSource>(new SpoolSource(std::move(spool), dir, from_seq));
}

Result<std::unique_ptr<EventSource>> OpenKafkaSource(const KafkaSourceOptions& options) {
  auto source = std::make_unique<KafkaSource>();
  LIFELINE_RETURN_IF_ERROR(source->Open(options));
  return std::unique_ptr<EventSource>(std::move(source));
}

}  // namespace lifeline::replayer
