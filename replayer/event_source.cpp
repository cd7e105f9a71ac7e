// Spool and Kafka sources for the replayer.
#include "replayer/event_source.h"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <deque>
#include <thread>

#include "common/spool.h"

namespace lifeline::replayer {

std::string RecordPosition::Describe() const {
  if (topic.empty()) return "spool seq " + std::to_string(offset);
  return "topic " + topic + " partition " + std::to_string(partition) + " offset " +
         std::to_string(offset);
}

namespace {

SourcedEvent Parse(RecordPosition pos, std::string raw) {
  SourcedEvent out;
  out.position = std::move(pos);
  v1::ChangeEvent ev;
  if (!ev.ParseFromString(raw)) {
    out.error = "the record is not a ChangeEvent (" + std::to_string(raw.size()) + " bytes)";
  } else if (ev.seq() == 0) {
    out.error = "the record carries no seq";
  } else {
    out.event = std::move(ev);
  }
  out.raw = std::move(raw);
  return out;
}

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
    RecordPosition pos;
    pos.offset = static_cast<int64_t>(rec.seq);
    return std::optional<SourcedEvent>(Parse(pos, std::move(rec.bytes)));
  }

  std::map<int32_t, int64_t> NextOffsets() const override {
    return {{-1, static_cast<int64_t>(next_)}};
  }
  std::string topic() const override { return ""; }

 private:
  std::unique_ptr<Spool> spool_;
  std::string dir_;
  uint64_t next_;
  std::deque<SpoolRecord> buffer_;
};

struct KafkaConfDeleter {
  void operator()(rd_kafka_conf_t* c) const { rd_kafka_conf_destroy(c); }
};

class KafkaSource : public EventSource {
 public:
  ~KafkaSource() override {
    if (rk_ != nullptr) {
      rd_kafka_consumer_close(rk_);
      rd_kafka_destroy(rk_);
    }
  }

  Status Open(const KafkaSourceOptions& o) {
    options_ = o;
    expected_ = o.next_seq == 0 ? 1 : o.next_seq;
    std::unique_ptr<rd_kafka_conf_t, KafkaConfDeleter> conf(rd_kafka_conf_new());
    char err[512];
    auto set = [&](const std::string& k, const std::string& v, bool user) -> Status {
      if (rd_kafka_conf_set(conf.get(), k.c_str(), v.c_str(), err, sizeof err) !=
          RD_KAFKA_CONF_OK) {
        return Status::InvalidArgument("Kafka property '" + k + "': " + err +
                                       (user ? "; fix or remove this --kafka-property" : ""));
      }
      return Status::Ok();
    };
    LIFELINE_RETURN_IF_ERROR(set("bootstrap.servers", o.brokers, false));
    // Positions live in the target database, not in consumer-group commits.
    LIFELINE_RETURN_IF_ERROR(set("group.id", "lifeline-replayer", false));
    LIFELINE_RETURN_IF_ERROR(set("enable.auto.commit", "false", false));
    LIFELINE_RETURN_IF_ERROR(set("enable.auto.offset.store", "false", false));
    LIFELINE_RETURN_IF_ERROR(set("enable.partition.eof", "true", false));
    LIFELINE_RETURN_IF_ERROR(set("auto.offset.reset", "earliest", false));
    LIFELINE_RETURN_IF_ERROR(set("client.id", "lifeline-replayer", false));
    // Lag is what the replayer is judged on: do not let an idle partition hold a fetch long.
    LIFELINE_RETURN_IF_ERROR(set("fetch.wait.max.ms", "10", false));
    for (const auto& kv : o.properties) {
      size_t eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) {
        return Status::InvalidArgument("malformed --kafka-property '" + kv.substr(0, eq) +
                                       "': expected key=value");
      }
      LIFELINE_RETURN_IF_ERROR(set(kv.substr(0, eq), kv.substr(eq + 1), true));
    }
    rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), err, sizeof err);
    if (rk_ == nullptr) return Status::InvalidArgument(std::string("Kafka consumer: ") + err);
    conf.release();
    rd_kafka_poll_set_consumer(rk_);

    // Partitions from metadata; a missing topic is an error naming it.
    int partitions = 0;
    std::string last;
    for (int attempt = 0; attempt < 20 && partitions == 0; ++attempt) {
      rd_kafka_topic_t* t = rd_kafka_topic_new(rk_, o.topic.c_str(), nullptr);
      const rd_kafka_metadata_t* md = nullptr;
      rd_kafka_resp_err_t e = rd_kafka_metadata(rk_, 0, t, &md, 5000);
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
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
    for (int32_t p = 0; p < partitions; ++p) {
      auto it = o.start_offsets.find(p);
      rd_kafka_topic_partition_list_add(list, o.topic.c_str(), p)->offset =
          it != o.start_offsets.end() ? it->second : RD_KAFKA_OFFSET_BEGINNING;
      queues_[p];
      eof_[p] = false;
      consumed_[p] = it != o.start_offsets.end() ? it->second : 0;
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
      for (const auto& [p, eof] : eof_) all_eof = all_eof && eof && queues_[p].empty();
      *at_end = all_eof;
      auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return std::optional<SourcedEvent>();
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
      rd_kafka_message_t* m =
          rd_kafka_consumer_poll(rk_, static_cast<int>(std::min<int64_t>(left.count(), 100)));
      if (m == nullptr) continue;
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        eof_[m->partition] = true;
      } else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        spdlog::warn("replay: Kafka: {}", rd_kafka_message_errstr(m));
      } else {
        eof_[m->partition] = false;
        RecordPosition pos{options_.topic, m->partition, m->offset};
        std::string raw(static_cast<const char*>(m->payload), m->len);
        consumed_[m->partition] = m->offset + 1;
        queues_[m->partition].push_back(Parse(pos, std::move(raw)));
      }
      rd_kafka_message_destroy(m);
    }
  }

  std::map<int32_t, int64_t> NextOffsets() const override {
    std::map<int32_t, int64_t> out;
    for (const auto& [p, q] : queues_) {
      out[p] = q.empty() ? consumed_.at(p) : q.front().position.offset;
    }
    return out;
  }
  std::string topic() const override { return options_.topic; }

 private:
  // The next record in seq order, if it can be decided now.
  std::optional<SourcedEvent> TakeReady() {
    int32_t best = -1;
    uint64_t best_seq = UINT64_MAX;
    for (auto& [p, q] : queues_) {
      // Records below the expected seq are duplicates (a re-ship): pass them over.
      while (!q.empty() && q.front().event && q.front().event->seq() < expected_) q.pop_front();
      if (q.empty()) continue;
      if (!q.front().event) {  // poison: hand it over where it stands
        SourcedEvent bad = std::move(q.front());
        q.pop_front();
        return bad;
      }
      if (q.front().event->seq() < best_seq) {
        best_seq = q.front().event->seq();
        best = p;
      }
    }
    if (best < 0) return std::nullopt;
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
    }
    SourcedEvent ev = std::move(queues_[best].front());
    queues_[best].pop_front();
    expected_ = ev.event->seq() + 1;
    return ev;
  }

  KafkaSourceOptions options_;
  rd_kafka_t* rk_ = nullptr;
  std::map<int32_t, std::deque<SourcedEvent>> queues_;
  std::map<int32_t, bool> eof_;
  std::map<int32_t, int64_t> consumed_;
  uint64_t expected_ = 1;
  uint64_t waiting_for_ = 0;
  std::chrono::steady_clock::time_point waiting_since_;
};

}  // namespace

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
