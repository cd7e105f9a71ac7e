// capture against a real PostgreSQL 15: type fidelity, transaction shapes, snapshot + stream with
// every row once, no loss or duplicates through kill -9 and source restarts, a transaction of a
// million rows in bounded memory, and /metrics following a known load.
#include <gtest/gtest.h>
#include <httplib.h>

#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "common/spool.h"
#include "tests/support/daemon.h"
#include "tests/support/test_env.h"

namespace lifeline {
namespace {

using testing::Trim;

using testing::LifelineDaemon;
using testing::TempDir;
using testing::WaitFor;
using namespace std::chrono_literals;

std::vector<v1::ChangeEvent> ReadSpool(const std::string& dir) {
  std::vector<v1::ChangeEvent> out;
  auto spool = Spool::OpenForRead(dir);
  if (!spool.ok()) return out;
  uint64_t next = 1;
  while (true) {
    auto batch = (*spool)->Read(next, 10'000);
    if (!batch.ok() || batch->empty()) break;
    for (const auto& rec : *batch) {
      auto ev = ParseEvent(rec);
      EXPECT_TRUE(ev.ok()) << ev.status().ToString();
      if (ev.ok()) out.push_back(*ev);
      next = rec.seq + 1;
    }
  }
  return out;
}

std::vector<v1::ChangeEvent> RowEvents(const std::vector<v1::ChangeEvent>& all) {
  std::vector<v1::ChangeEvent> out;
  for (const auto& ev : all) {
    if (ev.op() != v1::OP_HEARTBEAT && ev.op() != v1::OP_RESNAPSHOT_MARKER) out.push_back(ev);
  }
  return out;
}

// The text of column `name` in a row image ("<null>", "<unchanged>" for the other kinds).
std::string Col(const v1::ChangeEvent& ev, const v1::Row& row, const std::string& name) {
  for (int i = 0; i < ev.relation().columns_size(); ++i) {
    if (ev.relation().columns(i).name() != name) continue;
    if (i >= row.values_size()) return "<missing>";
    const auto& v = row.values(i);
    if (v.kind_case() == v1::Value::kText) return v.text();
    if (v.kind_case() == v1::Value::kUnchangedToast) return "<unchanged>";
    return "<null>";
  }
  return "<no column>";
}

class CaptureIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    pg_ = testing::StartPostgres({.name = "capture"});
    ASSERT_TRUE(pg_);
    testing::LoadReferenceSchema(*pg_, "app");
  }

  std::unique_ptr<LifelineDaemon> StartCapture(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"capture", "--source",  pg_->ConnInfo("app"),
                                     "--spool", spool_dir(), "--heartbeat-interval",
                                     "200ms"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto d = std::make_unique<LifelineDaemon>(args, tmp_.Sub("capture.log"));
    EXPECT_TRUE(d->Start());
    return d;
  }

  std::string spool_dir() const { return tmp_.Sub("spool"); }

