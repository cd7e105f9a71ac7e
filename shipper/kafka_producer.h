// The protocol client of the shipper: a librdkafka idempotent producer (acks=all, lz4, murmur2
// partitioning as the Java client does) with topic set-up and delivery reports.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "shipper/kafka_record.h"

struct rd_kafka_s;
struct rd_kafka_topic_s;

namespace lifeline::shipper {

struct ProducerConfig {
  std::string brokers;
  std::string topic;
  // key=value librdkafka properties (security.protocol, sasl.*, ssl.*, ...); they override our
  // defaults, never the settings the delivery guarantee rests on (common/kafka_config.h).
  std::vector<std::string> properties;
  int partitions = 1;           // for a topic that does not exist yet
  int replication_factor = -1;  // -1: the cluster's default
};

// Called from Poll() with each record's seq and its outcome; "" on success, else the error name.
using DeliveryCallback = std::function<void(uint64_t seq, std::string_view error)>;

class KafkaProducer {
 public:
  ~KafkaProducer();
  // Fails with InvalidArgument naming the property when a property is unknown or invalid.
  [[nodiscard]] static Result<std::unique_ptr<KafkaProducer>> Create(const ProducerConfig& config,
                                                                     DeliveryCallback on_delivery);
  // Creates the topic with `partitions` and `replication_factor` if the cluster's topic list lacks
  // it (never by naming it in a metadata request, which auto-creates it on some clusters); uses an
  // existing one as it is, warning if its partition count differs. Retries while brokers are
  // unreachable up to `timeout_ms`.
  [[nodiscard]] Status EnsureTopic(int timeout_ms);
  // Enqueues a record. Unavailable("queue full") is backpressure: Poll and try again.
  [[nodiscard]] Status Produce(const KafkaRecord& record);
  // Serves delivery reports for up to `timeout_ms`.
  void Poll(int timeout_ms);
  // A fatal producer error (the idempotence guarantee broke): the producer must be replaced.
  [[nodiscard]] Status FatalError();
  size_t queue_length();
  // Waits for outstanding deliveries up to `timeout_ms`.
  void Flush(int timeout_ms);
  // Drops everything queued or in flight (before this producer is replaced after a failure, so
  // none of it lands after the re-shipped records).
  void Abandon();

 private:
  KafkaProducer() = default;
  static void OnDelivery(rd_kafka_s* rk, const void* message, void* opaque);
  rd_kafka_s* rk_ = nullptr;
  // Held for the producer's life: naming the topic in each produce call looks it up every time.
  rd_kafka_topic_s* rkt_ = nullptr;
  std::string topic_;
  ProducerConfig config_;
  DeliveryCallback on_delivery_;
  bool abandoned_ = false;
};

}  // namespace lifeline::shipper
