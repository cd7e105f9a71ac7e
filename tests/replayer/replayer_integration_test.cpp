// The replayer end to end: primary -> capture -> spool or Kafka -> replay -> standby, compared
// row for row by the test (never by lifeline's own report); exactly once through kill -9;
// prefix consistency; poison records; schema drift; a change the target refuses; point-in-time
// rebuild; --dry-run; an unreachable target; a wrong password; contradictory flags; windows
// outside the source.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include "common/event_format.h"
#include "common/spool.h"
#include "tests/support/daemon.h"
#include "tests/support/json_reader.h"
#include "tests/support/test_env.h"

namespace lifeline {
namespace {

using testing::TableDigest;
using testing::Trim;

using testing::LifelineDaemon;
using testing::TempDir;
using testing::WaitFor;
using namespace std::chrono_literals;

class ReplayIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    primary_ = testing::StartPostgres({.name = "primary", .wal_archiving = WantArchive()});
    standby_ = testing::StartPostgres({.name = "standby"});
    ASSERT_TRUE(primary_ && standby_);
    testing::LoadReferenceSchema(*primary_, "app");
    testing::LoadReferenceSchema(*standby_, "app");
  }
  virtual bool WantArchive() const { return false; }

  std::unique_ptr<LifelineDaemon> StartCapture(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"capture", "--source",        primary_->ConnInfo("app"),
                                     "--spool", tmp_.Sub("spool"), "--heartbeat-interval",
                                     "200ms"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto d = std::make_unique<LifelineDaemon>(args, tmp_.Sub("capture.log"));
    EXPECT_TRUE(d->Start());
    return d;
  }
  std::unique_ptr<LifelineDaemon> StartReplay(std::vector<std::string> extra = {}) {
    // Logs of every replayer of a test go to one file, in order.
    std::vector<std::string> args = {"replay", "--target", standby_->ConnInfo("app"), "--spool",
                                     tmp_.Sub("spool")};
    args.insert(args.end(), extra.begin(), extra.end());
    auto d = std::make_unique<LifelineDaemon>(args, tmp_.Sub("replay.log"));
    EXPECT_TRUE(d->Start());
    return d;
  }
  void RunLoad(const std::string& duration, int rate = 300) {
    CommandResult r = testing::RunLifeline(
        {"load", "--target", primary_->ConnInfo("app"), "--rate", std::to_string(rate),
         "--duration", duration, "--ledger", tmp_.Sub("ledger")},
        "", 600'000);
    ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  }
  uint64_t StandbyAppliedSeq() {
    auto r =
        standby_->Psql("SELECT coalesce(max(last_seq), 0) FROM lifeline.replay_position", "app");
    return r.ok() && !Trim(*r).empty() ? std::stoull(Trim(*r)) : 0;
  }
  // Waits until the standby applied everything the spool holds now and more.
  void WaitStandbyCaughtUp(std::chrono::milliseconds timeout = 120s) {
    std::string lsn = Trim(*primary_->Psql("SELECT pg_current_wal_lsn()", "app"));
    uint64_t target = Lsn::Parse(lsn)->value();
    ASSERT_TRUE(WaitFor(
        [&] {
          auto r = standby_->Psql("SELECT coalesce(max(last_commit_lsn), '0/0') > '" + lsn +
                                      "'::pg_lsn FROM lifeline.replay_position",
                                  "app");
          return r.ok() && Trim(*r) == "t";
        },
        timeout))
        << "standby did not reach " << lsn << " (" << target << ")\n"
        << testing::LifelineDaemon({}, tmp_.Sub("replay.log")).Log();
  }

  TempDir tmp_;
  std::unique_ptr<LocalPostgres> primary_, standby_;
};

TEST_F(ReplayIntegration, StandbyEqualsPrimaryAfterAMixedLoad) {
  auto capture = StartCapture();
  auto replay = StartReplay({"--audit-table", "public.emergency_requests_audit"});
  RunLoad("8s", 400);
  WaitStandbyCaughtUp();
  EXPECT_EQ(TableDigest(*standby_), TableDigest(*primary_));
  // The audit table holds one row per applied row change.
  auto spool = Spool::OpenForRead(tmp_.Sub("spool"));
  ASSERT_TRUE(spool.ok());
  uint64_t row_events = 0;
  for (uint64_t next = 1;;) {
    auto batch = (*spool)->Read(next, 5000);
    if (!batch.ok() || batch->empty()) break;
    for (const auto& rec : *batch) {
      auto ev = ParseEvent(rec);
      if (ev.ok() && (ev->op() == v1::OP_INSERT || ev->op() == v1::OP_UPDATE ||
                      ev->op() == v1::OP_DELETE || ev->op() == v1::OP_SNAPSHOT)) {
        ++row_events;
      }
      next = rec.seq + 1;
    }
  }
  auto audit = standby_->Psql("SELECT count(*) FROM emergency_requests_audit", "app");
  EXPECT_EQ(Trim(*audit), std::to_string(row_events))
      << *standby_->Psql("SELECT operation_type, count(*) FROM emergency_requests_audit GROUP BY 1",
                         "app")
      << *standby_->Psql(
             "SELECT operation_type, record_id, count(*) FROM "
             "emergency_requests_audit GROUP BY 1, 2, new_values HAVING count(*) > 1 "
             "LIMIT 5",
             "app");
  EXPECT_EQ(replay->Stop(), 0) << replay->Log();
  EXPECT_EQ(capture->Stop(), 0);
}

// Statement shapes the load does not make: runs far longer than one multi-row statement, NULL
// values, a composite key that changes, unchanged TOAST values, a truncate between inserts.
TEST_F(ReplayIntegration, LongRunsNullsCompositeKeysToastAndTruncateArriveIntact) {
  const std::string ddl =
      "CREATE TABLE pairs (a int, b text, v text, big text, PRIMARY KEY (a, b)); "
      "ALTER TABLE pairs ALTER big SET STORAGE EXTERNAL; "
      "CREATE TABLE scratch (id int PRIMARY KEY, note text); "
      // Updates of many rows go as one UPDATE ... FROM (VALUES ...) with each value cast to its
      // column's type: types whose text needs its exact type (typmods, enum, arrays, jsonb).
      "CREATE TYPE mood AS ENUM ('calm', 'urgent'); "
      "CREATE TABLE typed (id uuid PRIMARY KEY, n numeric(10,2), c varchar(5), ch char(3), "
      "e mood, arr int[], j jsonb, ts timestamptz, b bytea, bits bit(3), d date)";
  ASSERT_TRUE(primary_->Psql(ddl, "app").ok());
  ASSERT_TRUE(standby_->Psql(ddl, "app").ok());
  auto capture = StartCapture(
      {"--table", "public.pairs", "--table", "public.scratch", "--table", "public.typed"});
  auto replay = StartReplay({"--batch-events", "700"});
  const std::vector<std::string> steps = {
      // 1,003 rows in one transaction: one run, sent in pieces of several sizes.
      "INSERT INTO pairs SELECT g, 'k' || (g % 3), CASE WHEN g % 4 = 0 THEN NULL ELSE 'v' || g "
      "END, CASE WHEN g % 100 = 0 THEN repeat(md5(g::text), 200) END FROM "
      "generate_series(1, 1003) g",
      "INSERT INTO scratch SELECT g, 'n' || g FROM generate_series(1, 50) g",
      "INSERT INTO typed SELECT md5(g::text)::uuid, g / 3.0, 'c' || g, 'h', 'calm', "
      "ARRAY[g, g + 1], jsonb_build_object('g', g, 's', 'a \"q\" b'), '2026-01-01'::timestamptz "
      "+ g * interval '1 minute', decode(md5(g::text), 'hex'), B'011', '2026-01-01'::date + g "
      "FROM generate_series(1, 300) g",
      "UPDATE typed SET n = n + 1.25, c = 'abcde', ch = 'xy', e = 'urgent', arr = arr || 7, "
      "j = j || '{\"k\": [1, null, \"x\"]}', ts = ts + interval '1 hour', b = b || '\\x00'::bytea, "
      "bits = B'101', d = d + 1",
      "UPDATE typed SET c = NULL, arr = NULL, j = 'null' WHERE n > 50",
      // Updates leaving the TOASTed column unsent, setting NULLs, and moving keys.
      "UPDATE pairs SET v = 'changed' WHERE a % 100 = 0",
      "UPDATE pairs SET v = NULL WHERE a % 3 = 0",
      "UPDATE pairs SET a = a + 5000, b = b || 'x' WHERE a % 7 = 0", "TRUNCATE scratch",
      "INSERT INTO scratch SELECT g, NULL FROM generate_series(1, 20) g",
      // A long run of deletes, then the same keys inserted again in one transaction.
      "DELETE FROM pairs WHERE a % 5 = 0",
      "BEGIN; INSERT INTO pairs SELECT g, 'k' || (g % 3), 'again' FROM generate_series(5, 1003, 5) "
      "g; DELETE FROM pairs WHERE a BETWEEN 10 AND 20; INSERT INTO pairs VALUES (10, 'k1', "
      "'back', NULL); COMMIT"};
  for (const auto& sql : steps) ASSERT_TRUE(primary_->Psql(sql, "app").ok()) << sql;
  WaitStandbyCaughtUp();
  for (const std::string table : {"pairs", "scratch", "typed"}) {
    const std::string digest =
        "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' "
        "ORDER BY t::text)), '') FROM " +
        table + " t";
    auto want = primary_->Psql(digest, "app");
    auto got = standby_->Psql(digest, "app");
    ASSERT_TRUE(want.ok() && got.ok());
    EXPECT_EQ(Trim(*got), Trim(*want)) << table << "\n" << replay->Log();
  }
  EXPECT_EQ(replay->Stop(), 0) << replay->Log();
  EXPECT_EQ(capture->Stop(), 0);
}

// A target transaction applies the net change of each row (replayer/net_changes.h) where the
// target's table allows it. Churn on a few keys in large transactions, with unchanged TOAST
// values, moved keys and a truncate, applied with netting (the daemon, then a window), with
// --each-change, and into a table whose trigger ties its rows to another table's (never netted):
// every one equals the primary.
TEST_F(ReplayIntegration, NetChangesLeaveTheStandbyAsEveryChangeInOrderDoes) {
  const std::string ddl =
      "CREATE TABLE churn (id int PRIMARY KEY, a text, n int, big text); "
      "ALTER TABLE churn ALTER big SET STORAGE EXTERNAL";
  auto tied = testing::StartPostgres({.name = "tied"});
  ASSERT_TRUE(tied);
  testing::LoadReferenceSchema(*tied, "app");
  for (const auto* pg : {primary_.get(), standby_.get(), tied.get()}) {
    ASSERT_TRUE(pg->Psql(ddl, "app").ok());
  }
  ASSERT_TRUE(tied->Psql("CREATE TABLE churn_log (n bigserial PRIMARY KEY, id int); "
                         "CREATE FUNCTION log_churn() RETURNS trigger LANGUAGE plpgsql AS "
                         "$$BEGIN INSERT INTO churn_log (id) VALUES (NEW.id); RETURN NEW; END$$; "
                         "CREATE TRIGGER churn_logged AFTER INSERT ON churn FOR EACH ROW "
                         "EXECUTE FUNCTION log_churn()",
                         "app")
                  .ok());
  auto capture = StartCapture({"--table", "public.churn"});
  // The load takes a moment; on a busy machine it could be over before the slot exists, and the
  // initial snapshot would then hold its end state with nothing to net.
  ASSERT_TRUE(WaitFor([&] { return testing::SpoolLastSeq(tmp_.Sub("spool")) > 0; }, 60s));
  auto replay = StartReplay();
  const std::string load = R"(
DO $$
DECLARE k int; r float8;
BEGIN
  PERFORM setseed(0.42);
  FOR t IN 1..80 LOOP
    FOR i IN 1..40 LOOP
      k := 1 + floor(random() * 30)::int;
      r := random();
      IF r < 0.30 THEN
        INSERT INTO churn VALUES (k, 'i' || t || '.' || i, i,
            CASE WHEN random() < 0.4 THEN repeat(md5(k::text || t), 300) END)
          ON CONFLICT (id) DO UPDATE SET a = excluded.a, n = excluded.n;
      ELSIF r < 0.60 THEN
        UPDATE churn SET a = 'u' || t || '.' || i, n = n + 1 WHERE id = k;
      ELSIF r < 0.68 THEN
        UPDATE churn SET big = repeat(md5(t::text || i), 300) WHERE id = k;
      ELSIF r < 0.70 THEN
        UPDATE churn SET id = k + 1000 WHERE id = k
          AND NOT EXISTS (SELECT 1 FROM churn WHERE id = k + 1000);
      ELSIF r < 0.95 THEN
        DELETE FROM churn WHERE id = k OR id = k + 1000;
      ELSE
        UPDATE churn SET n = NULL WHERE id BETWEEN k AND k + 3;
      END IF;
    END LOOP;
    IF t = 40 THEN TRUNCATE churn; END IF;
    COMMIT;
  END LOOP;
END
$$;)";
  ASSERT_TRUE(primary_->Psql(load, "app").ok());
  WaitStandbyCaughtUp();
  const std::string want = TableDigest(*primary_, "churn", "id");
  ASSERT_NE(want.rfind("0:", 0), 0u) << "the load must leave rows";
  EXPECT_EQ(TableDigest(*standby_, "churn", "id"), want);
  EXPECT_EQ(replay->Stop(), 0) << replay->Log();
  EXPECT_EQ(capture->Stop(), 0);

