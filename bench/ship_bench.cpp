// Shipper throughput against its anchor, `kcat -P` producing the same records to the same devkafka
// cluster (alternated in one run), and spool-to-topic latency of a live spool at a steady rate.
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/allocator.h"
#include "common/devkafka.h"
#include "common/event_format.h"
#include "common/metrics.h"
#include "common/spool.h"
#include "common/subprocess.h"
#include "shipper/kafka_record.h"
#include "shipper/shipper.h"
#include "tests/support/sample_events.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using lifeline::v1::ChangeEvent;

// The goal the shipper is held to: at least this fraction of kcat's records/s.
constexpr double kGoalRatio = 0.9;
// Events per spooled transaction when the throughput spool is built.
constexpr uint32_t kBuildTxnEvents = 5;
// The producer settings the shipper uses (shipper/kafka_producer.cpp), given to kcat with -X.
const std::vector<std::string> kProducerSettings = {
    "enable.idempotence=true",       "acks=all",
    "compression.codec=lz4",         "linger.ms=5",
    "partitioner=murmur2_random",    "message.timeout.ms=0",
    "enable.gapless.guarantee=true", "queue.buffering.max.messages=200000",
};
// Header values as long as the shipper's longest (seq of 7 digits, an LSN, the source id), so
// that kcat's records are no smaller than the shipper's.
const std::vector<std::string> kKcatHeaders = {"seq=1000000", "commit_lsn=0/3D0A000",
                                               "source=7312345678901234567/lifeline",
                                               "schema_version=1"};

struct Flags {
  uint64_t events = 1'000'000;
  size_t event_bytes = 400;
  int rounds = 3;
  int brokers = 3;
  int partitions = 1;
  double rate = 2000;
  double latency_seconds = 30;
  uint32_t txn_events = 4;
  bool quick = false;
  bool skip_throughput = false;
  bool skip_latency = false;
  std::string kcat = "kcat";
  std::string dir;
  std::string json;
  bool keep = false;
  std::string log_level = "warn";
};

struct BenchError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void Fail(const std::string& what) {
  throw BenchError(what);
}

void Must(const lifeline::Status& st, const std::string& what) {
  if (!st.ok()) Fail(what + ": " + st.ToString());
}

template <typename T>
T Must(lifeline::Result<T> r, const std::string& what) {
  if (!r.ok()) Fail(what + ": " + r.status().ToString());
  return std::move(r).value();
}

std::atomic<bool> g_interrupted{false};

extern "C" void OnSignal(int) {
  g_interrupted = true;
}

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Nearest-rank percentile of a sorted sample.
double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p / 100 * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

double CpuSeconds(int who) {
  rusage ru{};
  getrusage(who, &ru);
  auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

std::string Tail(const std::string& path, size_t n = 3000) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text.size() <= n ? text : text.substr(text.size() - n);
}

// A sample event whose padding is pseudo-random text rather than one repeated letter, so that
// lz4 compresses it about as much as real rows and not to nothing.
ChangeEvent BenchEvent(uint32_t xid, uint32_t index, uint32_t count, size_t bytes,
                       std::mt19937_64& rng) {
  ChangeEvent ev = lifeline::testing::SampleEvent(xid, index, count, bytes);
  auto* notes = ev.mutable_after()->mutable_values(3)->mutable_text();
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz      0123456789";
  for (size_t i = 8; i + 2 < notes->size(); ++i) {
    (*notes)[i] = kAlphabet[rng() % (sizeof kAlphabet - 1)];
  }
  return ev;
}

// ---- the throughput data ------------------------------------------------------------------

struct Data {
  std::string spool_dir;
  std::string kcat_input;  // key TAB value NEWLINE per record
  uint64_t value_bytes = 0;
  uint64_t key_bytes = 0;
};

// One byte of an event as a printable character other than TAB and NEWLINE (kcat's delimiters).
// Equal bytes stay equal, so the text compresses about as well as the event it stands for.
char Printable(char c) {
  return static_cast<char>(0x21 + static_cast<unsigned char>(c) % 94);
}

