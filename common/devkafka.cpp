// devkafka on librdkafka's mock cluster: name lookups for Kafka APIs and errors, the control-line
// grammar, and the daemon loop that serves control lines until a signal arrives.
#include "common/devkafka.h"

#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <optional>

namespace lifeline {
namespace {

constexpr int kMaxPartitions = 1000;
constexpr int kMaxErrorCount = 10000;
constexpr int kMaxRttMs = 600'000;
constexpr size_t kMaxLineBytes = 4096;

constexpr std::string_view kGrammar =
    "down ID|all | up ID|all | rtt ID|all MS | errors API ERROR COUNT | "
    "leader TOPIC PARTITION ID | topic NAME PARTITIONS [REPLICATION] | help";

// The requests the 2.0.2 mock broker implements; errors pushed for any other API would never fire.
struct ApiName {
  std::string_view name;
  int16_t key;
};
constexpr ApiName kMockApis[] = {
    {"Produce", 0},          {"Fetch", 1},
    {"ListOffsets", 2},      {"Metadata", 3},
    {"OffsetCommit", 8},     {"OffsetFetch", 9},
    {"FindCoordinator", 10}, {"JoinGroup", 11},
    {"Heartbeat", 12},       {"LeaveGroup", 13},
    {"SyncGroup", 14},       {"ApiVersions", 18},
    {"InitProducerId", 22},  {"AddPartitionsToTxn", 24},
    {"AddOffsetsToTxn", 25}, {"EndTxn", 26},
    {"TxnOffsetCommit", 28},
};

// Kafka's own error names where librdkafka kept an older spelling.
struct ErrorAlias {
  std::string_view kafka;
  std::string_view librdkafka;
};
constexpr ErrorAlias kErrorAliases[] = {
    {"NOT_LEADER_OR_FOLLOWER", "NOT_LEADER_FOR_PARTITION"},
    {"UNKNOWN_TOPIC_OR_PARTITION", "UNKNOWN_TOPIC_OR_PART"},
    {"MESSAGE_TOO_LARGE", "MSG_SIZE_TOO_LARGE"},
    {"CORRUPT_MESSAGE", "INVALID_MSG"},
    {"INVALID_FETCH_SIZE", "INVALID_MSG_SIZE"},
    {"COORDINATOR_NOT_AVAILABLE", "COORDINATOR_NOT_AVAILABLE"},
    {"NOT_COORDINATOR", "NOT_COORDINATOR"},
};

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && Upper(a) == Upper(b);
}

// A word from the user, quoted for an error message: non-printable bytes escaped and long words
// cut, so a reply stays one readable line whatever was typed.
std::string Quote(std::string_view word) {
  constexpr size_t kMaxShown = 64;
  std::string out = "'";
  for (size_t i = 0; i < word.size() && i < kMaxShown; ++i) {
    unsigned char c = static_cast<unsigned char>(word[i]);
    if (std::isprint(c)) {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  if (word.size() > kMaxShown) out += "...";
  return out + "'";
}

std::optional<int> ParseInt(std::string_view word) {
  int value = 0;
  auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), value);
  if (ec != std::errc() || end != word.data() + word.size()) return std::nullopt;
  return value;
}

std::string ApiList() {
  std::string out;
  for (const auto& api : kMockApis) {
    if (!out.empty()) out += ",";
    out += api.name;
  }
  return out;
}

Result<int16_t> ParseApi(std::string_view word) {
  for (const auto& api : kMockApis) {
    if (EqualsIgnoreCase(api.name, word)) return api.key;
  }
  return Status::InvalidArgument("unknown Kafka API " + Quote(word) + "'; the mock implements " +
                                 ApiList());
}

Result<rd_kafka_resp_err_t> ParseErrorName(std::string_view word) {
  const rd_kafka_err_desc* descs = nullptr;
  size_t count = 0;
  rd_kafka_get_err_descs(&descs, &count);
  auto known = [&](int code) -> const rd_kafka_err_desc* {
    for (size_t i = 0; i < count; ++i) {
      if (descs[i].name != nullptr && descs[i].code == code) return &descs[i];
    }
    return nullptr;
  };
  const rd_kafka_err_desc* found = nullptr;
  if (auto code = ParseInt(word)) {
    found = known(*code);
  } else {
    std::string name = Upper(word);
    constexpr std::string_view kPrefix = "RD_KAFKA_RESP_ERR_";
    if (name.starts_with(kPrefix)) name.erase(0, kPrefix.size());
    for (const auto& alias : kErrorAliases) {
      if (name == alias.kafka) name = alias.librdkafka;
    }
    for (size_t i = 0; i < count && found == nullptr; ++i) {
      if (descs[i].name != nullptr && name == descs[i].name) found = &descs[i];
    }
  }
  if (found == nullptr) {
    return Status::InvalidArgument("unknown Kafka error " + Quote(word) +
                                   " (use a name like NOT_LEADER_OR_FOLLOWER or a code)");
  }
  // Local (negative) codes mean nothing on the wire, except _TRANSPORT, which makes the mock
  // broker drop the connection; NO_ERROR would silently use up the count.
  if (found->code == RD_KAFKA_RESP_ERR_NO_ERROR ||
      (found->code < 0 && found->code != RD_KAFKA_RESP_ERR__TRANSPORT)) {
    return Status::InvalidArgument("error " + Quote(word) +
                                   " cannot be injected: use a Kafka error or _TRANSPORT");
  }
  return found->code;
}

bool ValidTopicName(std::string_view name) {
  if (name.empty() || name.size() > 249 || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

Status MockError(rd_kafka_resp_err_t err, std::string_view what) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return Status::Ok();
  return Status::InvalidArgument(std::string(what) + ": " + rd_kafka_err2name(err));
}

// librdkafka's own log lines; its chatter is debug-level so it never pollutes a daemon's stdout.
void LogFromLibrdkafka(const rd_kafka_t*, int level, const char* fac, const char* buf) {
  if (level <= 3) {
    spdlog::error("devkafka: librdkafka {}: {}", fac, buf);
  } else if (level == 4) {
    spdlog::warn("devkafka: librdkafka {}: {}", fac, buf);
  } else {
    spdlog::debug("devkafka: librdkafka {}: {}", fac, buf);
  }
}

std::vector<std::string_view> SplitWords(std::string_view line) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    size_t start = i;
    while (i < line.size() && !std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    if (i > start) words.push_back(line.substr(start, i - start));
  }
  return words;
}

Status Usage(std::string problem) {
  return Status::InvalidArgument(std::move(problem) + "; expected: " + std::string(kGrammar));
}

}  // namespace