  // The same stream as a window, into an emptied table: netted, by mode and by table.
  auto window = [&](const LocalPostgres& pg, std::vector<std::string> extra) -> int64_t {
    EXPECT_TRUE(pg.Psql("TRUNCATE churn", "app").ok());
    // Target transactions end at --batch-events however slow the machine: what is netted depends
    // on where they end, and --batch-time would otherwise end them early under load.
    std::vector<std::string> args = {
        "replay", "--target",      pg.ConnInfo("app"), "--spool", tmp_.Sub("spool"), "--from-seq",
        "1",      "--stop-at-end", "--format",         "json",    "--batch-time",    "10m"};
    args.insert(args.end(), extra.begin(), extra.end());
    CommandResult r = testing::RunLifeline(args, "", 120'000);
    EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
    EXPECT_EQ(TableDigest(pg, "churn", "id"), want) << extra.size();
    testing::JsonValue summary = testing::ParseJson(r.stdout_text);
    return summary.has("row_changes_netted") ? summary["row_changes_netted"].AsInt() : -1;
  };
  EXPECT_GT(window(*standby_, {}), 300);  // 800 when written
  EXPECT_EQ(window(*standby_, {"--each-change"}), 0);
  EXPECT_EQ(window(*tied, {}), 0);
  // The trigger did fire on the target.
  EXPECT_NE(Trim(*tied->Psql("SELECT count(*) FROM churn_log", "app")), "0");
}

TEST_F(ReplayIntegration, ExactlyOnceThroughRepeatedKillNine) {
  auto capture = StartCapture();
  auto replay =
      StartReplay({"--audit-table", "public.emergency_requests_audit", "--batch-events", "50"});
  std::thread load([&] { RunLoad("15s", 300); });
  std::mt19937 rng(std::random_device{}());
  int kills = 0;
  auto start = std::chrono::steady_clock::now();
  // A fixed number of kills, most of them during the load; a slow machine takes longer over them.
  while (std::chrono::steady_clock::now() - start < 60s && kills < 24) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + rng() % 400));
    replay->Kill();
    ++kills;
    replay =
        StartReplay({"--audit-table", "public.emergency_requests_audit", "--batch-events", "50"});
  }
  load.join();
  EXPECT_GE(kills, 20);
  WaitStandbyCaughtUp();
  EXPECT_EQ(TableDigest(*standby_), TableDigest(*primary_));
  // Each applied change exactly once: no audit row twice for the same change.
  auto dup = standby_->Psql(
      "SELECT count(*) FROM (SELECT operation_type, \"timestamp\", record_id, new_values, "
      "old_values, count(*) FROM emergency_requests_audit GROUP BY 1, 2, 3, 4, 5 "
      "HAVING count(*) > 1) d",
      "app");
  EXPECT_EQ(Trim(*dup), "0") << "an event was applied twice";
  EXPECT_EQ(replay->Stop(), 0) << replay->Log();
  EXPECT_EQ(capture->Stop(), 0);
}