Data BuildData(const Flags& f) {
  Data d;
  d.spool_dir = f.dir + "/spool";
  d.kcat_input = f.dir + "/kcat-input.txt";
  auto spool = Must(lifeline::Spool::OpenForWrite(d.spool_dir), "creating the spool");
  std::mt19937_64 rng(42);
  uint64_t total = f.events;
  constexpr uint64_t kBatch = 1000;
  for (uint64_t first = 0; first < total; first += kBatch) {
    std::vector<ChangeEvent> batch;
    uint64_t end = std::min(total, first + kBatch);
    for (uint64_t i = first; i < end; ++i) {
      auto xid = static_cast<uint32_t>(1000 + i / kBuildTxnEvents);
      auto index = static_cast<uint32_t>(i % kBuildTxnEvents);
      auto count = static_cast<uint32_t>(std::min<uint64_t>(kBuildTxnEvents, total - (i - index)));
      batch.push_back(BenchEvent(xid, index, count, f.event_bytes, rng));
    }
    Must(spool->Append(batch).status(), "appending to the spool");
  }
  // kcat's records: the same keys as the shipper's, and values of the same lengths, made
  // printable, read back from the spool so they match byte for byte in length.
  std::ofstream out(d.kcat_input, std::ios::binary);
  if (!out) Fail("cannot write " + d.kcat_input);
  std::string line;
  for (uint64_t next = 1; next <= total;) {
    auto recs = Must(spool->Read(next, 10'000), "reading the spool");
    if (recs.empty()) Fail("the spool ends early at seq " + std::to_string(next));
    for (auto& rec : recs) {
      next = rec.seq + 1;
      auto record = Must(lifeline::shipper::ToKafkaRecord(rec), "making a record");
      if (!record.key) Fail("event " + std::to_string(rec.seq) + " has no key");
      line.assign(*record.key);
      line += '\t';
      for (char c : record.value) line += Printable(c);
      line += '\n';
      out << line;
      d.value_bytes += record.value.size();
      d.key_bytes += record.key->size();
    }
  }
  out.close();
  if (!out) Fail("writing " + d.kcat_input + " failed");
  // Reopening once replays the spool's write-ahead log into its tables, as any reopened spool
  // has done before it is shipped, so no round pays for that.
  spool.reset();
  Must(lifeline::Spool::OpenForWrite(d.spool_dir).status(), "reopening the spool");
  return d;
}

// ---- checks against the cluster -----------------------------------------------------------

// A consumer handle for metadata queries; no group, no subscription.
rd_kafka_t* NewConsumer(const std::string& brokers, const std::vector<std::string>& extra = {}) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  std::vector<std::string> props = {"bootstrap.servers=" + brokers, "group.id=ship-bench",
                                    "enable.auto.commit=false", "log_level=3"};
  props.insert(props.end(), extra.begin(), extra.end());
  for (const auto& kv : props) {
    size_t eq = kv.find('=');
    if (rd_kafka_conf_set(conf, kv.substr(0, eq).c_str(), kv.substr(eq + 1).c_str(), err,
                          sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      Fail("consumer property " + kv + ": " + err);
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (rk == nullptr) Fail(std::string("creating a consumer: ") + err);
  return rk;
}

// Records in `topic` (sum of high watermarks).
uint64_t TopicRecords(const std::string& brokers, const std::string& topic, int partitions) {
  rd_kafka_t* rk = NewConsumer(brokers);
  uint64_t total = 0;
  for (int p = 0; p < partitions; ++p) {
    int64_t lo = 0, hi = 0;
    rd_kafka_resp_err_t err =
        rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &lo, &hi, 10'000);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_destroy(rk);
      Fail("watermarks of " + topic + " [" + std::to_string(p) + "]: " + rd_kafka_err2name(err));
    }
    total += static_cast<uint64_t>(hi);
  }
  rd_kafka_destroy(rk);
  return total;
}

// ---- the two producers --------------------------------------------------------------------

struct Run {
  double seconds = 0;
  double self_cpu_seconds = 0;   // this process: the shipper (ship side) and the mock brokers
  double child_cpu_seconds = 0;  // kcat
};

Run TimeShip(const Flags& f, const Data& d, const std::string& brokers, const std::string& topic,
             int round) {
  lifeline::ShipperOptions opts;
  opts.brokers = brokers;
  opts.topic = topic;
  opts.partitions = f.partitions;
  opts.until_drained = true;
  // Each round ships the whole spool again: its own cursor, and nothing trimmed behind it.
  opts.cursor_name = "bench-round-" + std::to_string(round);
  opts.retention_ms = 100LL * 365 * 24 * 3600 * 1000;
  std::atomic<bool> stop{false};
  Run run;
  double cpu = CpuSeconds(RUSAGE_SELF);
  auto start = Clock::now();
  std::fflush(stdout);
  Must(lifeline::ShipSpool(d.spool_dir, opts, "", stop), "shipping the spool");
  run.seconds = Seconds(Clock::now() - start);
  run.self_cpu_seconds = CpuSeconds(RUSAGE_SELF) - cpu;
  return run;
}

Run TimeKcat(const Flags& f, const Data& d, const std::string& brokers, const std::string& topic,
             int round) {
  lifeline::CommandSpec spec;
  spec.argv = {f.kcat, "-P", "-q", "-b", brokers, "-t", topic, "-K", "\\t", "-l", d.kcat_input};
  for (const auto& kv : kProducerSettings) spec.argv.insert(spec.argv.end(), {"-X", kv});
  for (const auto& h : kKcatHeaders) spec.argv.insert(spec.argv.end(), {"-H", h});
  spec.timeout = std::chrono::seconds(600);
  std::string log = f.dir + "/kcat-" + std::to_string(round) + ".log";
  Run run;
  double self_cpu = CpuSeconds(RUSAGE_SELF);
  double child_cpu = CpuSeconds(RUSAGE_CHILDREN);
  auto start = Clock::now();
  auto child = Must(lifeline::ChildProcess::Start(spec, log), "starting " + f.kcat);
  int code = Must(child.Wait(std::chrono::seconds(600)), "kcat");
  run.seconds = Seconds(Clock::now() - start);
  run.self_cpu_seconds = CpuSeconds(RUSAGE_SELF) - self_cpu;
  run.child_cpu_seconds = CpuSeconds(RUSAGE_CHILDREN) - child_cpu;
  if (code != 0) Fail("kcat exited " + std::to_string(code) + "; log " + log + ":\n" + Tail(log));
  return run;
}

struct ThroughputRound {
  Run ship;
  Run kcat;
  bool ship_first = false;
};

std::vector<ThroughputRound> RunThroughput(const Flags& f, const Data& d) {
  std::vector<ThroughputRound> rounds(static_cast<size_t>(f.rounds));
  double mb = static_cast<double>(d.value_bytes) / 1e6;
  auto report = [&](int n, const char* name, const Run& run) {
    std::printf("  round %d %-8s %7.2f s %9.0f events/s %6.1f MB/s  CPU: this process %.2f s", n,
                name, run.seconds, static_cast<double>(f.events) / run.seconds, mb / run.seconds,
                run.self_cpu_seconds);
    if (run.child_cpu_seconds > 0) std::printf(", kcat %.2f s", run.child_cpu_seconds);
    std::printf("\n");
    std::fflush(stdout);
  };
  for (int n = 1; n <= f.rounds; ++n) {
    if (g_interrupted) Fail("interrupted");
    ThroughputRound& r = rounds[n - 1];
    r.ship_first = n % 2 == 1;
    // A fresh cluster per round keeps earlier rounds' records out of memory; both sides of a
    // round share it, each with a fresh topic.
    auto cluster = Must(lifeline::DevKafkaCluster::Start(f.brokers), "starting devkafka");
    const std::string& brokers = cluster->bootstrap_servers();
    std::string ship_topic = "ship-r" + std::to_string(n);
    std::string kcat_topic = "kcat-r" + std::to_string(n);
    int rf = std::min(3, f.brokers);
    Must(cluster->CreateTopic(ship_topic, f.partitions, rf), "creating " + ship_topic);
    Must(cluster->CreateTopic(kcat_topic, f.partitions, rf), "creating " + kcat_topic);
    for (int side = 0; side < 2; ++side) {
      if ((side == 0) == r.ship_first) {
        r.ship = TimeShip(f, d, brokers, ship_topic, n);
        uint64_t got = TopicRecords(brokers, ship_topic, f.partitions);
        if (got != f.events) {
          Fail("the shipper's topic holds " + std::to_string(got) + " records, expected " +
               std::to_string(f.events));
        }
        report(n, "shipper", r.ship);
      } else {
        r.kcat = TimeKcat(f, d, brokers, kcat_topic, n);
        uint64_t got = TopicRecords(brokers, kcat_topic, f.partitions);
        if (got != f.events) {
          Fail("kcat's topic holds " + std::to_string(got) + " records, expected " +
               std::to_string(f.events));
        }
        report(n, "kcat", r.kcat);
      }
    }
  }
  return rounds;
}

// ---- latency ------------------------------------------------------------------------------

struct Latency {
  uint64_t events = 0;    // appended
  uint64_t measured = 0;  // after the warm-up
  double achieved_rate = 0;
  std::vector<double> from_commit_ms;  // commit-time stamp (taken just before Append) to arrival
  std::vector<double> from_append_ms;  // Append's return (synced, readable) to arrival
  std::vector<double> append_ms;       // each Append call (one fsync)
  uint64_t duplicates = 0;
};

Latency RunLatency(const Flags& f) {
  Latency lat;
  auto cluster = Must(lifeline::DevKafkaCluster::Start(f.brokers), "starting devkafka");
  const std::string brokers = cluster->bootstrap_servers();
  const std::string topic = "latency";
  Must(cluster->CreateTopic(topic, f.partitions, std::min(3, f.brokers)), "creating the topic");
  std::string dir = f.dir + "/live-spool";
  auto spool = Must(lifeline::Spool::OpenForWrite(dir), "creating the live spool");

  uint64_t txns = static_cast<uint64_t>(f.rate * f.latency_seconds / f.txn_events);
  lat.events = txns * f.txn_events;
  std::vector<int64_t> commit_us(lat.events + 1, 0), appended_us(lat.events + 1, 0),
      arrived_us(lat.events + 1, 0);

  // The independent reader: a plain librdkafka consumer on every partition from the start,
  // asking the broker for records as soon as there is one.
  std::atomic<bool> stop_consumer{false};
  std::atomic<uint64_t> received{0};
  std::atomic<uint64_t> duplicates{0};
  std::string consumer_error;
  rd_kafka_t* consumer =
      NewConsumer(brokers, {"fetch.wait.max.ms=5", "fetch.min.bytes=1",
                            "auto.offset.reset=earliest", "enable.partition.eof=false"});
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(f.partitions);
  for (int p = 0; p < f.partitions; ++p) {
    rd_kafka_topic_partition_list_add(parts, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_resp_err_t aerr = rd_kafka_assign(consumer, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  if (aerr != RD_KAFKA_RESP_ERR_NO_ERROR) Fail(std::string("assign: ") + rd_kafka_err2name(aerr));
  std::thread reader([&] {
    while (!stop_consumer.load()) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer, 100);
      if (m == nullptr) continue;
      int64_t now = lifeline::NowUnixMicros();
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        ChangeEvent ev;
        if (ev.ParseFromArray(m->payload, static_cast<int>(m->len)) && ev.seq() >= 1 &&
            ev.seq() <= lat.events) {
          if (arrived_us[ev.seq()] == 0) {
            arrived_us[ev.seq()] = now;
            received.fetch_add(1);
          } else {
            duplicates.fetch_add(1);
          }
        }
      }
      rd_kafka_message_destroy(m);
    }
  });

  std::atomic<bool> stop_shipper{false};
  lifeline::Metrics metrics;
  lifeline::ShipperOptions opts;
  opts.brokers = brokers;
  opts.topic = topic;
  opts.partitions = f.partitions;
  lifeline::Status ship_status;
  std::thread shipper(
      [&] { ship_status = lifeline::RunShipper(*spool, opts, stop_shipper, metrics); });

  // Let both clients connect before the clock starts.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  std::mt19937_64 rng(7);
  auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(f.txn_events / f.rate));
  auto start = Clock::now();
  int64_t start_us = lifeline::NowUnixMicros();
  for (uint64_t t = 0; t < txns && !g_interrupted; ++t) {
    std::this_thread::sleep_until(start + interval * static_cast<int64_t>(t));
    std::vector<ChangeEvent> txn;
    for (uint32_t i = 0; i < f.txn_events; ++i) {
      txn.push_back(
          BenchEvent(static_cast<uint32_t>(5000 + t), i, f.txn_events, f.event_bytes, rng));
    }
    int64_t stamp = lifeline::NowUnixMicros();
    for (auto& ev : txn) ev.set_commit_time_us(stamp);
    auto last = Must(spool->Append(txn), "appending to the live spool");
    int64_t done = lifeline::NowUnixMicros();
    lat.append_ms.push_back((done - stamp) / 1e3);
    for (uint64_t s = last - f.txn_events + 1; s <= last; ++s) {
      commit_us[s] = stamp;
      appended_us[s] = done;
    }
  }
  lat.achieved_rate =
      static_cast<double>(lat.events) / ((lifeline::NowUnixMicros() - start_us) / 1e6);
  auto deadline = Clock::now() + std::chrono::seconds(60);
  while (received.load() < lat.events && Clock::now() < deadline && !g_interrupted) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop_shipper = true;
  shipper.join();
  stop_consumer = true;
  reader.join();
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
  Must(ship_status, "the shipper");
  if (received.load() < lat.events) {
    Fail("the consumer received " + std::to_string(received.load()) + " of " +
         std::to_string(lat.events) + " events within 60 s of the last append");
  }
  lat.duplicates = duplicates.load();
  // The first second is warm-up (connections, the first batches).
  uint64_t warmup = static_cast<uint64_t>(f.rate);
  for (uint64_t s = warmup + 1; s <= lat.events; ++s) {
    lat.from_commit_ms.push_back((arrived_us[s] - commit_us[s]) / 1e3);
    lat.from_append_ms.push_back((arrived_us[s] - appended_us[s]) / 1e3);
  }
  lat.measured = lat.from_commit_ms.size();
  std::sort(lat.from_commit_ms.begin(), lat.from_commit_ms.end());
  std::sort(lat.from_append_ms.begin(), lat.from_append_ms.end());
  std::sort(lat.append_ms.begin(), lat.append_ms.end());
  spool.reset();
  return lat;
}

// ---- reporting ----------------------------------------------------------------------------

struct Summary {
  double ship_eps = 0, kcat_eps = 0, ship_mbps = 0, kcat_mbps = 0, ratio = 0;
  bool met = false;
};

Summary Summarize(const Flags& f, const Data& d, const std::vector<ThroughputRound>& rounds) {
  std::vector<double> ship, kcat;
  for (const auto& r : rounds) {
    ship.push_back(r.ship.seconds);
    kcat.push_back(r.kcat.seconds);
  }
  Summary s;
  double events = static_cast<double>(f.events), mb = static_cast<double>(d.value_bytes) / 1e6;
  s.ship_eps = events / Median(ship);
  s.kcat_eps = events / Median(kcat);
  s.ship_mbps = mb / Median(ship);
  s.kcat_mbps = mb / Median(kcat);
  s.ratio = s.ship_eps / s.kcat_eps;
  s.met = s.ratio >= kGoalRatio;
  return s;
}

void WriteJson(const Flags& f, const Data& d, const std::vector<ThroughputRound>& rounds,
               const Summary& s, const Latency* lat) {
  std::ofstream out(f.json);
  if (!out) Fail("cannot write " + f.json);
  out << "{\n  \"benchmark\": \"ship\",\n  \"brokers\": " << f.brokers
      << ",\n  \"partitions\": " << f.partitions;
  if (!rounds.empty()) {
    auto side = [&](const char* name, auto pick, double eps, double mbps) {
      out << "    \"" << name << "\": {\"seconds\": [";
      for (size_t i = 0; i < rounds.size(); ++i) out << (i ? ", " : "") << pick(rounds[i]).seconds;
      out << "], \"process_cpu_seconds\": [";
      for (size_t i = 0; i < rounds.size(); ++i) {
        out << (i ? ", " : "") << pick(rounds[i]).self_cpu_seconds;
      }
      out << "], \"kcat_cpu_seconds\": [";
      for (size_t i = 0; i < rounds.size(); ++i) {
        out << (i ? ", " : "") << pick(rounds[i]).child_cpu_seconds;
      }
      out << "], \"events_per_second\": " << eps << ", \"mb_per_second\": " << mbps << "}";
    };
    out << ",\n  \"throughput\": {\n    \"events\": " << f.events
        << ", \"value_bytes\": " << d.value_bytes << ", \"key_bytes\": " << d.key_bytes
        << ", \"rounds\": " << rounds.size() << ",\n";
    side(
        "shipper", [](const ThroughputRound& r) -> const Run& { return r.ship; }, s.ship_eps,
        s.ship_mbps);
    out << ",\n";
    side(
        "kcat", [](const ThroughputRound& r) -> const Run& { return r.kcat; }, s.kcat_eps,
        s.kcat_mbps);
    out << ",\n    \"ratio\": " << s.ratio << ", \"goal\": {\"min_ratio\": " << kGoalRatio
        << ", \"met\": " << (s.met ? "true" : "false") << "}\n  }";
  }
  if (lat != nullptr) {
    auto pct = [&](const char* name, const std::vector<double>& v) {
      out << "\"" << name << "\": {\"p50\": " << Percentile(v, 50)
          << ", \"p99\": " << Percentile(v, 99) << ", \"max\": " << (v.empty() ? 0 : v.back())
          << "}";
    };
    out << ",\n  \"latency\": {\"rate\": " << f.rate
        << ", \"achieved_rate\": " << lat->achieved_rate << ", \"txn_events\": " << f.txn_events
        << ", \"events\": " << lat->events << ", \"measured\": " << lat->measured
        << ", \"duplicates\": " << lat->duplicates << ",\n    ";
    pct("commit_to_consumer_ms", lat->from_commit_ms);
    out << ",\n    ";
    pct("append_return_to_consumer_ms", lat->from_append_ms);
    out << ",\n    ";
    pct("append_ms", lat->append_ms);
    out << "}";
  }
  out << "\n}\n";
}

int Main(Flags& f) {
  bool own_dir = f.dir.empty();
  if (own_dir) {
    char tmpl[] = "/tmp/lifeline-ship-bench-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) Fail("cannot create a directory in /tmp");
    f.dir = tmpl;
  } else {
    std::error_code ec;
    fs::create_directories(f.dir, ec);
    if (ec) Fail("cannot create " + f.dir + ": " + ec.message());
  }
  std::vector<ThroughputRound> rounds;
  Summary s;
  Data d;
  Latency lat;
  if (!f.skip_throughput) {
    if (lifeline::FindProgram(f.kcat).empty() && !fs::exists(f.kcat)) {
      Fail(f.kcat + " not found: install kcat (apt-get install kcat) or pass --kcat PATH");
    }
    auto t0 = Clock::now();
    d = BuildData(f);
    std::printf(
        "throughput: %llu events (%.1f MB of values, mean %.0f bytes; keys %.1f MB) spooled and "
        "written for kcat in %.1f s; devkafka %d brokers, %d partition(s), %d rounds per side\n",
        static_cast<unsigned long long>(f.events), d.value_bytes / 1e6,
        static_cast<double>(d.value_bytes) / static_cast<double>(f.events), d.key_bytes / 1e6,
        Seconds(Clock::now() - t0), f.brokers, f.partitions, f.rounds);
    std::fflush(stdout);
    rounds = RunThroughput(f, d);
    s = Summarize(f, d, rounds);
    std::printf("median: shipper %.0f events/s %.1f MB/s | kcat %.0f events/s %.1f MB/s\n",
                s.ship_eps, s.ship_mbps, s.kcat_eps, s.kcat_mbps);
    std::printf("ratio shipper/kcat %.2f; goal (>= %.1fx) %s\n", s.ratio, kGoalRatio,
                s.met ? "met" : "NOT met");
    std::fflush(stdout);
  }
  if (!f.skip_latency) {
    std::printf(
        "latency: %.0f events/s in transactions of %u for %.0f s, live spool, shipper "
        "thread, independent consumer\n",
        f.rate, f.txn_events, f.latency_seconds);
    std::fflush(stdout);
    lat = RunLatency(f);
    auto line = [](const char* name, const std::vector<double>& v) {
      std::printf("  %-34s p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms\n", name, Percentile(v, 50),
                  Percentile(v, 99), v.empty() ? 0 : v.back());
    };
    std::printf(
        "  %llu events appended at %.0f events/s, %llu measured (first second is "
        "warm-up), %llu duplicates\n",
        static_cast<unsigned long long>(lat.events), lat.achieved_rate,
        static_cast<unsigned long long>(lat.measured),
        static_cast<unsigned long long>(lat.duplicates));
    line("commit stamp -> consumer", lat.from_commit_ms);
    line("append returned -> consumer", lat.from_append_ms);
    line("spool append (one fsync)", lat.append_ms);
  }
  if (!f.json.empty()) WriteJson(f, d, rounds, s, f.skip_latency ? nullptr : &lat);
  if (own_dir && !f.keep) {
    std::error_code ec;
    fs::remove_all(f.dir, ec);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  lifeline::SetAllocatorThresholds();
  Flags f;
  CLI::App app{
      "Shipper throughput against kcat -P on the same records and cluster, and spool-to-topic "
      "latency at a steady rate",
      "ship_bench"};
  app.add_option("--events", f.events, "Events in the throughput spool")->capture_default_str();
  app.add_option("--event-bytes", f.event_bytes, "Approximate serialized size of an event")
      ->capture_default_str();
  app.add_option("--rounds", f.rounds, "Throughput rounds per side, alternated")
      ->capture_default_str();
  app.add_option("--brokers", f.brokers, "devkafka brokers")->capture_default_str();
  app.add_option("--partitions", f.partitions, "Partitions of each topic")->capture_default_str();
  app.add_option("--rate", f.rate, "Latency: events appended per second")->capture_default_str();
  app.add_option("--latency-seconds", f.latency_seconds, "Latency: how long to append")
      ->capture_default_str();
  app.add_option("--txn-events", f.txn_events, "Latency: events per appended transaction")
      ->capture_default_str();
  app.add_flag("--quick", f.quick,
               "100,000 events and 10 s of latency (unless --events / --latency-seconds given)");
  app.add_flag("--no-throughput", f.skip_throughput, "Skip the throughput part");
  app.add_flag("--no-latency", f.skip_latency, "Skip the latency part");
  app.add_option("--kcat", f.kcat, "The kcat program")->capture_default_str();
  app.add_option("--dir", f.dir, "Where the spools and kcat's input go (default: a temp dir)");
  app.add_option("--json", f.json, "Also write the results as JSON to this file");
  app.add_flag("--keep", f.keep, "Keep the directory afterwards");
  app.add_option("--log-level", f.log_level, "Log level of the shipper (info shows its phases)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (f.quick && app.count("--events") == 0) f.events = 100'000;
  if (f.quick && app.count("--latency-seconds") == 0) f.latency_seconds = 10;
  if (f.events == 0 || f.rounds < 1 || f.brokers < 1 || f.partitions < 1 || f.rate <= 0 ||
      f.txn_events == 0 || f.latency_seconds < 2) {
    std::cerr << "ship_bench: --events, --rounds, --brokers, --partitions, --rate, --txn-events "
                 "must be > 0 and --latency-seconds >= 2\n";
    return 2;
  }
  spdlog::set_level(spdlog::level::from_str(f.log_level));
  spdlog::set_pattern("%H:%M:%S.%e %l %v");
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  try {
    return Main(f);
  } catch (const BenchError& e) {
    std::cerr << "ship_bench: " << e.what() << "\n(files in " << f.dir << ")\n";
    return 1;
  }
}