std::string_view DevKafkaControlGrammar() {
  return kGrammar;
}

DevKafkaCluster::~DevKafkaCluster() {
  // The mock cluster must go before the handle it lives in.
  if (mock_ != nullptr) rd_kafka_mock_cluster_destroy(mock_);
  if (handle_ != nullptr) rd_kafka_destroy(handle_);
}

Result<std::unique_ptr<DevKafkaCluster>> DevKafkaCluster::Start(int brokers) {
  if (brokers < 1 || brokers > kMaxBrokers) {
    return Status::InvalidArgument("devkafka: broker count " + std::to_string(brokers) +
                                   " is outside 1.." + std::to_string(kMaxBrokers));
  }
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set_log_cb(conf, LogFromLibrdkafka);
  char errstr[512];
  // A producer with no bootstrap servers never connects anywhere: it only hosts the mock.
  rd_kafka_t* handle = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (handle == nullptr) {
    rd_kafka_conf_destroy(conf);
    return Status::Internal(std::string("devkafka: rd_kafka_new: ") + errstr);
  }
  std::unique_ptr<DevKafkaCluster> cluster(new DevKafkaCluster());
  cluster->handle_ = handle;
  cluster->mock_ = rd_kafka_mock_cluster_new(handle, brokers);
  if (cluster->mock_ == nullptr) {
    return Status::IOError("devkafka: cannot start the mock cluster (listen on 127.0.0.1 failed?)");
  }
  cluster->broker_count_ = brokers;
  cluster->bootstrap_servers_ = rd_kafka_mock_cluster_bootstraps(cluster->mock_);
  spdlog::debug("devkafka: {} brokers at {}", brokers, cluster->bootstrap_servers_);
  return cluster;
}