  void Sql(const std::string& sql) {
    auto r = pg_->Psql(sql, "app");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  // Waits until the spool holds a heartbeat committed after everything done so far: then every
  // earlier commit is spooled too (commit order).
  void WaitCaughtUp(std::chrono::milliseconds timeout = 60s) {
    std::string lsn = Trim(*pg_->Psql("SELECT pg_current_wal_lsn()", "app"));
    uint64_t target = Lsn::Parse(lsn)->value();
    bool ok = WaitFor(
        [&] {
          auto spool = Spool::OpenForRead(spool_dir());
          return spool.ok() && (*spool)->last_complete_commit_lsn().value() > target;
        },
        timeout);
    ASSERT_TRUE(ok) << "capture did not catch up with " << lsn;
  }

  TempDir tmp_;
  std::unique_ptr<LocalPostgres> pg_;
};

TEST_F(CaptureIntegration, SpooledTextEqualsWhatPostgresPrints) {
  Sql("CREATE TABLE fidelity (id int PRIMARY KEY, a int[], t text[], b bytea, n numeric, "
      "ts timestamptz, j jsonb, s text, nothing text, g geography(Point,4326), "
      "u uuid, e emergency_issue_type)");
  auto capture =
      StartCapture({"--table", "public.fidelity", "--table", "public.emergency_requests"});
  ASSERT_TRUE(
      WaitFor([&] { return capture->Log().find("streaming from slot") != std::string::npos; }, 30s))
      << capture->Log();
  Sql("INSERT INTO fidelity VALUES (1, '{1,NULL,3}', '{\"a b\",\"c,d\",\"\\\\\"}', "
      "'\\x00ff10', 1" +
      std::string(99, '7') +
      ".5, '2026-01-02 03:04:05.123456+00', "
      "'{\"name\": \"Zoë ⛑\", \"n\": [1, 2.50, null]}', "
      "E'quote '' dq \" backslash \\\\ newline \\n tab \\t end', NULL, "
      "'SRID=4326;POINT(-0.1276 51.5072)', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'valve')");
  Sql("INSERT INTO emergency_requests (id, customer_name, phone_number, location_address, "
      "location_coordinates, vehicle_make_model, tyre_issue, status, notes) VALUES "
      "('11111111-2222-4333-8444-555555555555', 'O''Brien', '+44 7700 900123', "
      "E'1 High St\\nLondon', 'SRID=4326;POINT(-2.5 53.4)', 'Ford Focus', 'blowout', "
      "'en_route', '{\"lane\": 2, \"hazard\": true}')");
  WaitCaughtUp();
  auto events = RowEvents(ReadSpool(spool_dir()));
  ASSERT_EQ(events.size(), 2u);
  for (const auto& ev : events) {
    std::string table = ev.relation().table();
    std::string key_col = "id";
    std::string key = Col(ev, ev.after(), key_col);
    for (const auto& col : ev.relation().columns()) {
      auto expected = pg_->Psql("SELECT coalesce(" + col.name() + "::text, '<null>') FROM " +
                                    table + " WHERE id = '" + key + "'",
                                "app");
      ASSERT_TRUE(expected.ok()) << expected.status().ToString();
      std::string want = *expected;
      if (!want.empty() && want.back() == '\n') want.pop_back();
      EXPECT_EQ(Col(ev, ev.after(), col.name()), want) << table << "." << col.name();
    }
  }
  // Type names come from the source's catalog.
  std::map<std::string, std::string> types;
  for (const auto& c : events[0].relation().columns()) types[c.name()] = c.type_name();
  EXPECT_EQ(types["g"], "geography(Point,4326)");
  EXPECT_EQ(types["a"], "integer[]");
  EXPECT_EQ(types["e"], "emergency_issue_type");
  EXPECT_TRUE(events[0].relation().columns(0).key());
  EXPECT_FALSE(events[0].relation().columns(1).key());
  EXPECT_EQ(capture->Stop(), 0) << capture->Log();
}

TEST_F(CaptureIntegration, TransactionsRollbacksSavepointsToastKeysTruncateAndDdl) {
  Sql("CREATE TABLE t (id int PRIMARY KEY, v text, big text)");
  auto capture = StartCapture({"--table", "public.t"});
  ASSERT_TRUE(WaitFor(
      [&] { return capture->Log().find("streaming from slot") != std::string::npos; }, 30s));
  // md5 text barely compresses, so the value is stored out of line (TOASTed).
  const std::string big_sql =
      "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 400) g)";
  Sql("BEGIN; INSERT INTO t VALUES (1, 'one', " + big_sql +
      "); INSERT INTO t VALUES (2, 'two', "
      "NULL); UPDATE t SET v = 'uno' WHERE id = 1; COMMIT;");
  Sql("BEGIN; INSERT INTO t VALUES (3, 'rolled back', NULL); ROLLBACK;");
  Sql("BEGIN; INSERT INTO t VALUES (4, 'kept', NULL); SAVEPOINT s; INSERT INTO t VALUES (5, "
      "'undone', NULL); ROLLBACK TO SAVEPOINT s; INSERT INTO t VALUES (6, 'kept too', NULL); "
      "COMMIT;");
  Sql("UPDATE t SET id = 10 WHERE id = 2");
  Sql("DELETE FROM t WHERE id = 4");
  Sql("ALTER TABLE t ADD COLUMN extra int DEFAULT 7; INSERT INTO t (id, v) VALUES (20, 'new');");
  Sql("TRUNCATE t");
  WaitCaughtUp();
  auto events = RowEvents(ReadSpool(spool_dir()));
  ASSERT_EQ(events.size(), 9u);

  // One transaction of three events, indexed, last one marked.
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(events[i].xid(), events[0].xid());
    EXPECT_EQ(events[i].index_in_txn(), static_cast<uint32_t>(i));
    EXPECT_EQ(events[i].last_in_txn(), i == 2);
    EXPECT_EQ(events[i].commit_lsn(), events[0].commit_lsn());
  }
  EXPECT_EQ(events[2].txn_event_count(), 3u);
  EXPECT_GT(events[0].commit_time_us(), 1'700'000'000'000'000LL);
  std::string big = Trim(*pg_->Psql("SELECT " + big_sql, "app"));
  EXPECT_EQ(Col(events[0], events[0].after(), "big").size(), 12800u);
  EXPECT_TRUE(Col(events[0], events[0].after(), "big") == big) << "the TOASTed value round-trips";
  // The UPDATE left the TOASTed value out: unchanged, not null.
  EXPECT_EQ(events[2].op(), v1::OP_UPDATE);
  EXPECT_EQ(Col(events[2], events[2].after(), "v"), "uno");
  EXPECT_EQ(Col(events[2], events[2].after(), "big"), "<unchanged>");

  // Rollback: nothing. Savepoint: only the kept part.
  EXPECT_EQ(Col(events[3], events[3].after(), "id"), "4");
  EXPECT_EQ(Col(events[4], events[4].after(), "id"), "6");
  EXPECT_TRUE(events[4].last_in_txn());

  // A primary-key change carries the old key.
  EXPECT_EQ(events[5].op(), v1::OP_UPDATE);
  EXPECT_EQ(Col(events[5], events[5].before(), "id"), "2");
  EXPECT_EQ(Col(events[5], events[5].after(), "id"), "10");

  EXPECT_EQ(events[6].op(), v1::OP_DELETE);
  EXPECT_EQ(Col(events[6], events[6].before(), "id"), "4");
  EXPECT_FALSE(events[6].has_after());

  // After ALTER TABLE the new column is described and carried.
  EXPECT_EQ(events[7].op(), v1::OP_INSERT);
  EXPECT_EQ(Col(events[7], events[7].after(), "extra"), "7");
  EXPECT_GT(events[7].relation().schema_version(), events[0].relation().schema_version());

  EXPECT_EQ(events[8].op(), v1::OP_TRUNCATE);
  EXPECT_EQ(events[8].relation().table(), "t");

  // Seqs are contiguous and commit LSNs never go backwards across the whole spool.
  auto all = ReadSpool(spool_dir());
  for (size_t i = 1; i < all.size(); ++i) {
    EXPECT_EQ(all[i].seq(), all[i - 1].seq() + 1);
    EXPECT_GE(all[i].commit_lsn(), all[i - 1].commit_lsn());
  }
  EXPECT_EQ(capture->Stop(), 0);
}

TEST_F(CaptureIntegration, SnapshotAndStreamCaptureEveryRowOnceAcrossRestarts) {
  Sql("CREATE TABLE items (n int PRIMARY KEY, v text)");
  Sql("INSERT INTO items SELECT g, 'before' FROM generate_series(1, 3000) g");
  // Writes keep landing while capture creates its slot and reads the snapshot.
  CommandSpec load;
  load.argv = {"psql",
               "-X",
               "-q",
               "-h",
               "127.0.0.1",
               "-p",
               std::to_string(pg_->port()),
               "-U",
               "postgres",
               "-d",
               "app",
               "-c",
               "DO $$ BEGIN FOR i IN 3001..4500 LOOP INSERT INTO items VALUES (i, 'during'); "
               "COMMIT; PERFORM pg_sleep(0.001); END LOOP; END $$"};
  auto loader = ChildProcess::Start(load, tmp_.Sub("load.log"));
  ASSERT_TRUE(loader.ok());
  std::this_thread::sleep_for(200ms);
  auto capture = StartCapture({"--table", "public.items"});
  ASSERT_TRUE(loader->Wait(120s).ok());
  EXPECT_EQ(capture->Stop(), 0) << capture->Log();
  // A restart after the snapshot finished does not snapshot again.
  Sql("INSERT INTO items SELECT g, 'after' FROM generate_series(4501, 5000) g");
  capture = StartCapture({"--table", "public.items"});
  WaitCaughtUp();
  EXPECT_EQ(capture->Stop(), 0);
  std::map<int, int> seen;
  size_t snapshot_rows = 0;
  for (const auto& ev : RowEvents(ReadSpool(spool_dir()))) {
    seen[std::stoi(Col(ev, ev.after(), "n"))]++;
    if (ev.op() == v1::OP_SNAPSHOT) ++snapshot_rows;
  }
  EXPECT_EQ(seen.size(), 5000u);
  for (const auto& [n, count] : seen) ASSERT_EQ(count, 1) << "row " << n << " captured twice";
  EXPECT_GE(snapshot_rows, 3000u);
  EXPECT_LT(snapshot_rows, 5000u);
  EXPECT_EQ(capture->Log().find("taking the initial snapshot", capture->Log().find("streaming")),
            std::string::npos)
      << "the second start must not snapshot again";
}

// The load: 5,000 transactions of 10 inserts and 1 update each (55,000 changes), numbered so the
// spool can be checked against exactly what committed.
constexpr int kTxns = 5000;
constexpr int kRowsPerTxn = 10;

std::string LoadSql(int from_txn, int to_txn) {
  return "DO $$ BEGIN FOR i IN " + std::to_string(from_txn) + ".." + std::to_string(to_txn) +
         " LOOP INSERT INTO items SELECT g, 0 FROM generate_series((i - 1) * 10 + 1, i * 10) g; "
         "UPDATE items SET v = v + 1 WHERE n = (i - 1) * 10 + 1; COMMIT; "
         "PERFORM pg_sleep(0.0005); END LOOP; END $$";
}

// Every committed insert and update is in the spool exactly once, in commit order, whole
// transactions, seqs contiguous, the hash chain intact.
void CheckAgainstCommitted(const std::string& spool_dir, const LocalPostgres& pg) {
  auto spool = Spool::OpenForRead(spool_dir);
  ASSERT_TRUE(spool.ok());
  Status verified = (*spool)->Verify();
  ASSERT_TRUE(verified.ok()) << verified.ToString();
  auto rows =
      pg.Psql("SELECT count(*), coalesce(max(n), 0), coalesce(sum(v), 0) FROM items", "app");
  ASSERT_TRUE(rows.ok());
  long long count = 0, max_n = 0, updates = 0;
  ASSERT_EQ(std::sscanf(rows->c_str(), "%lld|%lld|%lld", &count, &max_n, &updates), 3);
  ASSERT_EQ(count, max_n) << "the load commits numbered rows without holes";
  int64_t next_insert = 1, updates_seen = 0;
  uint64_t prev_commit = 0;
  for (const auto& ev : RowEvents(ReadSpool(spool_dir))) {
    ASSERT_GE(ev.commit_lsn(), prev_commit);
    prev_commit = ev.commit_lsn();
    int64_t n = std::stoll(Col(ev, ev.after(), "n"));
    if (ev.op() == v1::OP_INSERT) {
      ASSERT_EQ(n, next_insert) << "insert missing, duplicated or out of order at seq " << ev.seq();
      ++next_insert;
    } else {
      ASSERT_EQ(ev.op(), v1::OP_UPDATE);
      ASSERT_EQ(n, (next_insert - 2) / kRowsPerTxn * kRowsPerTxn + 1) << "at seq " << ev.seq();
      ++updates_seen;
    }
  }
  EXPECT_EQ(next_insert - 1, count) << "committed inserts missing from the spool";
  EXPECT_EQ(updates_seen, updates) << "committed updates missing or duplicated";
}

TEST_F(CaptureIntegration, NoLossNoDuplicatesThroughRepeatedKillNine) {
  Sql("CREATE TABLE items (n bigint PRIMARY KEY, v int)");
  auto capture = StartCapture({"--table", "public.items", "--batch-events", "500"});
  ASSERT_TRUE(WaitFor(
      [&] { return capture->Log().find("streaming from slot") != std::string::npos; }, 30s));
  CommandSpec load;
  load.argv = {"psql",
               "-X",
               "-q",
               "-v",
               "ON_ERROR_STOP=1",
               "-h",
               "127.0.0.1",
               "-p",
               std::to_string(pg_->port()),
               "-U",
               "postgres",
               "-d",
               "app",
               "-c",
               LoadSql(1, kTxns)};
  auto loader = ChildProcess::Start(load, tmp_.Sub("load.log"));
  ASSERT_TRUE(loader.ok());
  std::mt19937 rng(std::random_device{}());
  int kills = 0;
  for (int i = 0; i < 40 && loader->running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + rng() % 450));
    capture->Kill();
    ++kills;
    capture = StartCapture({"--table", "public.items", "--batch-events", "500"});
  }
  auto load_exit = loader->Wait(300s);
  ASSERT_TRUE(load_exit.ok());
  ASSERT_EQ(*load_exit, 0) << "the load itself failed";
  EXPECT_GE(kills, 10) << "the load ended too soon to kill capture ten times";
  WaitCaughtUp(120s);
  EXPECT_EQ(capture->Stop(), 0);
  CheckAgainstCommitted(spool_dir(), *pg_);
  auto rows = pg_->Psql("SELECT count(*) FROM items", "app");
  EXPECT_EQ(Trim(*rows), std::to_string(kTxns * kRowsPerTxn));
}

