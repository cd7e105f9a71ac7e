// librdkafka producer set-up, topic creation, produce and delivery reports.
#include "shipper/kafka_producer.h"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <thread>

#include "common/kafka_config.h"

namespace lifeline::shipper {

KafkaProducer::~KafkaProducer() {
  if (rk_ != nullptr) {
    if (!abandoned_) rd_kafka_flush(rk_, 2000);
    if (rkt_ != nullptr) rd_kafka_topic_destroy(rkt_);
    rd_kafka_destroy(rk_);
  }
}

void KafkaProducer::Abandon() {
  abandoned_ = true;
  rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_poll(rk_, 0);
}

void KafkaProducer::OnDelivery(rd_kafka_s* rk, const void* message, void* opaque) {
  const auto* m = static_cast<const rd_kafka_message_t*>(message);
  auto* self = static_cast<KafkaProducer*>(opaque);
  uint64_t seq = reinterpret_cast<uintptr_t>(m->_private);
  self->on_delivery_(seq,
                     m->err ? std::string_view(rd_kafka_err2name(m->err)) : std::string_view());
}

Result<std::unique_ptr<KafkaProducer>> KafkaProducer::Create(const ProducerConfig& config,
                                                             DeliveryCallback on_delivery) {
  if (config.brokers.empty()) return Status::InvalidArgument("no --kafka-brokers given");
  if (config.topic.empty()) return Status::InvalidArgument("no --topic given");
  const std::vector<KafkaProperty> defaults = {
      {"bootstrap.servers", config.brokers},
      {"compression.codec", "lz4"},
      {"linger.ms", "5"},
      // Java-compatible key hashing, so other clients agree on a key's partition.
      {"partitioner", "murmur2_random"},
      {"queue.buffering.max.messages", "200000"},
      {"client.id", "lifeline-shipper"},
      // Back within a second of the brokers' return (librdkafka's default backs off up to 10 s):
      // every second away after an outage adds to the recovery point.
      {"reconnect.backoff.max.ms", "1000"},
  };
  // What the delivery guarantee rests on is set after the user's properties, so none undoes it.
  LIFELINE_ASSIGN_OR_RETURN(
      KafkaConf conf,
      BuildKafkaConf(defaults, config.properties, FixedKafkaProperties(KafkaRole::kProducer)));
  std::unique_ptr<KafkaProducer> p(new KafkaProducer());
  p->config_ = config;
  p->topic_ = config.topic;
  p->on_delivery_ = std::move(on_delivery);
  rd_kafka_conf_set_opaque(conf.get(), p.get());
  rd_kafka_conf_set_dr_msg_cb(conf.get(), [](rd_kafka_t* rk, const rd_kafka_message_t* m,
                                             void* opaque) { OnDelivery(rk, m, opaque); });
  rd_kafka_conf_set_log_cb(conf.get(),
                           [](const rd_kafka_t*, int level, const char* fac, const char* buf) {
                             if (level <= 3) {
                               spdlog::warn("kafka {}: {}", fac, buf);
                             } else {
                               spdlog::debug("kafka {}: {}", fac, buf);
                             }
                           });
  char err[512];
  p->rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), err, sizeof err);
  if (p->rk_ == nullptr) return Status::InvalidArgument(std::string("Kafka producer: ") + err);
  conf.release();  // owned by rk_ now
  return p;
}

namespace {

// Partition count of `topic` from the all-topics metadata (0: absent), and the error name
// ("NO_ERROR" when the list was read). Asking for the topic by name would create it, with the
// broker's default partition count, on clusters that auto-create topics.
int TopicPartitions(rd_kafka_t* rk, const std::string& topic, std::string* error) {
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, nullptr, &md, 5000);
  int partitions = 0;
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < md->topic_cnt; ++i) {
      if (topic != md->topics[i].topic) continue;
      err = md->topics[i].err;
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) partitions = md->topics[i].partition_cnt;
      break;
    }
  }
  if (md != nullptr) rd_kafka_metadata_destroy(md);
  *error = rd_kafka_err2name(err);
  return partitions;
}

// CreateTopics through the admin API; the error code (NO_ERROR on success).
rd_kafka_resp_err_t CreateTopic(rd_kafka_t* rk, const std::string& topic, int partitions,
                                int replication_factor, std::string* message) {
  rd_kafka_NewTopic_t* nt =
      rd_kafka_NewTopic_new(topic.c_str(), partitions, replication_factor, nullptr, 0);
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t* opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_request_timeout(opts, 5000, nullptr, 0);
  rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 10'000);
  rd_kafka_resp_err_t code = RD_KAFKA_RESP_ERR__TIMED_OUT;
  *message = "no answer";
  if (ev != nullptr) {
    code = rd_kafka_event_error(ev);
    *message = rd_kafka_event_error_string(ev) ? rd_kafka_event_error_string(ev) : "";
    if (code == RD_KAFKA_RESP_ERR_NO_ERROR) {
      size_t n = 0;
      const rd_kafka_topic_result_t** topics =
          rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
      if (n == 1) {
        code = rd_kafka_topic_result_error(topics[0]);
        const char* e = rd_kafka_topic_result_error_string(topics[0]);
        *message = e ? e : "";
      }
    }
    rd_kafka_event_destroy(ev);
  }
  rd_kafka_AdminOptions_destroy(opts);
  rd_kafka_NewTopic_destroy(nt);
  rd_kafka_queue_destroy(q);
  return code;
}

}  // namespace