Status DevKafkaCluster::CheckBrokerId(int broker_id, std::string_view what) const {
  if (broker_id < 1 || broker_id > broker_count_) {
    return Status::InvalidArgument(std::string(what) + ": broker id " + std::to_string(broker_id) +
                                   " is outside 1.." + std::to_string(broker_count_));
  }
  return Status::Ok();
}

Status DevKafkaCluster::CreateTopic(const std::string& name, int partitions,
                                    int replication_factor) {
  if (!ValidTopicName(name)) {
    return Status::InvalidArgument("topic: " + Quote(name) +
                                   " is not a Kafka topic name ([A-Za-z0-9._-], 1..249 chars)");
  }
  if (partitions < 1 || partitions > kMaxPartitions) {
    return Status::InvalidArgument("topic " + name + ": partition count " +
                                   std::to_string(partitions) + " is outside 1.." +
                                   std::to_string(kMaxPartitions));
  }
  if (replication_factor < 1 || replication_factor > broker_count_) {
    return Status::InvalidArgument("topic " + name + ": replication factor " +
                                   std::to_string(replication_factor) + " is outside 1.." +
                                   std::to_string(broker_count_));
  }
  std::lock_guard lock(mu_);
  LIFELINE_RETURN_IF_ERROR(
      MockError(rd_kafka_mock_topic_create(mock_, name.c_str(), partitions, replication_factor),
                "topic " + name));
  partitions_by_topic_[name] = partitions;
  return Status::Ok();
}

Status DevKafkaCluster::SetBrokerDown(int broker_id) {
  LIFELINE_RETURN_IF_ERROR(CheckBrokerId(broker_id, "down"));
  return MockError(rd_kafka_mock_broker_set_down(mock_, broker_id), "down");
}

Status DevKafkaCluster::SetBrokerUp(int broker_id) {
  LIFELINE_RETURN_IF_ERROR(CheckBrokerId(broker_id, "up"));
  return MockError(rd_kafka_mock_broker_set_up(mock_, broker_id), "up");
}

Status DevKafkaCluster::SetAllBrokersDown() {
  return MockError(rd_kafka_mock_broker_set_down(mock_, -1), "down all");
}

Status DevKafkaCluster::SetAllBrokersUp() {
  return MockError(rd_kafka_mock_broker_set_up(mock_, -1), "up all");
}

Status DevKafkaCluster::SetRoundTripTime(int broker_id, int rtt_ms) {
  if (broker_id != -1) LIFELINE_RETURN_IF_ERROR(CheckBrokerId(broker_id, "rtt"));
  if (rtt_ms < 0 || rtt_ms > kMaxRttMs) {
    return Status::InvalidArgument("rtt: " + std::to_string(rtt_ms) + " ms is outside 0.." +
                                   std::to_string(kMaxRttMs));
  }
  return MockError(rd_kafka_mock_broker_set_rtt(mock_, broker_id, rtt_ms), "rtt");
}

Status DevKafkaCluster::PushRequestErrors(const std::string& api, const std::string& error_name,
                                          int count) {
  LIFELINE_ASSIGN_OR_RETURN(int16_t api_key, ParseApi(api));
  LIFELINE_ASSIGN_OR_RETURN(rd_kafka_resp_err_t err, ParseErrorName(error_name));
  if (count < 1 || count > kMaxErrorCount) {
    return Status::InvalidArgument("errors: count " + std::to_string(count) + " is outside 1.." +
                                   std::to_string(kMaxErrorCount));
  }
  std::vector<rd_kafka_resp_err_t> errors(static_cast<size_t>(count), err);
  rd_kafka_mock_push_request_errors_array(mock_, api_key, errors.size(), errors.data());
  return Status::Ok();
}