TEST_F(CaptureIntegration, SourceImmediateRestartMidLoadLosesNothing) {
  Sql("CREATE TABLE items (n bigint PRIMARY KEY, v int)");
  auto capture = StartCapture({"--table", "public.items"});
  ASSERT_TRUE(WaitFor(
      [&] { return capture->Log().find("streaming from slot") != std::string::npos; }, 30s));
  CommandSpec load;
  load.argv = {
      "psql",     "-X", "-q",  "-h", "127.0.0.1",     "-p", std::to_string(pg_->port()), "-U",
      "postgres", "-d", "app", "-c", LoadSql(1, 2000)};
  auto loader = ChildProcess::Start(load, tmp_.Sub("load.log"));
  ASSERT_TRUE(loader.ok());
  std::this_thread::sleep_for(1500ms);
  ASSERT_TRUE(pg_->Restart("immediate").ok());  // the load dies with the server
  ASSERT_TRUE(loader->Wait(60s).ok());
  // Carry on numbering after what survived.
  auto max_txn = pg_->Psql("SELECT coalesce(max(n), 0) / 10 FROM items", "app");
  ASSERT_TRUE(max_txn.ok());
  int from = std::stoi(Trim(*max_txn)) + 1;
  Sql(LoadSql(from, from + 200));
  WaitCaughtUp(120s);
  EXPECT_TRUE(capture->running()) << "capture must reconnect, not exit";
  EXPECT_NE(capture->Log().find("retrying"), std::string::npos);
  EXPECT_EQ(capture->Stop(), 0);
  CheckAgainstCommitted(spool_dir(), *pg_);
}