Status KafkaProducer::EnsureTopic(int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string last_error;
  bool create_tried = false;
  while (std::chrono::steady_clock::now() < deadline) {
    int partitions = TopicPartitions(rk_, topic_, &last_error);
    if (partitions > 0) {
      if (partitions != config_.partitions) {
        spdlog::warn(
            "topic {} exists with {} partition(s), not the {} of --topic-partitions (which applies "
            "only to a topic lifeline creates); using it as it is",
            topic_, partitions, config_.partitions);
      } else {
        spdlog::info("topic {} has {} partition(s)", topic_, partitions);
      }
      return Status::Ok();
    }
    // Absent from a list that was read: create it. A topic listed with an error (its leader being
    // elected, say) is waited for.
    if (!create_tried && last_error == "NO_ERROR") {
      create_tried = true;
      std::string message;
      rd_kafka_resp_err_t code =
          CreateTopic(rk_, topic_, config_.partitions, config_.replication_factor, &message);
      if (code == RD_KAFKA_RESP_ERR_NO_ERROR) {
        spdlog::info("created topic {} ({} partition(s))", topic_, config_.partitions);
        continue;
      }
      if (code == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) continue;  // made meanwhile elsewhere
      if (code == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
          code == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED ||
          code == RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR ||
          code == RD_KAFKA_RESP_ERR_INVALID_PARTITIONS ||
          code == RD_KAFKA_RESP_ERR_POLICY_VIOLATION) {
        return Status::InvalidArgument("cannot create topic " + topic_ + ": " +
                                       rd_kafka_err2name(code) + " " + message +
                                       "; create it beforehand or fix --topic-partitions / "
                                       "--topic-replication-factor");
      }
      spdlog::warn(
          "creating topic {}: {} {}; retrying (where clients may not create topics, create it "
          "beforehand with the partitions wanted)",
          topic_, rd_kafka_err2name(code), message);
      create_tried = false;  // transient (a broker down, a timeout): try again on the next round
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return Status::Unavailable("topic " + topic_ + " is not available on " + config_.brokers + ": " +
                             (last_error == "NO_ERROR" ? "not created in time" : last_error));
}

Status KafkaProducer::Produce(const KafkaRecord& record) {
  // Made on first use, after EnsureTopic: a topic handle asks the cluster for the topic by name,
  // which creates it with the broker's defaults where topics are auto-created.
  if (rkt_ == nullptr) {
    rkt_ = rd_kafka_topic_new(rk_, topic_.c_str(), nullptr);
    if (rkt_ == nullptr) {
      return Status::Unavailable("Kafka topic " + topic_ + ": " +
                                 rd_kafka_err2str(rd_kafka_last_error()));
    }
  }
  rd_kafka_headers_t* headers = rd_kafka_headers_new(5);  // ForEachHeader gives at most five
  ForEachHeader(record, [headers](std::string_view name, std::string_view value) {
    rd_kafka_header_add(headers, name.data(), static_cast<ssize_t>(name.size()), value.data(),
                        static_cast<ssize_t>(value.size()));
  });
  int32_t partition = record.key ? RD_KAFKA_PARTITION_UA : 0;
  const void* key = record.key ? record.key->data() : nullptr;
  size_t key_len = record.key ? record.key->size() : 0;
  rd_kafka_resp_err_t err = rd_kafka_producev(
      rk_, RD_KAFKA_V_RKT(rkt_), RD_KAFKA_V_PARTITION(partition),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
      RD_KAFKA_V_VALUE(const_cast<char*>(record.value.data()), record.value.size()),
      RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_TIMESTAMP(record.timestamp_ms),
      RD_KAFKA_V_HEADERS(headers),
      RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<uintptr_t>(record.seq))),
      RD_KAFKA_V_END);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    rd_kafka_headers_destroy(headers);  // ownership passes only on success
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) return Status::Unavailable("queue full");
    return Status::Unavailable(std::string("produce of seq ") + std::to_string(record.seq) +
                               " failed: " + rd_kafka_err2name(err));
  }
  return Status::Ok();
}

void KafkaProducer::Poll(int timeout_ms) {
  rd_kafka_poll(rk_, timeout_ms);
}

Status KafkaProducer::FatalError() {
  char err[512];
  rd_kafka_resp_err_t code = rd_kafka_fatal_error(rk_, err, sizeof err);
  if (code == RD_KAFKA_RESP_ERR_NO_ERROR) return Status::Ok();
  return Status::Unavailable(std::string("fatal producer error ") + rd_kafka_err2name(code) + ": " +
                             err);
}

size_t KafkaProducer::queue_length() {
  return static_cast<size_t>(rd_kafka_outq_len(rk_));
}

void KafkaProducer::Flush(int timeout_ms) {
  rd_kafka_flush(rk_, timeout_ms);
}

}  // namespace lifeline::shipper