Status DevKafkaCluster::SetPartitionLeader(const std::string& topic, int partition, int broker_id) {
  LIFELINE_RETURN_IF_ERROR(CheckBrokerId(broker_id, "leader"));
  std::lock_guard lock(mu_);
  auto it = partitions_by_topic_.find(topic);
  if (it == partitions_by_topic_.end()) {
    return Status::InvalidArgument("leader: topic '" + topic +
                                   "' was not created by devkafka (use: topic NAME PARTITIONS)");
  }
  if (partition < 0 || partition >= it->second) {
    return Status::InvalidArgument("leader: partition " + std::to_string(partition) +
                                   " is outside 0.." + std::to_string(it->second - 1) +
                                   " of topic " + topic);
  }
  return MockError(rd_kafka_mock_partition_set_leader(mock_, topic.c_str(), partition, broker_id),
                   "leader");
}

Result<std::string> DevKafkaCluster::ApplyControlLine(std::string_view line) {
  std::vector<std::string_view> words = SplitWords(line);
  if (words.empty()) return Usage("empty control line");
  const std::string command = Upper(words[0]);
  const size_t args = words.size() - 1;
  auto want_args = [&](size_t min, size_t max) -> Status {
    if (args >= min && args <= max) return Status::Ok();
    return Usage(Quote(words[0]) + " takes " + std::to_string(min) +
                 (max != min ? "-" + std::to_string(max) : "") + " arguments, got " +
                 std::to_string(args));
  };
  // "all" maps to -1, which is what the mock API uses for every broker.
  auto broker_word = [&](std::string_view word) -> Result<int> {
    if (EqualsIgnoreCase(word, "all")) return -1;
    std::optional<int> id = ParseInt(word);
    if (!id || *id < 1 || *id > broker_count_) {
      return Usage(Quote(word) + " is not a broker id (1.." + std::to_string(broker_count_) +
                   " or all)");
    }
    return *id;
  };
  auto int_word = [&](std::string_view word, std::string_view what) -> Result<int> {
    std::optional<int> value = ParseInt(word);
    if (!value) return Usage(Quote(word) + " is not a number (" + std::string(what) + ")");
    return *value;
  };

  if (command == "HELP") return "ok " + std::string(kGrammar);
  if (command == "DOWN" || command == "UP") {
    LIFELINE_RETURN_IF_ERROR(want_args(1, 1));
    LIFELINE_ASSIGN_OR_RETURN(int id, broker_word(words[1]));
    const bool down = command == "DOWN";
    if (id == -1) {
      LIFELINE_RETURN_IF_ERROR(down ? SetAllBrokersDown() : SetAllBrokersUp());
      return std::string("ok all brokers ") + (down ? "down" : "up");
    }
    LIFELINE_RETURN_IF_ERROR(down ? SetBrokerDown(id) : SetBrokerUp(id));
    return "ok broker " + std::to_string(id) + (down ? " down" : " up");
  }
  if (command == "RTT") {
    LIFELINE_RETURN_IF_ERROR(want_args(2, 2));
    LIFELINE_ASSIGN_OR_RETURN(int id, broker_word(words[1]));
    LIFELINE_ASSIGN_OR_RETURN(int ms, int_word(words[2], "milliseconds"));
    LIFELINE_RETURN_IF_ERROR(SetRoundTripTime(id, ms));
    return (id == -1 ? std::string("ok all brokers") : "ok broker " + std::to_string(id)) +
           " rtt " + std::to_string(ms) + " ms";
  }
  if (command == "ERRORS") {
    LIFELINE_RETURN_IF_ERROR(want_args(3, 3));
    LIFELINE_ASSIGN_OR_RETURN(int count, int_word(words[3], "count"));
    LIFELINE_RETURN_IF_ERROR(
        PushRequestErrors(std::string(words[1]), std::string(words[2]), count));
    return "ok next " + std::to_string(count) + " " + std::string(words[1]) +
           " requests fail with " + std::string(words[2]);
  }
  if (command == "LEADER") {
    LIFELINE_RETURN_IF_ERROR(want_args(3, 3));
    LIFELINE_ASSIGN_OR_RETURN(int partition, int_word(words[2], "partition"));
    LIFELINE_ASSIGN_OR_RETURN(int id, broker_word(words[3]));
    if (id == -1) return Usage("leader needs one broker id, not 'all'");
    const std::string topic(words[1]);
    LIFELINE_RETURN_IF_ERROR(SetPartitionLeader(topic, partition, id));
    return "ok " + topic + " [" + std::to_string(partition) + "] leader " + std::to_string(id);
  }
  if (command == "TOPIC") {
    LIFELINE_RETURN_IF_ERROR(want_args(2, 3));
    LIFELINE_ASSIGN_OR_RETURN(int partitions, int_word(words[2], "partitions"));
    int replication = std::min(3, broker_count_);
    if (args == 3) {
      LIFELINE_ASSIGN_OR_RETURN(replication, int_word(words[3], "replication factor"));
    }
    const std::string topic(words[1]);
    LIFELINE_RETURN_IF_ERROR(CreateTopic(topic, partitions, replication));
    return "ok topic " + topic + " partitions " + std::to_string(partitions) + " replication " +
           std::to_string(replication);
  }
  return Usage("unknown command " + Quote(words[0]));
}