// Resident set of `pid` from /proc/PID/status: `field` is "VmRSS" or "VmHWM" (peak); KiB, 0 if
// gone.
uint64_t ProcStatusKb(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::stoull(line.substr(field.size() + 1));
  }
  return 0;
}

// One transaction of 1,000,000 rows streams through capture: its memory stays bounded (it never
// holds a transaction) and the spool holds the whole transaction, every row once, in order.
TEST_F(CaptureIntegration, MillionRowTransactionInBoundedMemory) {
  constexpr int64_t kRows = 1'000'000;
  constexpr uint64_t kMaxRssKb = 200 * 1024;
  Sql("CREATE TABLE big (n bigint PRIMARY KEY, v text)");
  CommandSpec spec;
  spec.argv = {testing::LifelineBinary(),
               "capture",
               "--source",
               pg_->ConnInfo("app"),
               "--spool",
               spool_dir(),
               "--table",
               "public.big",
               "--heartbeat-interval",
               "200ms"};
  std::string log = tmp_.Sub("capture.log");
  auto capture = ChildProcess::Start(spec, log);
  ASSERT_TRUE(capture.ok()) << capture.status().ToString();
  auto log_text = [&] {
    std::ifstream in(log);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  ASSERT_TRUE(
      WaitFor([&] { return log_text().find("streaming from slot") != std::string::npos; }, 30s))
      << log_text();
  uint64_t seq_before = testing::SpoolLastSeq(spool_dir());

  // The insert runs beside the sampling, so the resident set is watched while the rows stream.
  CommandSpec load;
  load.argv = {"psql",
               "-X",
               "-q",
               "-v",
               "ON_ERROR_STOP=1",
               "-h",
               "127.0.0.1",
               "-p",
               std::to_string(pg_->port()),
               "-U",
               "postgres",
               "-d",
               "app",
               "-c",
               "INSERT INTO big SELECT g, 'row ' || g || ' ' || md5(g::text) FROM "
               "generate_series(1, " +
                   std::to_string(kRows) + ") g"};
  auto loader = ChildProcess::Start(load, tmp_.Sub("load.log"));
  ASSERT_TRUE(loader.ok());
  uint64_t max_rss_kb = 0;
  auto deadline = std::chrono::steady_clock::now() + 600s;
  bool done = false;
  while (!done && std::chrono::steady_clock::now() < deadline) {
    max_rss_kb = std::max(max_rss_kb, ProcStatusKb(capture->pid(), "VmRSS"));
    ASSERT_TRUE(capture->running()) << log_text();
    done = !loader->running() && testing::SpoolLastSeq(spool_dir()) > seq_before;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(done) << "the million-row transaction did not reach the spool in 600 s";
  auto load_exit = loader->Wait(1s);
  ASSERT_TRUE(load_exit.ok() && *load_exit == 0) << "the load failed";
  WaitCaughtUp(120s);
  uint64_t peak_kb = ProcStatusKb(capture->pid(), "VmHWM");
  max_rss_kb = std::max(max_rss_kb, ProcStatusKb(capture->pid(), "VmRSS"));
  EXPECT_LT(peak_kb, kMaxRssKb) << "capture's peak resident set (VmHWM) " << peak_kb << " KiB";
  EXPECT_LT(max_rss_kb, kMaxRssKb)
      << "capture's resident set (VmRSS) reached " << max_rss_kb << " KiB";
  std::printf("capture resident set: peak %llu KiB (VmHWM), largest sample %llu KiB\n",
              static_cast<unsigned long long>(peak_kb),
              static_cast<unsigned long long>(max_rss_kb));
  auto stopped = capture->Stop(SIGTERM, 30s);
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(*stopped, 0) << log_text();

  // The spool holds the transaction whole: 1,000,000 INSERT events of one xid, indexed 0..N-1,
  // rows 1..N in order, only the last marked, carrying the count.
  auto spool = Spool::OpenForRead(spool_dir());
  ASSERT_TRUE(spool.ok()) << spool.status().ToString();
  Status verified = (*spool)->Verify();
  ASSERT_TRUE(verified.ok()) << verified.ToString();
  uint64_t next = seq_before + 1;
  int64_t rows = 0;
  uint32_t xid = 0;
  uint64_t commit_lsn = 0;
  bool last_seen = false;
  while (next <= (*spool)->last_complete_seq()) {
    auto batch = (*spool)->Read(next, 20'000);
    ASSERT_TRUE(batch.ok()) << batch.status().ToString();
    ASSERT_FALSE(batch->empty());
    for (const auto& rec : *batch) {
      next = rec.seq + 1;
      auto ev = ParseEvent(rec);
      ASSERT_TRUE(ev.ok()) << ev.status().ToString();
      if (ev->op() == v1::OP_HEARTBEAT) continue;
      ASSERT_FALSE(last_seen) << "an event after the transaction's last, at seq " << rec.seq;
      ASSERT_EQ(ev->op(), v1::OP_INSERT) << "at seq " << rec.seq;
      if (rows == 0) {
        xid = ev->xid();
        commit_lsn = ev->commit_lsn();
      }
      ASSERT_EQ(ev->xid(), xid) << "at seq " << rec.seq;
      ASSERT_EQ(ev->commit_lsn(), commit_lsn) << "at seq " << rec.seq;
      ASSERT_EQ(ev->index_in_txn(), static_cast<uint32_t>(rows)) << "at seq " << rec.seq;
      ASSERT_EQ(ev->after().values(0).text(), std::to_string(rows + 1)) << "at seq " << rec.seq;
      ++rows;
      if (ev->last_in_txn()) {
        last_seen = true;
        EXPECT_EQ(ev->txn_event_count(), static_cast<uint32_t>(kRows));
      }
    }
  }
  EXPECT_EQ(rows, kRows);
  EXPECT_TRUE(last_seen) << "the transaction's last event is not marked";
}

// /metrics of a running capture: snapshot progress, events decoded and spooled per operation,
// the last commit LSN, the confirmed flush LSN, WAL bytes behind and seconds since the last event
// all follow a known load.
TEST_F(CaptureIntegration, MetricsFollowAKnownLoad) {
  Sql("CREATE TABLE items (n int PRIMARY KEY, v int)");
  Sql("INSERT INTO items SELECT g, 0 FROM generate_series(1, 5) g; ANALYZE items");
  Sql("CREATE TABLE other (n int, pad text)");
  auto port = PickFreePort();
  ASSERT_TRUE(port.ok());
  // No heartbeats, so every event counted below comes from the load.
  LifelineDaemon capture({"capture", "--source", pg_->ConnInfo("app"), "--spool", spool_dir(),
                          "--table", "public.items", "--heartbeat-interval", "1h", "--metrics-addr",
                          "127.0.0.1:" + std::to_string(*port)},
                         tmp_.Sub("capture.log"));
  ASSERT_TRUE(capture.Start());
  ASSERT_TRUE(
      WaitFor([&] { return capture.Log().find("streaming from slot") != std::string::npos; }, 30s))
      << capture.Log();
  httplib::Client http("127.0.0.1", *port);
  http.set_connection_timeout(2s);
  http.set_read_timeout(5s);
  // The value of one series ("name" or "name{op=\"insert\"}"), or -1 when absent.
  auto metric = [&](const std::string& series) -> double {
    auto res = http.Get("/metrics");
    if (!res || res->status != 200) return -1;
    size_t at = res->body.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::strtod(res->body.c_str() + at + 1 + series.size() + 1, nullptr);
  };
  auto wal_lsn = [&] {
    return static_cast<double>(
        Lsn::Parse(Trim(*pg_->Psql("SELECT pg_current_wal_lsn()", "app")))->value());
  };
  auto op = [](const std::string& family, const std::string& name) {
    return family + "{op=\"" + name + "\"}";
  };

  // The snapshot: five rows, estimated, read, spooled and done.
  EXPECT_EQ(metric("lifeline_capture_snapshot_done"), 1);
  EXPECT_EQ(metric("lifeline_capture_snapshot_rows_total"), 5);
  EXPECT_EQ(metric("lifeline_capture_snapshot_rows_spooled_total"), 5);
  EXPECT_EQ(metric("lifeline_capture_snapshot_rows_estimated"), 5);
  EXPECT_EQ(metric(op("lifeline_capture_events_decoded_total", "snapshot")), 5);
  EXPECT_EQ(metric("lifeline_capture_events_spooled_total"), 0);
  EXPECT_EQ(metric("lifeline_capture_connected"), 1);

  // The load: 100 inserts, 40 updates, 10 deletes in three transactions.
  Sql("INSERT INTO items SELECT g, 0 FROM generate_series(6, 105) g");
  Sql("UPDATE items SET v = 1 WHERE n BETWEEN 6 AND 45");
  double before_last = wal_lsn();
  Sql("DELETE FROM items WHERE n BETWEEN 96 AND 105");
  double after_last = wal_lsn();
  ASSERT_TRUE(WaitFor([&] { return metric("lifeline_capture_events_spooled_total") >= 150; }, 30s))
      << capture.Log();
  EXPECT_EQ(metric("lifeline_capture_events_spooled_total"), 150);
  EXPECT_EQ(metric("lifeline_capture_transactions_total"), 3);
  for (const auto& [name, n] : std::vector<std::pair<std::string, double>>{
           {"insert", 100}, {"update", 40}, {"delete", 10}, {"truncate", 0}, {"heartbeat", 0}}) {
    EXPECT_EQ(metric(op("lifeline_capture_events_decoded_total", name)), n) << name;
    EXPECT_EQ(metric(op("lifeline_capture_events_spooled_by_op_total", name)), n) << name;
  }
  double last_commit = metric("lifeline_capture_last_commit_lsn");
  EXPECT_GT(last_commit, before_last) << "the last commit LSN is the DELETE's";
  EXPECT_LE(last_commit, after_last);
  // Confirmed within a status interval or two, and the slot shows the same.
  EXPECT_TRUE(
      WaitFor([&] { return metric("lifeline_capture_confirmed_flush_lsn") >= last_commit; }, 5s));
  auto slot_lsn = [&] {
    return static_cast<double>(
        Lsn::Parse(Trim(*pg_->Psql("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE "
                                   "slot_name = 'lifeline'",
                                   "app")))
            ->value());
  };
  EXPECT_TRUE(WaitFor([&] { return slot_lsn() >= last_commit; }, 5s));

  // WAL behind: WAL the captured table does not see is confirmed from keepalives, so after a
  // burst of it the lag comes back to (nearly) nothing; source WAL LSN minus flush LSN throughout.
  Sql("INSERT INTO other SELECT g, repeat('x', 500) FROM generate_series(1, 20000) g");
  double burst_end = wal_lsn();
  ASSERT_GT(burst_end - after_last, 8e6) << "the burst should write megabytes of WAL";
  EXPECT_TRUE(WaitFor([&] { return metric("lifeline_capture_source_wal_lsn") >= burst_end; }, 5s));
  EXPECT_TRUE(WaitFor([&] { return metric("lifeline_capture_source_lag_bytes") < 1e6; }, 15s))
      << "lag " << metric("lifeline_capture_source_lag_bytes");
  EXPECT_GE(metric("lifeline_capture_confirmed_flush_lsn"), burst_end - 1e6);
  double lag = metric("lifeline_capture_source_lag_bytes");
  EXPECT_GE(lag, 0);
  EXPECT_LE(lag, metric("lifeline_capture_source_wal_lsn") -
                     metric("lifeline_capture_confirmed_flush_lsn") + 1e6);

  // Seconds since the last event grow while nothing is captured and drop with a new event.
  EXPECT_TRUE(
      WaitFor([&] { return metric("lifeline_capture_seconds_since_last_event") >= 5; }, 15s));
  Sql("INSERT INTO items VALUES (1000, 0)");
  ASSERT_TRUE(WaitFor([&] { return metric("lifeline_capture_events_spooled_total") >= 151; }, 10s));
  // It counts again from the new event, so it stays below where it was for a few seconds.
  EXPECT_TRUE(WaitFor([&] { return metric("lifeline_capture_seconds_since_last_event") < 3; }, 3s));
  EXPECT_EQ(metric(op("lifeline_capture_events_decoded_total", "insert")), 101);
  EXPECT_EQ(metric("lifeline_capture_spool_write_failing"), 0);
  EXPECT_EQ(capture.Stop(), 0) << capture.Log();
}

}  // namespace
}  // namespace lifeline