TEST_F(ReplayIntegration, TargetRestartMidLoadResumes) {
  auto capture = StartCapture();
  auto replay = StartReplay();
  std::thread load([&] { RunLoad("8s", 300); });
  std::this_thread::sleep_for(3s);
  ASSERT_TRUE(standby_->Restart("immediate").ok());
  load.join();
  WaitStandbyCaughtUp();
  EXPECT_EQ(TableDigest(*standby_), TableDigest(*primary_));
  EXPECT_TRUE(replay->running()) << "the replayer must ride out a target restart";
  EXPECT_EQ(replay->Stop(), 0) << replay->Log();
  EXPECT_EQ(capture->Stop(), 0);
}

TEST_F(ReplayIntegration, TheStandbyIsAlwaysAStateThePrimaryHad) {
  // Transfers between accounts keep the total constant in every committed state.
  ASSERT_TRUE(primary_
                  ->Psql("CREATE TABLE accounts (id int PRIMARY KEY, balance int); INSERT "
                         "INTO accounts SELECT g, 1000 FROM generate_series(1, 20) g",
                         "app")
                  .ok());
  ASSERT_TRUE(
      standby_->Psql("CREATE TABLE accounts (id int PRIMARY KEY, balance int)", "app").ok());
  auto capture = StartCapture({"--table", "public.accounts"});
  auto replay = StartReplay({"--batch-events", "7"});
  CommandSpec load;
  load.argv = {
      "psql",
      "-X",
      "-q",
      "-h",
      "127.0.0.1",
      "-p",
      std::to_string(primary_->port()),
      "-U",
      "postgres",
      "-d",
      "app",
      "-c",
      "DO $$ DECLARE a int; b int; BEGIN FOR i IN 1..3000 LOOP a := 1 + (i * 7) % 20; "
      "b := 1 + (i * 13) % 20; UPDATE accounts SET balance = balance - 5 WHERE id = a; "
      "UPDATE accounts SET balance = balance + 5 WHERE id = b; COMMIT; PERFORM pg_sleep(0.002); "
      "END LOOP; END $$"};
  auto loader = ChildProcess::Start(load, tmp_.Sub("transfers.log"));
  ASSERT_TRUE(loader.ok());
  int samples = 0, nonempty = 0;
  for (int i = 0; i < 400 && loader->running(); ++i) {
    auto r =
        standby_->Psql("SELECT count(*) || ':' || coalesce(sum(balance), 0) FROM accounts", "app");
    ASSERT_TRUE(r.ok());
    std::string s = Trim(*r);
    ++samples;
    if (s != "0:0") {
      ++nonempty;
      EXPECT_EQ(s, "20:20000") << "sample " << i << " is not a state the primary had";
    }
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(loader->Wait(120s).ok());
  WaitStandbyCaughtUp();
  EXPECT_EQ(TableDigest(*standby_, "accounts"), TableDigest(*primary_, "accounts"));
  EXPECT_GT(nonempty, 10) << "too few samples during the load (" << samples << ")";
  EXPECT_EQ(replay->Stop(), 0);
  EXPECT_EQ(capture->Stop(), 0);
}

TEST_F(ReplayIntegration, SchemaDriftStopsWithTheFixAndHoldsThePosition) {
  auto capture = StartCapture();
  auto replay = StartReplay();
  RunLoad("2s");
  WaitStandbyCaughtUp();
  uint64_t before = StandbyAppliedSeq();
  ASSERT_TRUE(
      primary_->Psql("ALTER TABLE emergency_requests ADD COLUMN priority int DEFAULT 3", "app")
          .ok());
  RunLoad("2s");
  EXPECT_EQ(replay->WaitExit(60s), 2) << replay->Log();
  EXPECT_NE(replay->Log().find("ALTER TABLE \"public\".\"emergency_requests\" ADD COLUMN "
                               "\"priority\" integer"),
            std::string::npos)
      << replay->Log();
  uint64_t held = StandbyAppliedSeq();
  EXPECT_GE(held, before);
  // Apply the DDL it printed (with the primary's default: a default fills existing rows without
  // any row change in the WAL) and start again: it resumes and converges.
  ASSERT_TRUE(
      standby_->Psql("ALTER TABLE emergency_requests ADD COLUMN priority integer DEFAULT 3", "app")
          .ok());
  replay = StartReplay();
  WaitStandbyCaughtUp();
  EXPECT_EQ(TableDigest(*standby_), TableDigest(*primary_));
  EXPECT_EQ(replay->Stop(), 0);
  EXPECT_EQ(capture->Stop(), 0);
}

TEST_F(ReplayIntegration, AChangeTheTargetRefusesStopsWithExitTwoAndHoldsThePosition) {
  auto capture = StartCapture();
  auto replay = StartReplay();
  RunLoad("1s");
  WaitStandbyCaughtUp();
  uint64_t before = StandbyAppliedSeq();
  // The standby refuses every new call: a constraint violation fails the same way on every
  // retry, so the replayer stops instead of retrying it forever.
  ASSERT_TRUE(standby_
                  ->Psql("ALTER TABLE emergency_requests ADD CONSTRAINT no_new_calls CHECK "
                         "(created_at < '" +
                             Trim(*standby_->Psql("SELECT now()", "app")) + "')",
                         "app")
                  .ok());
  RunLoad("1s");
  EXPECT_EQ(replay->WaitExit(60s), 2) << replay->Log();
  std::string log = replay->Log();
  EXPECT_NE(log.find("violates check constraint \"no_new_calls\""), std::string::npos) << log;
  EXPECT_NE(log.find("position is held"), std::string::npos) << log;
  EXPECT_EQ(log.find("reconnecting"), std::string::npos) << "a refused change is not retried";
  uint64_t held = StandbyAppliedSeq();
  EXPECT_GE(held, before);
  EXPECT_LT(held, testing::SpoolLastSeq(tmp_.Sub("spool")));
  // Fixed on the standby, it resumes from the held position and converges.
  ASSERT_TRUE(
      standby_->Psql("ALTER TABLE emergency_requests DROP CONSTRAINT no_new_calls", "app").ok());
  replay = StartReplay();
  WaitStandbyCaughtUp();
  EXPECT_EQ(TableDigest(*standby_), TableDigest(*primary_));
  EXPECT_EQ(replay->Stop(), 0);
  EXPECT_EQ(capture->Stop(), 0);
}

TEST_F(ReplayIntegration, SecondReplayerOfTheSameStreamIsKeptOut) {
  auto capture = StartCapture();
  auto replay = StartReplay();
  RunLoad("1s");
  WaitStandbyCaughtUp();
  CommandResult r = testing::RunLifeline(
      {"replay", "--target", standby_->ConnInfo("app"), "--spool", tmp_.Sub("spool")}, "", 30'000);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find("another replayer"), std::string::npos) << r.stderr_text;
  EXPECT_EQ(replay->Stop(), 0);
  EXPECT_EQ(capture->Stop(), 0);
}

TEST_F(ReplayIntegration, BadInputIsNamed) {
  CommandResult r = testing::RunLifeline({"replay", "--target", standby_->ConnInfo("app")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find("give exactly one source"), std::string::npos) << r.stderr_text;
  r = testing::RunLifeline({"replay", "--target", standby_->ConnInfo("app"), "--spool", "/x",
                            "--from-seq", "5", "--from-lsn", "0/1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find("exclude each other"), std::string::npos) << r.stderr_text;
  r = testing::RunLifeline({"replay", "--target", standby_->ConnInfo("app"), "--spool", "/x",
                            "--from-time", "yesterday"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find("malformed timestamp 'yesterday'"), std::string::npos);
  r = testing::RunLifeline(
      {"replay", "--target", standby_->ConnInfo("nosuchdb"), "--spool", tmp_.Sub("spool")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find("nosuchdb"), std::string::npos) << r.stderr_text;
}

TEST_F(ReplayIntegration, ContradictoryFlagsAndWindowsOutsideTheSpoolAreNamed) {
  auto capture = StartCapture();
  RunLoad("1s");
  ASSERT_TRUE(WaitFor([&] { return testing::SpoolLastSeq(tmp_.Sub("spool")) > 50; }, 60s));
  EXPECT_EQ(capture->Stop(), 0);
  uint64_t last = testing::SpoolLastSeq(tmp_.Sub("spool"));
  std::vector<std::string> base = {"replay", "--target", standby_->ConnInfo("app"), "--spool",
                                   tmp_.Sub("spool")};
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return testing::RunLifeline(args, "", 60'000);
  };
  struct Case {
    std::vector<std::string> flags;
    std::string message;
  };
  const Case cases[] = {
      {{"--dry-run", "--record-position"}, "--dry-run changes nothing"},
      {{"--from-seq", "50", "--until-seq", "10"}, "--until-seq is before --from-seq"},
      {{"--from-time", "2026-01-02 00:00:00", "--until-time", "2026-01-01 00:00:00"},
       "--until-time is before --from-time"},
      {{"--from-offset", "0:10"}, "--from-offset is for a Kafka source"},
      {{"--only-missing", "--record-position"}, "--only-missing"},
      {{"--kafka-brokers", "127.0.0.1:1"}, "give exactly one source"},
      {{"--from-seq", std::to_string(last + 100), "--stop-at-end"},
       "outside what spool " + tmp_.Sub("spool") + " holds (seq 1.." + std::to_string(last)},
      {{"--from-time", "2099-01-01 00:00:00", "--stop-at-end"}, "holds (seq 1.."},
  };
  for (const Case& c : cases) {
    CommandResult r = run(c.flags);
    EXPECT_EQ(r.exit_code, 2) << c.flags[0] << ": " << r.stderr_text;
    EXPECT_NE(r.stderr_text.find(c.message), std::string::npos)
        << c.flags[0] << ": " << r.stderr_text;
  }
  // None of them touched the target.
  auto bookkeeping =
      standby_->Psql("SELECT to_regclass('lifeline.replay_position') IS NULL", "app");
  EXPECT_EQ(Trim(*bookkeeping), "t");
  EXPECT_EQ(TableDigest(*standby_), "0:");
}

TEST_F(ReplayIntegration, DryRunSaysWhatItWouldDoAndChangesNothing) {
  auto capture = StartCapture();
  auto replay = StartReplay();
  RunLoad("2s");
  WaitStandbyCaughtUp();
  EXPECT_EQ(replay->Stop(), 0) << replay->Log();
  uint64_t applied = StandbyAppliedSeq();
  RunLoad("2s");
  WaitFor([&] { return testing::SpoolLastSeq(tmp_.Sub("spool")) > applied + 100; }, 60s);
  EXPECT_EQ(capture->Stop(), 0);
  uint64_t last = testing::SpoolLastSeq(tmp_.Sub("spool"));
  const std::string position_sql =
      "SELECT string_agg(t::text, '|' ORDER BY stream, partition) FROM lifeline.replay_position t";
  std::string digest = TableDigest(*standby_);
  std::string position = Trim(*standby_->Psql(position_sql, "app"));
  ASSERT_NE(digest, TableDigest(*primary_)) << "the dry run must have something to not do";

  // What is in the window, counted by the test from the spool.
  auto spool = Spool::OpenForRead(tmp_.Sub("spool"));
  ASSERT_TRUE(spool.ok());
  std::map<std::string, uint64_t> by_op;
  std::set<std::string> keys;
  auto batch = (*spool)->Read(applied + 1, 1'000'000);
  ASSERT_TRUE(batch.ok());
  for (const auto& rec : *batch) {
    auto ev = ParseEvent(rec);
    ASSERT_TRUE(ev.ok());
    if (ev->op() == v1::OP_INSERT || ev->op() == v1::OP_UPDATE || ev->op() == v1::OP_DELETE) {
      by_op[std::string(OpName(ev->op())) + " public.emergency_requests"]++;
      const v1::Row& row = ev->op() == v1::OP_DELETE ? ev->before() : ev->after();
      keys.insert(row.values(0).text());
    }
  }
  (*spool).reset();
  ASSERT_FALSE(by_op.empty());

  CommandResult r = testing::RunLifeline(
      {"replay", "--target", standby_->ConnInfo("app"), "--spool", tmp_.Sub("spool"), "--from-seq",
       std::to_string(applied + 1), "--dry-run"},
      "", 60'000);
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_NE(r.stdout_text.find("dry run (nothing changed)"), std::string::npos) << r.stdout_text;
  EXPECT_NE(r.stdout_text.find("seq " + std::to_string(applied + 1) + ".." + std::to_string(last)),
            std::string::npos)
      << r.stdout_text;
  for (const auto& [op, n] : by_op) {
    EXPECT_TRUE(std::regex_search(r.stdout_text, std::regex(op + " +" + std::to_string(n) + "\n")))
        << op << " " << n << " in\n"
        << r.stdout_text;
  }
  EXPECT_NE(r.stdout_text.find("keys touched " + std::to_string(keys.size())), std::string::npos)
      << r.stdout_text;

  r = testing::RunLifeline(
      {"replay", "--target", standby_->ConnInfo("app"), "--spool", tmp_.Sub("spool"), "--from-seq",
       std::to_string(applied + 1), "--dry-run", "--format", "json"},
      "", 60'000);
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_NE(r.stdout_text.find("\"dry_run\":true"), std::string::npos);
  EXPECT_NE(r.stdout_text.find("\"last_seq\":" + std::to_string(last)), std::string::npos);
  EXPECT_NE(r.stdout_text.find("\"keys_touched\":" + std::to_string(keys.size())),
            std::string::npos)
      << r.stdout_text;
  // Nothing changed: not the rows, not the stored position.
  EXPECT_EQ(TableDigest(*standby_), digest);
  EXPECT_EQ(Trim(*standby_->Psql(position_sql, "app")), position);
}

TEST_F(ReplayIntegration, AnUnreachableTargetIsRetriedUntilItComes) {
  auto capture = StartCapture();
  RunLoad("2s");
  ASSERT_TRUE(standby_->Stop("fast").ok());
  auto replay = StartReplay();
  // It keeps trying, with a growing wait, and says so.
  ASSERT_TRUE(WaitFor([&] { return replay->Log().find("(attempt 3)") != std::string::npos; }, 60s))
      << replay->Log();
  EXPECT_TRUE(replay->running());
  std::string log = replay->Log();
  std::vector<int> waits;
  const std::regex retrying("retrying in ([0-9]+) ms");
  for (std::sregex_iterator it(log.begin(), log.end(), retrying), end; it != end; ++it) {
    waits.push_back(std::stoi((*it)[1].str()));
  }
  ASSERT_GE(waits.size(), 3u) << log;
  EXPECT_LT(waits[0], waits[2]) << "the retries must back off";
  ASSERT_TRUE(standby_->Start().ok());
  RunLoad("1s");
  WaitStandbyCaughtUp();
  EXPECT_EQ(TableDigest(*standby_), TableDigest(*primary_));
  EXPECT_EQ(replay->Stop(), 0) << replay->Log();
  EXPECT_EQ(capture->Stop(), 0);
}

TEST_F(ReplayIntegration, AWrongPasswordIsRefusedWithExitTwo) {
  auto locked = testing::StartPostgres({.name = "locked", .superuser_password = "right horse"});
  ASSERT_TRUE(locked);
  ASSERT_TRUE(locked->CreateDatabase("app").ok());
  std::string file = tmp_.Sub("password");
  std::ofstream(file) << "wrong battery\n";
  CommandResult r = testing::RunLifeline({"replay", "--target", locked->ConnInfo("app"), "--spool",
                                          tmp_.Sub("spool"), "--target-password-file", file},
                                         "", 60'000);
  EXPECT_EQ(r.exit_code, 2) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("password authentication failed"), std::string::npos)
      << r.stderr_text;
  EXPECT_EQ(r.stderr_text.find("wrong battery"), std::string::npos) << "the secret was echoed";
  EXPECT_EQ(r.stderr_text.find("attempt"), std::string::npos) << "a refused login is not retried";
}

class PitrIntegration : public ReplayIntegration {
 protected:
  bool WantArchive() const override { return true; }
};

TEST_F(PitrIntegration, RebuildAfterPointInTimeRestoreAndOnlyMissing) {
  auto capture = StartCapture();
  RunLoad("2s");
  std::string backup = tmp_.Sub("backups/base");
  ASSERT_TRUE(primary_->BaseBackup(backup).ok());
  RunLoad("3s");
  std::string t = Trim(*primary_->Psql("SELECT now()::text", "app"));
  std::this_thread::sleep_for(100ms);
  RunLoad("3s");
  // Capture has everything, and the archive holds the WAL up to now.
  std::string end = Trim(*primary_->Psql("SELECT pg_current_wal_lsn()", "app"));
  ASSERT_TRUE(WaitFor(
      [&] {
        auto s = Spool::OpenForRead(tmp_.Sub("spool"));
        return s.ok() && (*s)->last_complete_commit_lsn() > *Lsn::Parse(end);
      },
      60s));
  Status archived = primary_->ArchiveUpToNow();
  ASSERT_TRUE(archived.ok()) << archived.ToString();
  auto restored =
      LocalPostgres::RestoreFromBackup({.name = "restored"}, backup, primary_->archive_dir(), t);
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  EXPECT_NE(TableDigest(**restored), TableDigest(*primary_)) << "the restore must lose the tail";
  CommandResult r = testing::RunLifeline(
      {"replay", "--target", (*restored)->ConnInfo("app"), "--spool", tmp_.Sub("spool"),
       "--from-time", t, "--stop-at-end", "--format", "json"},
      "", 120'000);
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_EQ(TableDigest(**restored), TableDigest(*primary_));

  // Rows deleted by mistake come back with --only-missing, and nothing else is touched.
  ASSERT_TRUE((*restored)
                  ->Psql("DELETE FROM emergency_requests WHERE id IN (SELECT id FROM "
                         "emergency_requests ORDER BY id LIMIT 25)",
                         "app")
                  .ok());
  r = testing::RunLifeline(
      {"replay", "--target", (*restored)->ConnInfo("app"), "--spool", tmp_.Sub("spool"),
       "--from-seq", "1", "--stop-at-end", "--only-missing"},
      "", 120'000);
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_EQ(TableDigest(**restored), TableDigest(*primary_));
  EXPECT_EQ(capture->Stop(), 0);
}

}  // namespace
}  // namespace lifeline