namespace {

// The write end of the self-pipe that turns SIGINT/SIGTERM into a readable fd for poll().
std::atomic<int> g_signal_pipe_write{-1};
std::atomic<bool> g_serving{false};

extern "C" void WakeOnSignal(int sig) {
  int fd = g_signal_pipe_write.load();
  if (fd >= 0) {
    char byte = static_cast<char>(sig);
    ssize_t ignored = write(fd, &byte, 1);
    (void)ignored;
  }
}

Status WriteAll(int fd, const std::string& text) {
  size_t off = 0;
  while (off < text.size()) {
    ssize_t w = write(fd, text.data() + off, text.size() - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::IOError(std::string("devkafka: write: ") + strerror(errno));
    }
    off += static_cast<size_t>(w);
  }
  return Status::Ok();
}

// Temp file + rename, so a test polling for the file never reads half a line.
Status WriteFileAtomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError("devkafka: cannot create " + tmp + ": " + strerror(errno));
  Status st = WriteAll(fd, text);
  if (close(fd) != 0 && st.ok())
    st = Status::IOError("devkafka: close " + tmp + ": " + strerror(errno));
  if (st.ok() && rename(tmp.c_str(), path.c_str()) != 0) {
    st = Status::IOError("devkafka: cannot rename " + tmp + " to " + path + ": " + strerror(errno));
  }
  if (!st.ok()) unlink(tmp.c_str());
  return st;
}

// Installs the signal handlers for the life of ServeDevKafka and puts the old ones back after.
class SignalWake {
 public:
  SignalWake() = default;
  SignalWake(const SignalWake&) = delete;
  SignalWake& operator=(const SignalWake&) = delete;
  ~SignalWake() {
    if (installed_) {
      sigaction(SIGINT, &old_int_, nullptr);
      sigaction(SIGTERM, &old_term_, nullptr);
    }
    g_signal_pipe_write.store(-1);
    if (fds_[0] >= 0) close(fds_[0]);
    if (fds_[1] >= 0) close(fds_[1]);
  }
  Status Install() {
    if (pipe2(fds_, O_CLOEXEC | O_NONBLOCK) != 0) {
      return Status::IOError(std::string("devkafka: pipe: ") + strerror(errno));
    }
    g_signal_pipe_write.store(fds_[1]);
    struct sigaction action = {};
    action.sa_handler = WakeOnSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
    installed_ = true;
    return Status::Ok();
  }
  int read_fd() const { return fds_[0]; }

