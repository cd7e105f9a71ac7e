// Apply throughput of `lifeline replay` for a backlog of changes already in the topic, side by side
// in one run with PostgreSQL's own logical replication catching up on the same changes, COPY of
// the same final rows (the ceiling), and the replayer again across a 10 ms round trip.
#include <signal.h>
#include <unistd.h>

#include <httplib.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <pqxx/pqxx>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/delay_proxy.h"
#include "common/devkafka.h"
#include "common/local_postgres.h"
#include "common/lsn.h"
#include "common/spool.h"
#include "common/subprocess.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using lifeline::Lsn;

constexpr double kGoalNative = 1.0;  // replayer / native logical replication
constexpr double kGoalRtt = 0.5;     // replayer across the round trip / replayer direct
constexpr uint64_t kTxnsPerLoadCall = 5000;
constexpr char kDatabase[] = "app";
constexpr char kTopic[] = "bench";
constexpr char kNativePublication[] = "bench_native";

struct Flags {
  uint64_t changes = 500'000;
  bool quick = false;
  int rounds = 1;
  int rtt_ms = 10;
  int partitions = 32;  // devkafka keeps about 5 MB per partition: spread 500,000 events
  std::string lifeline = LIFELINE_BINARY;
  std::vector<std::string> replay_args;  // extra flags for lifeline replay
  // How the topic is filled: "drain" (capture spools the load, then `lifeline ship
  // --until-drained` empties the spool into it, as after an outage) or "live" (the shipper inside
  // capture, during the load). devkafka answers a fetch with one producer batch per partition, and
  // a shipper keeping pace with the load makes batches of a few records, so a live-filled topic
  // takes even kcat several times longer to read than a real broker would; the kcat_read side
  // shows that floor for either fill.
  std::string fill = "drain";
  std::string kcat = "kcat";
  std::string dir;
  std::string json;
  bool keep = false;
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
void CheckInterrupted() {
  if (g_interrupted) Fail("interrupted");
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string Tail(const std::string& path, size_t n = 3000) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text.size() <= n ? text : text.substr(text.size() - n);
}

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

std::string Psql(const lifeline::LocalPostgres& pg, const std::string& sql) {
  return Trim(Must(pg.Psql(sql, kDatabase), "psql on port " + std::to_string(pg.port())));
}

// Row-for-row digest of the table, in each column's text form.
std::string Digest(const lifeline::LocalPostgres& pg) {
  return Psql(pg,
              "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t.id)), "
              "'') FROM emergency_requests t");
}

// ---- the load (as bench/capture_bench: transactions of 4 INSERT, 4 UPDATE, 2 DELETE) --------

std::string InsertRows(const std::string& first_k, const std::string& last_k) {
  return "INSERT INTO emergency_requests (id, customer_name, phone_number, location_address,\n"
         "    location_coordinates, vehicle_make_model, tyre_issue, status, notes)\n"
         "  SELECT md5(k::text)::uuid,\n"
         "    'Customer ' || k || ' ' || substr(md5(random()::text), 1, 8),\n"
         "    '+44 7' || lpad((k % 1000000000)::text, 9, '0'),\n"
         "    (k % 200 + 1) || ' ' || (ARRAY['High Street', 'Station Road', 'Church Lane',\n"
         "      'Victoria Road', 'Mill Lane'])[k % 5 + 1] || ', ' || (ARRAY['Leeds', 'York',\n"
         "      'Bristol', 'Derby', 'Bath'])[k % 5 + 1] || ' ' || (k % 30),\n"
         "    ST_SetSRID(ST_MakePoint(-2.5 + random() * 2, 51 + random() * 3), 4326)::geography,\n"
         "    (ARRAY['Ford Focus', 'Vauxhall Corsa', 'VW Golf', 'Toyota Yaris',\n"
         "      'Nissan Qashqai'])[k % 5 + 1] || ' ' || (2005 + k % 19),\n"
         "    (ARRAY['flat', 'puncture', 'blowout', 'valve', 'locking_nut',\n"
         "      'other'])[k % 6 + 1]::emergency_issue_type,\n"
         "    'pending',\n"
         "    jsonb_build_object('channel', 'app', 'priority', k % 3, 'note',\n"
         "      'Driver reports ' || substr(md5(k::text), 1, 24), 'tags',\n"
         "      jsonb_build_array('motorway', 'night'))\n"
         "  FROM generate_series(" +
         first_k + ", " + last_k + ") AS k;\n";
}

// Transaction t inserts rows 4t..4t+3, updates the four of t-1 and deletes two of t-2: from t = 2
// on, 10 changes each (t = 0 makes 4, t = 1 makes 8).
std::string LoadSql(uint64_t first_txn, uint64_t last_txn) {
  return "DO $$\nDECLARE t bigint;\nBEGIN\n  FOR t IN " + std::to_string(first_txn) + ".." +
         std::to_string(last_txn) + " LOOP\n" + InsertRows("4 * t", "4 * t + 3") +
         "    UPDATE emergency_requests SET status = 'assigned',\n"
         "        technician_id = md5((t % 997)::text)::uuid,\n"
         "        notes = notes || jsonb_build_object('eta_min', 10 + t % 50),\n"
         "        updated_at = now()\n"
         "      WHERE id IN (SELECT md5(k::text)::uuid FROM generate_series(4 * t - 4, 4 * t - 1)"
         " AS k);\n"
         "    DELETE FROM emergency_requests\n"
         "      WHERE id IN (SELECT md5(k::text)::uuid FROM generate_series(4 * t - 8, 4 * t - 7)"
         " AS k);\n"
         "    COMMIT;\n  END LOOP;\nEND\n$$;\n";
}

uint64_t ChangesOf(uint64_t txns) {
  return txns < 2 ? txns * 4 : 10 * txns - 8;
}

uint64_t Metric(httplib::Client& http, const std::string& name) {
  auto res = http.Get("/metrics");
  if (!res || res->status != 200) return 0;
  size_t at = res->body.find("\n" + name + " ");
  if (at == std::string::npos) return 0;
  return std::strtoull(res->body.c_str() + at + 2 + name.size(), nullptr, 10);
}

// ---- the setup: source, topic, standbys ---------------------------------------------------

struct Setup {
  std::unique_ptr<lifeline::LocalPostgres> source, replay_standby, native_standby;
  std::unique_ptr<lifeline::DevKafkaCluster> kafka;
  uint64_t changes = 0;
  uint64_t events = 0;  // in the topic
  Lsn last_commit_lsn;  // of the load's last transaction (start of its commit record)
  std::string digest;   // of the source's final rows
  std::string rows_file;
  double load_seconds = 0, ship_seconds = 0;
};

std::unique_ptr<lifeline::LocalPostgres> Cluster(const Flags& f, const std::string& name) {
  lifeline::LocalPostgresOptions opts;
  opts.name = name;
  opts.parent_dir = f.dir;
  opts.settings = {"max_wal_size = 4GB",    "checkpoint_timeout = 30min",
                   "autovacuum = off",      "max_replication_slots = 16",
                   "max_wal_senders = 16",  "max_logical_replication_workers = 4",
                   "shared_buffers = 256MB"};
  auto pg = Must(lifeline::LocalPostgres::Create(opts), "starting PostgreSQL " + name);
  if (f.keep) pg->set_keep(true);
  Must(pg->CreateDatabase(kDatabase), "creating database");
  Must(pg->PsqlFile(LIFELINE_SOURCE_DIR "/scripts/sql/reference_schema.sql", kDatabase),
       "loading the reference schema");
  return pg;
}

void Prepare(const Flags& f, Setup& s) {
  s.source = Cluster(f, "source");
  s.replay_standby = Cluster(f, "replay-standby");
  s.native_standby = Cluster(f, "native-standby");
  s.kafka = Must(lifeline::DevKafkaCluster::Start(1), "starting devkafka");
  Must(s.kafka->CreateTopic(kTopic, f.partitions, 1), "creating the topic");

  // Native replication's slots exist before the load, one per round, so each round's
  // subscription catches up on exactly the load.
  Psql(*s.source,
       std::string("CREATE PUBLICATION ") + kNativePublication + " FOR TABLE emergency_requests");
  for (int n = 1; n <= f.rounds; ++n) {
    Psql(*s.source, "SELECT pg_create_logical_replication_slot('native_r" + std::to_string(n) +
                        "', 'pgoutput')");
  }

  // capture + shipper into the topic, started before the load (its snapshot is empty).
  std::string log = f.dir + "/capture.log";
  int port = Must(lifeline::PickFreePort(), "picking a port");
  lifeline::CommandSpec spec;
  spec.argv = {f.lifeline,
               "capture",
               "--source",
               s.source->ConnInfo(kDatabase),
               "--spool",
               f.dir + "/spool",
               "--heartbeat-interval",
               "1h",
               "--metrics-addr",
               "127.0.0.1:" + std::to_string(port)};
  const bool live = f.fill == "live";
  if (live) {
    spec.argv.insert(spec.argv.end(),
                     {"--kafka-brokers", s.kafka->bootstrap_servers(), "--topic", kTopic});
  }
  auto capture = Must(lifeline::ChildProcess::Start(spec, log), "starting capture");
  auto deadline = Clock::now() + std::chrono::seconds(120);
  while (Tail(log, 1 << 20).find("streaming from slot") == std::string::npos) {
    CheckInterrupted();
    if (!capture.running()) Fail("capture exited; log " + log + ":\n" + Tail(log));
    if (Clock::now() > deadline) Fail("capture did not start streaming; log " + log);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }

  uint64_t txns = f.changes / 10 + 1;
  s.changes = ChangesOf(txns);
  auto start = Clock::now();
  for (uint64_t t = 0; t < txns; t += kTxnsPerLoadCall) {
    CheckInterrupted();
    Psql(*s.source, LoadSql(t, std::min(txns, t + kTxnsPerLoadCall) - 1));
  }
  s.load_seconds = Seconds(Clock::now() - start);
  std::printf("load: %llu changes in %llu transactions in %.1f s\n",
              static_cast<unsigned long long>(s.changes), static_cast<unsigned long long>(txns),
              s.load_seconds);
  std::fflush(stdout);

  // Everything spooled and shipped (the shipper's cursor moves on Kafka's acknowledgement).
  httplib::Client http("127.0.0.1", port);
  http.set_connection_timeout(std::chrono::milliseconds(500));
  deadline = Clock::now() + std::chrono::seconds(600 + s.changes / 500);
  while (true) {
    CheckInterrupted();
    if (!capture.running()) Fail("capture exited; log " + log + ":\n" + Tail(log));
    if (Clock::now() > deadline) Fail("capture+shipper did not ship the load in time; log " + log);
    if (Metric(http, "lifeline_capture_events_spooled_total") >= s.changes) {
      auto spool = lifeline::Spool::OpenForRead(f.dir + "/spool");
      if (spool.ok() &&
          (!live || (*spool)->GetCursor("shipper") >= (*spool)->last_complete_seq())) {
        s.events = (*spool)->last_complete_seq();
        s.last_commit_lsn = (*spool)->last_complete_commit_lsn();
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  auto code = capture.Stop(SIGTERM, std::chrono::seconds(60));
  if (!code.ok() || *code != 0) Fail("capture did not stop cleanly; log " + log);
  if (!live) {
    lifeline::CommandSpec ship;
    ship.argv = {f.lifeline,        "ship",
                 "--spool",         f.dir + "/spool",
                 "--kafka-brokers", s.kafka->bootstrap_servers(),
                 "--topic",         kTopic,
                 "--until-drained"};
    ship.timeout = std::chrono::seconds(600 + s.changes / 500);
    auto r = Must(lifeline::RunCommand(ship), "running lifeline ship");
    if (r.exit_code != 0)
      Fail("lifeline ship exited " + std::to_string(r.exit_code) + ":\n" +
           r.stderr_text.substr(0, 3000));
  }
  s.ship_seconds = Seconds(Clock::now() - start);
  std::printf("%s: %llu events in the topic %.1f s after the load began\n",
              live ? "capture+shipper" : "capture, then ship --until-drained",
              static_cast<unsigned long long>(s.events), s.ship_seconds);

  s.digest = Digest(*s.source);
  s.rows_file = f.dir + "/rows.copy";
  Psql(*s.source, "\\copy emergency_requests TO '" + s.rows_file + "'");
  std::printf("final rows: %s\n", s.digest.c_str());
  std::fflush(stdout);
}

// ---- the contenders -------------------------------------------------------------------------

void EmptyTarget(const lifeline::LocalPostgres& pg) {
  Psql(pg, "TRUNCATE emergency_requests; DROP SCHEMA IF EXISTS lifeline CASCADE; CHECKPOINT");
}

void CheckRows(const lifeline::LocalPostgres& pg, const Setup& s, const std::string& who) {
  std::string d = Digest(pg);
  if (d != s.digest) Fail(who + " left rows " + d + ", the source has " + s.digest);
}

struct ReplayRun {
  double seconds = 0;
  uint64_t events = 0;
};

// The replayer reads the topic, or with `from_spool` capture's spool directory: the same events
// without devkafka, whose mock brokers serve fetches on the same two cores (with many partitions
// they take a third of the machine), so that side shows what applying alone costs.
ReplayRun TimeReplay(const Flags& f, const Setup& s, int target_port, const std::string& name,
                     bool from_spool = false) {
  EmptyTarget(*s.replay_standby);
  sync();
  lifeline::CommandSpec spec;
  spec.argv = {
      f.lifeline, "replay", "--target",
      "host=127.0.0.1 port=" + std::to_string(target_port) + " user=postgres dbname=" + kDatabase};
  if (from_spool) {
    spec.argv.insert(spec.argv.end(), {"--spool", f.dir + "/spool"});
  } else {
    spec.argv.insert(spec.argv.end(),
                     {"--kafka-brokers", s.kafka->bootstrap_servers(), "--topic", kTopic});
  }
  spec.argv.insert(spec.argv.end(), {"--stop-at-end", "--format", "json"});
  spec.argv.insert(spec.argv.end(), f.replay_args.begin(), f.replay_args.end());
  spec.timeout = std::chrono::seconds(600 + s.changes / 200);
  auto start = Clock::now();
  auto r = Must(lifeline::RunCommand(spec), "running lifeline replay");
  ReplayRun run;
  run.seconds = Seconds(Clock::now() - start);
  if (r.exit_code != 0) {
    Fail(name + " exited " + std::to_string(r.exit_code) + ":\n" + r.stderr_text.substr(0, 3000));
  }
  std::smatch m;
  if (std::regex_search(r.stdout_text, m, std::regex("\"events\":([0-9]+)"))) {
    run.events = std::stoull(m[1].str());
  }
  if (run.events != s.events) {
    Fail(name + " applied " + std::to_string(run.events) + " events, the topic holds " +
         std::to_string(s.events));
  }
  CheckRows(*s.replay_standby, s, name);
  return run;
}

// An independent consumer reading the whole topic: what reading it from devkafka costs alone.
double TimeKcatRead(const Flags& f, const Setup& s) {
  lifeline::CommandSpec spec;
  spec.argv = {f.kcat, "-C",   "-b", s.kafka->bootstrap_servers(),
               "-t",   kTopic, "-o", "beginning",
               "-e",   "-q",   "-f", "%o\n"};
  spec.timeout = std::chrono::seconds(600 + s.changes / 200);
  auto start = Clock::now();
  auto r = Must(lifeline::RunCommand(spec), "running kcat");
  double seconds = Seconds(Clock::now() - start);
  if (r.exit_code != 0) Fail("kcat exited " + std::to_string(r.exit_code) + ": " + r.stderr_text);
  auto records =
      static_cast<uint64_t>(std::count(r.stdout_text.begin(), r.stdout_text.end(), '\n'));
  if (records != s.events) {
    Fail("kcat read " + std::to_string(records) + " records, the topic holds " +
         std::to_string(s.events));
  }
  return seconds;
}

double TimeNative(const Setup& s, int round) {
  const lifeline::LocalPostgres& pg = *s.native_standby;
  Psql(pg, "TRUNCATE emergency_requests; CHECKPOINT");
  std::string sub = "native_r" + std::to_string(round);
  Psql(pg, "CREATE SUBSCRIPTION " + sub + " CONNECTION '" + s.source->ConnInfo(kDatabase) +
               "' PUBLICATION " + kNativePublication + " WITH (create_slot = false, slot_name = '" +
               sub + "', enabled = false, copy_data = false)");
  sync();
  pqxx::connection conn(pg.ConnInfo(kDatabase));
  auto start = Clock::now();
  pqxx::nontransaction(conn).exec0("ALTER SUBSCRIPTION " + sub + " ENABLE");
  // Caught up once the origin has confirmed applying the commit of the last load transaction (the
  // origin's LSN is a commit's end, past that commit's start).
  const std::string done = "SELECT coalesce(max(remote_lsn), '0/0') > '" +
                           s.last_commit_lsn.ToString() +
                           "'::pg_lsn FROM pg_replication_origin_status";
  auto deadline = start + std::chrono::seconds(600 + s.changes / 200);
  while (true) {
    CheckInterrupted();
    if (pqxx::nontransaction(conn).exec1(done)[0].as<bool>()) break;
    if (Clock::now() > deadline) Fail("the subscription did not catch up in time");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  double seconds = Seconds(Clock::now() - start);
  CheckRows(pg, s, "logical replication");
  Psql(pg, "DROP SUBSCRIPTION " + sub);
  return seconds;
}

double TimeCopy(const Setup& s) {
  EmptyTarget(*s.replay_standby);
  sync();
  auto start = Clock::now();
  Psql(*s.replay_standby, "\\copy emergency_requests FROM '" + s.rows_file + "'");
  double seconds = Seconds(Clock::now() - start);
  CheckRows(*s.replay_standby, s, "COPY");
  return seconds;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int Main(Flags& f) {
  if (access(f.lifeline.c_str(), X_OK) != 0) Fail("no lifeline binary at " + f.lifeline);
  bool own_dir = f.dir.empty();
  if (own_dir) {
    char tmpl[] = "/tmp/lifeline-apply-bench-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) Fail("cannot create a directory in /tmp");
    f.dir = tmpl;
  } else {
    fs::create_directories(f.dir);
  }
  // The clusters inside run as the `postgres` OS user when we are root; COPY files too.
  fs::permissions(f.dir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                             fs::perms::others_read | fs::perms::others_exec);
  std::printf("apply_bench: %llu changes, %d round(s), %d partition(s), %d ms round trip, in %s\n",
              static_cast<unsigned long long>(f.changes), f.rounds, f.partitions, f.rtt_ms,
              f.dir.c_str());
  std::fflush(stdout);

  Setup s;
  std::map<std::string, std::vector<double>> seconds;
  const std::vector<std::string> sides = {"replay",     "native",       "copy",
                                          "replay_rtt", "replay_spool", "kcat_read"};
  try {
    Prepare(f, s);
    auto proxy = Must(
        lifeline::DelayProxy::Start(s.replay_standby->port(), std::chrono::milliseconds(f.rtt_ms)),
        "starting the delay proxy");
    for (int n = 1; n <= f.rounds; ++n) {
      // Rotate the order, so no side always runs first (or right after the same neighbour).
      for (size_t i = 0; i < sides.size(); ++i) {
        const std::string& side = sides[(i + static_cast<size_t>(n - 1)) % sides.size()];
        double t = 0;
        if (side == "replay") {
          t = TimeReplay(f, s, s.replay_standby->port(), "lifeline replay").seconds;
        } else if (side == "replay_spool") {
          t = TimeReplay(f, s, s.replay_standby->port(), "lifeline replay (spool)", true).seconds;
        } else if (side == "replay_rtt") {
          t = TimeReplay(f, s, proxy->port(), "lifeline replay (round trip)").seconds;
        } else if (side == "native") {
          t = TimeNative(s, n);
        } else if (side == "kcat_read") {
          t = TimeKcatRead(f, s);
        } else {
          t = TimeCopy(s);
        }
        seconds[side].push_back(t);
        std::printf("  round %d %-12s %7.2f s %9.0f changes/s\n", n, side.c_str(), t,
                    static_cast<double>(s.changes) / t);
        std::fflush(stdout);
      }
    }
    proxy->Stop();
  } catch (const BenchError& e) {
    std::cerr << "apply_bench: " << e.what() << "\n(logs kept in " << f.dir << ")\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "apply_bench: " << e.what() << "\n(logs kept in " << f.dir << ")\n";
    return 1;
  }

  std::map<std::string, double> cps;
  for (const auto& side : sides) {
    cps[side] = static_cast<double>(s.changes) / Median(seconds[side]);
  }
  double vs_native = cps["replay"] / cps["native"];
  double vs_copy = cps["replay"] / cps["copy"];
  double rtt_ratio = cps["replay_rtt"] / cps["replay"];
  double spool_vs_native = cps["replay_spool"] / cps["native"];
  std::printf(
      "median changes/s: replay %.0f | logical replication %.0f | COPY %.0f | replay "
      "across %d ms %.0f\n",
      cps["replay"], cps["native"], cps["copy"], f.rtt_ms, cps["replay_rtt"]);
  std::printf("replay / logical replication %.2f (goal >= %.1f: %s); replay / COPY %.2f\n",
              vs_native, kGoalNative, vs_native >= kGoalNative ? "met" : "NOT met", vs_copy);
  std::printf("replay across %d ms / replay %.2f (goal >= %.1f: %s)\n", f.rtt_ms, rtt_ratio,
              kGoalRtt, rtt_ratio >= kGoalRtt ? "met" : "NOT met");
  std::printf("replay from the spool %.0f changes/s; / logical replication %.2f\n",
              cps["replay_spool"], spool_vs_native);
  std::printf("kcat reading the topic (%s-filled) %.0f records/s\n", f.fill.c_str(),
              cps["kcat_read"]);
  if (!f.json.empty()) {
    std::ofstream out(f.json);
    out << "{\n  \"benchmark\": \"apply\",\n  \"changes\": " << s.changes
        << ",\n  \"events_in_topic\": " << s.events << ",\n  \"partitions\": " << f.partitions
        << ",\n  \"rounds\": " << f.rounds << ",\n  \"rtt_ms\": " << f.rtt_ms << ",\n  \"fill\": \""
        << f.fill << "\""
        << ",\n  \"load_seconds\": " << s.load_seconds << ",\n";
    for (const auto& side : sides) {
      out << "  \"" << side << "\": {\"seconds\": [";
      for (size_t i = 0; i < seconds[side].size(); ++i) {
        out << (i ? ", " : "") << seconds[side][i];
      }
      out << "], \"changes_per_second\": " << cps[side] << "},\n";
    }
    out << "  \"ratio_replay_to_native\": " << vs_native
        << ",\n  \"ratio_replay_to_copy\": " << vs_copy
        << ",\n  \"ratio_rtt_to_direct\": " << rtt_ratio
        << ",\n  \"ratio_spool_replay_to_native\": " << spool_vs_native
        << ",\n  \"goals\": {\"native\": {\"min\": " << kGoalNative
        << ", \"met\": " << (vs_native >= kGoalNative ? "true" : "false")
        << "}, \"rtt\": {\"min\": " << kGoalRtt
        << ", \"met\": " << (rtt_ratio >= kGoalRtt ? "true" : "false") << "}}\n}\n";
  }
  s.source.reset();
  s.replay_standby.reset();
  s.native_standby.reset();
  if (own_dir && !f.keep) fs::remove_all(f.dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{"Apply throughput: lifeline replay against logical replication and COPY",
               "apply_bench"};
  app.add_option("--changes", f.changes, "Changes in the load")->capture_default_str();
  app.add_flag("--quick", f.quick, "50,000 changes instead (unless --changes is given)");
  app.add_option("--rounds", f.rounds, "Rounds of every side")->capture_default_str();
  app.add_option("--rtt-ms", f.rtt_ms, "Round trip between replayer and target for its 2nd run")
      ->capture_default_str();
  app.add_option("--partitions", f.partitions, "Partitions of the topic")->capture_default_str();
  app.add_option("--lifeline", f.lifeline, "The lifeline binary")->capture_default_str();
  app.add_option("--replay-arg", f.replay_args, "Extra flag for lifeline replay (repeatable)")
      ->allow_extra_args(false);
  app.add_option("--fill", f.fill,
                 "How the topic is filled: live (shipper during the load) or drain (ship "
                 "--until-drained after it)")
      ->capture_default_str()
      ->check(CLI::IsMember({"live", "drain"}));
  app.add_option("--kcat", f.kcat, "The kcat binary")->capture_default_str();
  app.add_option("--dir", f.dir, "Where clusters, spool and logs go (default: a temp dir)");
  app.add_option("--json", f.json, "Also write the results as JSON to this file");
  app.add_flag("--keep", f.keep, "Keep the directory afterwards");
  CLI11_PARSE(app, argc, argv);
  if (f.quick && app.count("--changes") == 0) f.changes = 50'000;
  if (f.changes < 100 || f.rounds < 1 || f.partitions < 1 || f.rtt_ms < 0) {
    std::cerr << "apply_bench: --changes >= 100, --rounds >= 1, --partitions >= 1\n";
    return 2;
  }
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  try {
    return Main(f);
  } catch (const std::exception& e) {
    std::cerr << "apply_bench: " << e.what() << "\n";
    return 1;
  }
}
