// devkafka: a Kafka-protocol cluster on loopback (librdkafka's in-memory mock brokers) for local
// runs and tests, with fault injection (brokers down, latency, request errors, leader moves).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

// Kept out of the header so users of devkafka need not see librdkafka.
struct rd_kafka_s;
struct rd_kafka_mock_cluster_s;

namespace lifeline {

struct DevKafkaOptions {
  int brokers = 3;
  std::vector<std::pair<std::string, int>> topics;  // name, partitions
  // When set, the bootstrap list is written here (atomically) once the cluster is serving.
  std::string bootstrap_file;
  // A daemon normally runs with stdin closed, so EOF on the control input does not stop it; a
  // supervisor that wants "stop when I go away" sets this.
  bool exit_on_input_eof = false;
  // Where control lines come from and replies (and the bootstrap line) go; tests use pipes.
  int input_fd = 0;
  int output_fd = 1;
};

// The mock brokers live on threads of an rd_kafka_t owned by this object; destroying it closes
// every listener. All methods may be called from any thread.
class DevKafkaCluster {
 public:
  static constexpr int kMaxBrokers = 32;

  ~DevKafkaCluster();
  DevKafkaCluster(const DevKafkaCluster&) = delete;
  DevKafkaCluster& operator=(const DevKafkaCluster&) = delete;

  // Brokers get ids 1..brokers and listen on 127.0.0.1 with ephemeral ports.
  [[nodiscard]] static Result<std::unique_ptr<DevKafkaCluster>> Start(int brokers);

  int broker_count() const { return broker_count_; }
  // "127.0.0.1:p1,127.0.0.1:p2,..." in broker id order.
  const std::string& bootstrap_servers() const { return bootstrap_servers_; }

  // The mock accepts any replication factor and always lists every broker as a replica; this
  // checks 1 <= replication_factor <= brokers so that callers' configs stay honest.
  [[nodiscard]] Status CreateTopic(const std::string& name, int partitions, int replication_factor);
  // A down broker drops its connections and refuses new ones; partition leadership does not move.
  [[nodiscard]] Status SetBrokerDown(int broker_id);
  [[nodiscard]] Status SetBrokerUp(int broker_id);
  [[nodiscard]] Status SetAllBrokersDown();
  [[nodiscard]] Status SetAllBrokersUp();
  // Adds rtt_ms of delay to every response; broker_id -1 means all brokers.
  [[nodiscard]] Status SetRoundTripTime(int broker_id, int rtt_ms);
  // The next `count` requests of `api` (Kafka name, e.g. "Produce", any case) to any broker fail
  // with `error_name`: a Kafka error name ("NOT_LEADER_OR_FOLLOWER"), a librdkafka name with or
  // without the RD_KAFKA_RESP_ERR_ prefix ("NOT_LEADER_FOR_PARTITION", "_TRANSPORT" to
  // disconnect), or a numeric code.
  // Produce errors and an idempotent producer with more than one request in flight do not mix. The
  // mock does not check a non-transactional producer's sequence numbers. It appends a batch sent
  // behind one that failed, and the client then counts the failed batch as delivered.
  [[nodiscard]] Status PushRequestErrors(const std::string& api, const std::string& error_name,
                                         int count);
  // Only for topics created through this object, so a typo cannot silently auto-create a topic.
  [[nodiscard]] Status SetPartitionLeader(const std::string& topic, int partition, int broker_id);

  // One control line, the same grammar wherever it comes from:
  //   down ID|all   up ID|all   rtt ID|all MS   errors API ERROR COUNT
  //   leader TOPIC PARTITION ID   topic NAME PARTITIONS [REPLICATION]   help
  // Returns a one-line reply starting with "ok", or InvalidArgument naming the bad word.
  [[nodiscard]] Result<std::string> ApplyControlLine(std::string_view line);

 private:
  DevKafkaCluster() = default;
  [[nodiscard]] Status CheckBrokerId(int broker_id, std::string_view what) const;

  rd_kafka_s* handle_ = nullptr;
  rd_kafka_mock_cluster_s* mock_ = nullptr;
  int broker_count_ = 0;
  std::string bootstrap_servers_;
  mutable std::mutex mu_;
  std::map<std::string, int> partitions_by_topic_;  // guarded by mu_
};

// The control grammar, for "help" replies and error messages.
std::string_view DevKafkaControlGrammar();

// The `lifeline devkafka` daemon body: starts the cluster, creates options.topics, writes the
// bootstrap list as one line to output_fd and to bootstrap_file, then answers control lines (one
// reply line each, "ok ..." or "error: ...") until SIGINT/SIGTERM, or input EOF when
// exit_on_input_eof. Returns Ok after a signal or that EOF.
[[nodiscard]] Status ServeDevKafka(const DevKafkaOptions& options);

}  // namespace lifeline