 private:
  int fds_[2] = {-1, -1};
  bool installed_ = false;
  struct sigaction old_int_ = {};
  struct sigaction old_term_ = {};
};

}  // namespace

Status ServeDevKafka(const DevKafkaOptions& options) {
  // Signal handlers are process-wide, so only one daemon loop may own them.
  if (g_serving.exchange(true)) {
    return Status::FailedPrecondition("devkafka: ServeDevKafka is already running in this process");
  }
  struct ServingFlag {
    ~ServingFlag() { g_serving.store(false); }
  } serving_flag;

  SignalWake wake;
  LIFELINE_RETURN_IF_ERROR(wake.Install());
  LIFELINE_ASSIGN_OR_RETURN(std::unique_ptr<DevKafkaCluster> cluster,
                            DevKafkaCluster::Start(options.brokers));
  for (const auto& [name, partitions] : options.topics) {
    LIFELINE_RETURN_IF_ERROR(cluster->CreateTopic(name, partitions, std::min(3, options.brokers)));
  }
  // A daemon's stdout may be closed or /dev/null; losing a reply must not stop the cluster.
  bool output_warned = false;
  auto emit = [&](const std::string& text) {
    Status st = WriteAll(options.output_fd, text);
    if (!st.ok() && !output_warned) {
      spdlog::warn("devkafka: cannot write replies: {}", st.message());
      output_warned = true;
    }
  };
  auto answer = [&](const std::string& line) {
    if (SplitWords(line).empty()) return;
    Result<std::string> reply = cluster->ApplyControlLine(line);
    std::string out = reply.ok() ? *reply : "error: " + reply.status().message();
    spdlog::debug("devkafka: '{}' -> {}", line, out);
    emit(out + "\n");
  };
  const std::string boot_line = cluster->bootstrap_servers() + "\n";
  emit(boot_line);
  if (!options.bootstrap_file.empty()) {
    LIFELINE_RETURN_IF_ERROR(WriteFileAtomically(options.bootstrap_file, boot_line));
  }
  spdlog::info("devkafka: {} brokers at {}", options.brokers, cluster->bootstrap_servers());

  bool input_open = options.input_fd >= 0;
  std::string pending;
  bool discarding = false;  // inside an over-long line, dropping bytes until its newline
  char buf[4096];
  for (;;) {
    pollfd fds[2] = {{wake.read_fd(), POLLIN, 0}, {options.input_fd, POLLIN, 0}};
    int rc = poll(fds, input_open ? 2 : 1, -1);
    if (rc < 0) {
      if (errno == EINTR) continue;
      return Status::IOError(std::string("devkafka: poll: ") + strerror(errno));
    }
    if (fds[0].revents != 0) {
      spdlog::info("devkafka: stopping on signal");
      return Status::Ok();
    }
    if (!input_open || fds[1].revents == 0) continue;
    ssize_t n = (fds[1].revents & POLLNVAL) ? 0 : read(options.input_fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      input_open = false;
      if (!discarding) answer(pending);  // a last line without its newline
      pending.clear();
      if (options.exit_on_input_eof) {
        spdlog::info("devkafka: stopping at end of control input");
        return Status::Ok();
      }
      continue;
    }
    pending.append(buf, static_cast<size_t>(n));
    size_t newline;
    while ((newline = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, newline);
      pending.erase(0, newline + 1);
      if (discarding) {
        discarding = false;  // the tail of a line already reported as too long
      } else if (line.size() > kMaxLineBytes) {
        emit("error: control line longer than " + std::to_string(kMaxLineBytes) + " bytes\n");
      } else {
        answer(line);
      }
    }
    if (pending.size() > kMaxLineBytes) {
      pending.clear();
      if (!discarding) {
        discarding = true;
        emit("error: control line longer than " + std::to_string(kMaxLineBytes) + " bytes\n");
      }
    }
  }
}

}  // namespace lifeline
