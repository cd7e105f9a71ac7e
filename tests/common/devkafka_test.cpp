// Tests devkafka against kcat, an independent Kafka client: data round trips, metadata, brokers
// going down and up, injected request errors, the control grammar and the daemon loop.
#include "common/devkafka.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "common/subprocess.h"

namespace lifeline {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// Records as kcat -K: reads them and as -f '%k:%s\n' prints them.
std::string MakeRecords(const std::string& prefix, int count) {
  std::string out;
  for (int i = 0; i < count; ++i) {
    out += prefix + "-key-" + std::to_string(i) + ":value " + std::to_string(i) + "\n";
  }
  return out;
}

std::string SortedLines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const auto& line : lines) out += line + "\n";
  return out;
}

class DevKafkaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kcat_ = FindProgram("kcat");
    // Never a skip: without kcat these tests would prove nothing about the wire protocol.
    ASSERT_FALSE(kcat_.empty()) << "kcat not found in PATH: apt-get install kcat";
    auto cluster = DevKafkaCluster::Start(3);
    ASSERT_TRUE(cluster.ok()) << cluster.status().ToString();
    cluster_ = std::move(cluster).value();
  }

  CommandResult Kcat(std::vector<std::string> args, const std::string& stdin_text = "",
                     milliseconds timeout = milliseconds(30'000)) {
    CommandSpec spec;
    spec.argv = {kcat_};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.stdin_text = stdin_text;
    spec.timeout = timeout;
    auto result = RunCommand(spec);
    EXPECT_TRUE(result.ok()) << result.status().ToString();
    return result.ok() ? *result : CommandResult{};
  }

  // Produces key:value lines; the generous message timeout lets a produce outlive an outage.
  CommandResult Produce(const std::string& boot, const std::string& topic,
                        const std::string& records) {
    return Kcat({"-P", "-b", boot, "-t", topic, "-K:", "-X", "message.timeout.ms=25000", "-X",
                 "reconnect.backoff.max.ms=250"},
                records);
  }

  std::string Consume(const std::string& boot, const std::string& topic) {
    CommandResult r =
        Kcat({"-C", "-b", boot, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%k:%s\\n"});
    EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
    return r.stdout_text;
  }

  std::string kcat_;
  std::unique_ptr<DevKafkaCluster> cluster_;
};

TEST(DevKafkaStartTest, RejectsBadBrokerCounts) {
  for (int brokers : {0, -1, DevKafkaCluster::kMaxBrokers + 1}) {
    auto cluster = DevKafkaCluster::Start(brokers);
    ASSERT_FALSE(cluster.ok()) << brokers;
    EXPECT_EQ(cluster.status().code(), StatusCode::kInvalidArgument);
  }
}

TEST_F(DevKafkaTest, BootstrapListsEveryBrokerOnLoopback) {
  const std::string& boot = cluster_->bootstrap_servers();
  int count = 0;
  std::istringstream in(boot);
  for (std::string server; std::getline(in, server, ',');) {
    EXPECT_TRUE(server.starts_with("127.0.0.1:")) << server;
    ++count;
  }
  EXPECT_EQ(count, 3) << boot;
}

TEST_F(DevKafkaTest, ProduceThenConsumeWithKcat) {
  ASSERT_TRUE(cluster_->CreateTopic("roundtrip", 1, 3).ok());
  const std::string records = MakeRecords("rt", 200);
  CommandResult produced = Produce(cluster_->bootstrap_servers(), "roundtrip", records);
  ASSERT_EQ(produced.exit_code, 0) << produced.stderr_text;
  // One partition: the log order is the produce order.
  EXPECT_EQ(Consume(cluster_->bootstrap_servers(), "roundtrip"), records);

  ASSERT_TRUE(cluster_->CreateTopic("spread", 3, 2).ok());
  const std::string spread = MakeRecords("sp", 90);
  produced = Produce(cluster_->bootstrap_servers(), "spread", spread);
  ASSERT_EQ(produced.exit_code, 0) << produced.stderr_text;
  EXPECT_EQ(SortedLines(Consume(cluster_->bootstrap_servers(), "spread")), SortedLines(spread));
}

TEST_F(DevKafkaTest, MetadataShowsBrokersAndPartitions) {
  ASSERT_TRUE(cluster_->CreateTopic("meta", 5, 3).ok());
  ASSERT_TRUE(cluster_->SetPartitionLeader("meta", 4, 2).ok());
  CommandResult r = Kcat({"-L", "-b", cluster_->bootstrap_servers(), "-t", "meta", "-J"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  std::istringstream in(cluster_->bootstrap_servers());
  int id = 1;
  for (std::string server; std::getline(in, server, ','); ++id) {
    EXPECT_NE(r.stdout_text.find("{\"id\":" + std::to_string(id) + ",\"name\":\"" + server + "\"}"),
              std::string::npos)
        << r.stdout_text;
  }
  EXPECT_NE(r.stdout_text.find("\"topic\":\"meta\""), std::string::npos) << r.stdout_text;
  for (int p = 0; p < 5; ++p) {
    EXPECT_NE(r.stdout_text.find("\"partition\":" + std::to_string(p) + ","), std::string::npos)
        << r.stdout_text;
  }
  EXPECT_EQ(r.stdout_text.find("\"partition\":5,"), std::string::npos) << r.stdout_text;
  EXPECT_NE(r.stdout_text.find("\"partition\":4,\"leader\":2,"), std::string::npos)
      << r.stdout_text;
}

// Produces while every broker is down and brings them up after ~2 s: the produce must be held
// up (so "down" took effect) and then deliver everything.
TEST_F(DevKafkaTest, ProduceSurvivesAllBrokersDown) {
  ASSERT_TRUE(cluster_->CreateTopic("outage", 1, 3).ok());
  ASSERT_TRUE(cluster_->SetAllBrokersDown().ok());
  const std::string records = MakeRecords("all-down", 20);
  const auto start = Clock::now();
  auto produce = std::async(std::launch::async, [&] {
    return Produce(cluster_->bootstrap_servers(), "outage", records);
  });
  EXPECT_EQ(produce.wait_for(milliseconds(2000)), std::future_status::timeout)
      << "kcat finished while every broker was down";
  ASSERT_TRUE(cluster_->SetAllBrokersUp().ok());
  CommandResult produced = produce.get();
  const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  ASSERT_EQ(produced.exit_code, 0) << produced.stderr_text;
  EXPECT_GE(took.count(), 1900);
  EXPECT_EQ(Consume(cluster_->bootstrap_servers(), "outage"), records);
}

TEST_F(DevKafkaTest, ProduceSurvivesLeaderBrokerDown) {
  ASSERT_TRUE(cluster_->CreateTopic("leaderdown", 1, 3).ok());
  ASSERT_TRUE(cluster_->SetPartitionLeader("leaderdown", 0, 2).ok());
  ASSERT_TRUE(cluster_->SetBrokerDown(2).ok());
  const std::string records = MakeRecords("leader-down", 20);
  auto produce = std::async(std::launch::async, [&] {
    return Produce(cluster_->bootstrap_servers(), "leaderdown", records);
  });
  // Brokers 1 and 3 still answer metadata, but the mock never moves leadership off broker 2.
  EXPECT_EQ(produce.wait_for(milliseconds(2000)), std::future_status::timeout)
      << "kcat finished while the partition leader was down";
  ASSERT_TRUE(cluster_->SetBrokerUp(2).ok());
  CommandResult produced = produce.get();
  ASSERT_EQ(produced.exit_code, 0) << produced.stderr_text;
  EXPECT_EQ(Consume(cluster_->bootstrap_servers(), "leaderdown"), records);
}

TEST_F(DevKafkaTest, InjectedRetriableProduceErrorsAreRetried) {
  ASSERT_TRUE(cluster_->CreateTopic("retry", 1, 3).ok());
  ASSERT_TRUE(cluster_->PushRequestErrors("Produce", "NOT_LEADER_FOR_PARTITION", 3).ok());
  const std::string records = MakeRecords("retry", 10);
  CommandResult produced = Produce(cluster_->bootstrap_servers(), "retry", records);
  ASSERT_EQ(produced.exit_code, 0) << produced.stderr_text;
  // Failed attempts appended nothing, so every record is there exactly once.
  EXPECT_EQ(Consume(cluster_->bootstrap_servers(), "retry"), records);
}

TEST_F(DevKafkaTest, InjectedFatalProduceErrorReachesTheClient) {
  ASSERT_TRUE(cluster_->CreateTopic("fatal", 1, 3).ok());
  // Proves injection reaches the wire: a non-retriable error fails the delivery.
  auto reply = cluster_->ApplyControlLine("errors Produce TOPIC_AUTHORIZATION_FAILED 1");
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  CommandResult produced = Produce(cluster_->bootstrap_servers(), "fatal", "k:v\n");
  EXPECT_NE(produced.exit_code, 0) << "kcat exits 1 when a delivery fails";
  EXPECT_NE(produced.stderr_text.find("authoriz"), std::string::npos)
      << "exit " << produced.exit_code << ": " << produced.stderr_text;
  EXPECT_EQ(Consume(cluster_->bootstrap_servers(), "fatal"), "");
  // The error was used up: the next produce succeeds.
  produced = Produce(cluster_->bootstrap_servers(), "fatal", "k:v2\n");
  ASSERT_EQ(produced.exit_code, 0) << produced.stderr_text;
  EXPECT_EQ(Consume(cluster_->bootstrap_servers(), "fatal"), "k:v2\n");
}

TEST_F(DevKafkaTest, ControlLinesApplyEachCommand) {
  const std::string boot = cluster_->bootstrap_servers();
  auto apply = [&](std::string_view line) {
    auto reply = cluster_->ApplyControlLine(line);
    EXPECT_TRUE(reply.ok()) << line << ": " << reply.status().ToString();
    std::string text = reply.ok() ? *reply : "";
    EXPECT_TRUE(text.starts_with("ok")) << line << " -> " << text;
    EXPECT_EQ(text.find('\n'), std::string::npos) << text;
    return text;
  };

  EXPECT_NE(apply("help").find("leader TOPIC PARTITION ID"), std::string::npos);
  EXPECT_EQ(apply("topic ctl 4"), "ok topic ctl partitions 4 replication 3");
  EXPECT_EQ(apply("  TOPIC   ctl2 2 1  "), "ok topic ctl2 partitions 2 replication 1");
  EXPECT_EQ(apply("leader ctl 3 1"), "ok ctl [3] leader 1");
  CommandResult meta = Kcat({"-L", "-b", boot, "-t", "ctl", "-J"});
  ASSERT_EQ(meta.exit_code, 0) << meta.stderr_text;
  EXPECT_NE(meta.stdout_text.find("\"partition\":3,\"leader\":1,"), std::string::npos)
      << meta.stdout_text;
  EXPECT_EQ(meta.stdout_text.find("\"partition\":4,"), std::string::npos) << meta.stdout_text;

  // rtt: a metadata round trip now takes at least the injected delay.
  EXPECT_EQ(apply("rtt all 400"), "ok all brokers rtt 400 ms");
  auto start = Clock::now();
  meta = Kcat({"-L", "-b", boot, "-t", "ctl"});
  EXPECT_EQ(meta.exit_code, 0) << meta.stderr_text;
  EXPECT_GE(std::chrono::duration_cast<milliseconds>(Clock::now() - start).count(), 400);
  EXPECT_EQ(apply("rtt 2 0"), "ok broker 2 rtt 0 ms");
  EXPECT_EQ(apply("rtt all 0"), "ok all brokers rtt 0 ms");

  // down all: no broker answers, so kcat -L gives up; up all: it works again.
  EXPECT_EQ(apply("down all"), "ok all brokers down");
  meta = Kcat({"-L", "-b", boot, "-m", "2"}, "", milliseconds(15'000));
  EXPECT_NE(meta.exit_code, 0) << meta.stdout_text;
  EXPECT_FALSE(meta.timed_out);
  EXPECT_EQ(apply("up all"), "ok all brokers up");
  EXPECT_EQ(apply("down 3"), "ok broker 3 down");
  EXPECT_EQ(apply("up 3"), "ok broker 3 up");
  meta = Kcat({"-L", "-b", boot, "-m", "10"});
  EXPECT_EQ(meta.exit_code, 0) << meta.stderr_text;

  EXPECT_EQ(apply("errors produce NOT_LEADER_OR_FOLLOWER 2"),
            "ok next 2 produce requests fail with NOT_LEADER_OR_FOLLOWER");
  EXPECT_EQ(apply("errors Produce RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION 1"),
            "ok next 1 Produce requests fail with RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION");
  CommandResult produced = Produce(boot, "ctl2", "a:1\n");
  ASSERT_EQ(produced.exit_code, 0) << produced.stderr_text;
  EXPECT_EQ(Consume(boot, "ctl2"), "a:1\n");
}

TEST_F(DevKafkaTest, MalformedControlLinesAreInvalidArgument) {
  ASSERT_TRUE(cluster_->CreateTopic("known", 2, 1).ok());
  struct Case {
    std::string line;
    std::string names;  // the message must mention this
  };
  const std::vector<Case> cases = {
      {"", "empty"},
      {"   \t ", "empty"},
      {"fly 2", "'fly'"},
      {"down", "takes 1"},
      {"down 1 2", "got 2"},
      {"down 0", "'0'"},
      {"down 4", "'4'"},
      {"up two", "'two'"},
      {"rtt 2", "takes 2"},
      {"rtt 2 fast", "'fast'"},
      {"rtt all -5", "-5"},
      {"rtt 1 99999999999", "'99999999999'"},
      {"errors Produce NOPE 3", "'NOPE'"},
      {"errors Nope NOT_LEADER_FOR_PARTITION 1", "'Nope'"},
      {"errors Produce NOT_LEADER_FOR_PARTITION 0", "count 0"},
      {"errors Produce NOT_LEADER_FOR_PARTITION", "takes 3"},
      {"errors Produce NO_ERROR 1", "'NO_ERROR'"},
      {"errors Produce _TIMED_OUT 1", "'_TIMED_OUT'"},
      {"leader unknown 0 1", "'unknown'"},
      {"leader known 2 1", "partition 2"},
      {"leader known 0 all", "'all'"},
      {"leader known x 1", "'x'"},
      {"topic bad/name 3", "'bad/name'"},
      {"topic t 0", "partition count 0"},
      {"topic t 3 4", "replication factor 4"},
      {"topic known 2", "TOPIC_ALREADY_EXISTS"},
      {std::string("down \x01\xff"), "'\\x01\\xff' is not a broker id"},
      {std::string(10000, 'x'), "unknown command"},
  };
  for (const auto& c : cases) {
    auto reply = cluster_->ApplyControlLine(c.line);
    ASSERT_FALSE(reply.ok()) << "'" << c.line << "' was accepted: " << *reply;
    EXPECT_EQ(reply.status().code(), StatusCode::kInvalidArgument) << c.line;
    EXPECT_NE(reply.status().message().find(c.names), std::string::npos)
        << "'" << c.line << "': " << reply.status().message();
    EXPECT_EQ(reply.status().message().find('\n'), std::string::npos);
    // Echoed words are cut and escaped, so a reply stays one short printable line.
    EXPECT_LT(reply.status().message().size(), 600u) << c.line.substr(0, 20);
    for (char ch : reply.status().message()) {
      EXPECT_TRUE(std::isprint(static_cast<unsigned char>(ch))) << reply.status().message();
    }
  }
  // Grammar mistakes carry the grammar so the user can fix the line without the docs.
  auto reply = cluster_->ApplyControlLine("fly 2");
  EXPECT_NE(reply.status().message().find(std::string(DevKafkaControlGrammar())),
            std::string::npos);
  // And the cluster still works afterwards.
  EXPECT_TRUE(cluster_->ApplyControlLine("down 1").ok());
  EXPECT_TRUE(cluster_->ApplyControlLine("up 1").ok());
}

// The daemon loop, driven through pipes instead of the process's stdin and stdout.
class ServeDevKafkaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(FindProgram("kcat").empty()) << "kcat not found in PATH: apt-get install kcat";
    ASSERT_EQ(pipe2(input_, O_CLOEXEC), 0);
    ASSERT_EQ(pipe2(output_, O_CLOEXEC), 0);
    dir_ = std::filesystem::temp_directory_path() /
           ("devkafka_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    for (int fd : {input_[0], input_[1], output_[0], output_[1]}) {
      if (fd >= 0) close(fd);
    }
    std::filesystem::remove_all(dir_);
  }

  void CloseInput() {
    close(input_[1]);
    input_[1] = -1;
  }

  // One reply line, or "" after `timeout`.
  std::string ReadLine(milliseconds timeout = milliseconds(10'000)) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      size_t newline = buffered_.find('\n');
      if (newline != std::string::npos) {
        std::string line = buffered_.substr(0, newline);
        buffered_.erase(0, newline + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return "";
      pollfd pfd = {output_[0], POLLIN, 0};
      if (poll(&pfd, 1, static_cast<int>(left)) <= 0) continue;
      char buf[1024];
      ssize_t n = read(output_[0], buf, sizeof buf);
      if (n <= 0) return "";
      buffered_.append(buf, static_cast<size_t>(n));
    }
  }

  // Bounded wait for the bootstrap file the daemon writes once it serves.
  std::string WaitForBootstrapFile(const std::string& path) {
    for (int i = 0; i < 200; ++i) {
      std::ifstream in(path);
      std::string line;
      if (in && std::getline(in, line)) return line;
      std::this_thread::sleep_for(milliseconds(25));
    }
    return "";
  }

  int input_[2] = {-1, -1};
  int output_[2] = {-1, -1};
  std::filesystem::path dir_;
  std::string buffered_;
};

TEST_F(ServeDevKafkaTest, AnswersControlLinesAndWritesBootstrapFile) {
  DevKafkaOptions options;
  options.brokers = 2;
  options.topics = {{"served", 2}};
  options.bootstrap_file = (dir_ / "bootstrap").string();
  options.exit_on_input_eof = true;
  options.input_fd = input_[0];
  options.output_fd = output_[1];
  auto serve = std::async(std::launch::async, [&] { return ServeDevKafka(options); });

  const std::string boot = ReadLine();
  ASSERT_TRUE(boot.starts_with("127.0.0.1:")) << boot;
  EXPECT_EQ(std::count(boot.begin(), boot.end(), ','), 1) << boot;
  EXPECT_EQ(WaitForBootstrapFile(options.bootstrap_file), boot);
  // Only the renamed file is left behind, never the temp file.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_),
                          std::filesystem::directory_iterator()),
            1);

  const std::string lines = "topic more 3\n\nbogus words\nleader served 1 2\ndown 3\nhelp\n" +
                            std::string(6000, 'y') + "\nup all\n";
  ASSERT_EQ(write(input_[1], lines.data(), lines.size()), static_cast<ssize_t>(lines.size()));
  EXPECT_EQ(ReadLine(), "ok topic more partitions 3 replication 2");
  EXPECT_TRUE(ReadLine().starts_with("error: unknown command 'bogus'"));
  EXPECT_EQ(ReadLine(), "ok served [1] leader 2");
  EXPECT_TRUE(ReadLine().starts_with("error: '3' is not a broker id (1..2 or all)"));
  EXPECT_TRUE(ReadLine().starts_with("ok down ID|all"));
  EXPECT_TRUE(ReadLine().starts_with("error: control line longer than"));
  EXPECT_EQ(ReadLine(), "ok all brokers up");

  CommandSpec spec;
  spec.argv = {"kcat", "-L", "-b", boot, "-J"};
  spec.timeout = milliseconds(20'000);
  auto meta = RunCommand(spec);
  ASSERT_TRUE(meta.ok()) << meta.status().ToString();
  EXPECT_NE(meta->stdout_text.find("\"topic\":\"served\""), std::string::npos) << meta->stdout_text;
  EXPECT_NE(meta->stdout_text.find("\"partition\":1,\"leader\":2,"), std::string::npos)
      << meta->stdout_text;

  CloseInput();
  ASSERT_EQ(serve.wait_for(milliseconds(10'000)), std::future_status::ready);
  Status st = serve.get();
  EXPECT_TRUE(st.ok()) << st.ToString();
}

TEST_F(ServeDevKafkaTest, KeepsServingAfterInputEofUntilSigterm) {
  DevKafkaOptions options;
  options.brokers = 1;
  options.bootstrap_file = (dir_ / "bootstrap").string();
  options.input_fd = input_[0];
  options.output_fd = output_[1];
  auto serve = std::async(std::launch::async, [&] { return ServeDevKafka(options); });
  const std::string boot = WaitForBootstrapFile(options.bootstrap_file);
  ASSERT_FALSE(boot.empty());

  // A second daemon loop in the same process would fight over the signal handlers.
  Status second = ServeDevKafka(options);
  EXPECT_EQ(second.code(), StatusCode::kFailedPrecondition) << second.ToString();

  CloseInput();
  EXPECT_EQ(serve.wait_for(milliseconds(500)), std::future_status::timeout)
      << "stopped at input EOF without exit_on_input_eof";
  CommandSpec spec;
  spec.argv = {"kcat", "-L", "-b", boot, "-m", "10"};
  spec.timeout = milliseconds(20'000);
  auto meta = RunCommand(spec);
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(meta->exit_code, 0) << meta->stderr_text;

  // The handler is installed before the bootstrap file appears, so this cannot kill the test.
  ASSERT_EQ(kill(getpid(), SIGTERM), 0);
  ASSERT_EQ(serve.wait_for(milliseconds(10'000)), std::future_status::ready);
  Status st = serve.get();
  EXPECT_TRUE(st.ok()) << st.ToString();
}

}  // namespace
}  // namespace lifeline
