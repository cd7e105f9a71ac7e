// `lifeline gapcheck` end to end: real primary and standby clusters and a spool written by capture;
// each report's JSON checked by structure, its exit code, its repair commands run for real, and
// the HTML reports opened in headless Chromium with a screenshot taken.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "common/spool.h"
#include "tests/support/daemon.h"
#include "tests/support/json_reader.h"
#include "tests/support/test_env.h"

namespace lifeline {
namespace {

using namespace std::chrono_literals;
using testing::JsonValue;
using testing::LifelineDaemon;
using testing::ParseJson;
using testing::TableDigest;
using testing::TempDir;
using testing::Trim;
using testing::WaitFor;

class GapcheckIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    primary_ = testing::StartPostgres({.name = "primary"});
    standby_ = testing::StartPostgres({.name = "standby"});
    ASSERT_TRUE(primary_ && standby_);
    testing::LoadReferenceSchema(*primary_, "app");
    testing::LoadReferenceSchema(*standby_, "app");
  }

  std::string Sql(const LocalPostgres& pg, const std::string& sql) {
    auto r = pg.Psql(sql, "app");
    EXPECT_TRUE(r.ok()) << sql << ": " << r.status().ToString();
    return r.ok() ? Trim(*r) : "";
  }

  CommandResult Gapcheck(std::vector<std::string> args) {
    args.insert(args.begin(), "gapcheck");
    return testing::RunLifeline(args, "", 300'000);
  }

  std::vector<std::string> Databases() {
    return {"--source", primary_->ConnInfo("app"), "--target", standby_->ConnInfo("app")};
  }

  std::unique_ptr<LifelineDaemon> StartCapture() {
    auto d = std::make_unique<LifelineDaemon>(
        std::vector<std::string>{"capture", "--source", primary_->ConnInfo("app"), "--spool",
                                 tmp_.Sub("spool"), "--heartbeat-interval", "200ms"},
        tmp_.Sub("capture.log"));
    EXPECT_TRUE(d->Start());
    return d;
  }
  std::unique_ptr<LifelineDaemon> StartReplay() {
    auto d = std::make_unique<LifelineDaemon>(
        std::vector<std::string>{"replay", "--target", standby_->ConnInfo("app"), "--spool",
                                 tmp_.Sub("spool")},
        tmp_.Sub("replay.log"));
    EXPECT_TRUE(d->Start());
    return d;
  }
  void RunLoad(const std::string& duration, int rate) {
    CommandResult r = testing::RunLifeline(
        {"load", "--target", primary_->ConnInfo("app"), "--rate", std::to_string(rate),
         "--duration", duration, "--ledger", tmp_.Sub("ledger")},
        "", 300'000);
    ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  }
  // Waits until the spool holds a commit past the primary's WAL position as of now.
  void WaitSpoolCaughtUp() {
    std::string lsn = Sql(*primary_, "SELECT pg_current_wal_lsn()");
    uint64_t want = Lsn::Parse(lsn)->value();
    ASSERT_TRUE(WaitFor(
        [&] {
          auto spool = Spool::OpenForRead(tmp_.Sub("spool"));
          return spool.ok() && (*spool)->last_complete_commit_lsn().value() > want;
        },
        60s))
        << "capture did not spool past " << lsn;
  }
  void WaitStandbyCaughtUp() {
    std::string lsn = Sql(*primary_, "SELECT pg_current_wal_lsn()");
    ASSERT_TRUE(WaitFor(
        [&] {
          auto r = standby_->Psql("SELECT coalesce(max(last_commit_lsn), '0/0') > '" + lsn +
                                      "'::pg_lsn FROM lifeline.replay_position",
                                  "app");
          return r.ok() && Trim(*r) == "t";
        },
        120s))
        << "standby did not reach " << lsn;
  }

  // Runs a repair command as printed by gapcheck, with `lifeline` as the binary under test.
  int RunPrinted(const std::string& command) {
    EXPECT_EQ(command.rfind("lifeline ", 0), 0u) << command;
    CommandSpec spec;
    spec.argv = {"bash", "-c", "\"$LIFELINE\" " + command.substr(9)};
    spec.extra_env = {"LIFELINE=" + testing::LifelineBinary()};
    spec.timeout = 120s;
    auto r = RunCommand(spec);
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r->exit_code, 0) << command << "\n" << r->stdout_text << r->stderr_text;
    return r.ok() ? r->exit_code : -1;
  }

  TempDir tmp_;
  std::unique_ptr<LocalPostgres> primary_, standby_;
};

// Rows with identical content on both sides, `per_minute` per minute for the last 90 minutes,
// except minutes 30 to 33 ago, which are empty on both sides.
void LoadMinutes(const LocalPostgres& pg, const std::string& base, int per_minute) {
  std::string sql =
      "INSERT INTO emergency_requests (id, customer_name, phone_number, status, created_at, "
      "completed_at) SELECT md5(m::text || '-' || k::text)::uuid, 'caller ' || m, '+44 7700 ' || "
      "k, CASE WHEN k % 2 = 0 THEN 'completed' ELSE 'pending' END::emergency_status, '" +
      base +
      "'::timestamptz - m * interval '1 minute' + k * interval '7 seconds', CASE WHEN k % "
      "2 = 0 THEN '" +
      base +
      "'::timestamptz - m * interval '1 minute' + interval '40 minutes' END FROM "
      "generate_series(1, 90) m, generate_series(0, " +
      std::to_string(per_minute - 1) + ") k WHERE m NOT BETWEEN 30 AND 33";
  auto r = pg.Psql(sql, "app");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
}

TEST_F(GapcheckIntegration, BucketsFlagDifferingBucketsAndEmptyRuns) {
  std::string base = Sql(*primary_, "SELECT date_trunc('minute', now())");
  LoadMinutes(*primary_, base, 5);
  LoadMinutes(*standby_, base, 5);

  std::vector<std::string> args = Databases();
  args.insert(args.begin(), "buckets");
  args.insert(args.end(), {"--since", "2h", "--bucket", "1m", "--format", "json"});
  CommandResult same = Gapcheck(args);
  ASSERT_EQ(same.exit_code, 0) << same.stdout_text << same.stderr_text;
  JsonValue clean = ParseJson(same.stdout_text);
  EXPECT_TRUE(clean["clean"].boolean);
  EXPECT_EQ(clean["differing_buckets"].AsInt(), 0);
  // Minutes 30..33 ago are a run of four empty buckets inside busy hours, on both sides. (Other
  // runs may be reported too: the minutes before the first row, when they are in its hour.)
  const std::string gap_from = Sql(*primary_, "SELECT to_char(('" + base +
                                                  "'::timestamptz - interval '33 minutes') AT "
                                                  "TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')");
  int planted_runs = 0;
  for (const JsonValue& run : clean["empty_runs"].items) {
    if (run["buckets"].AsInt() == 4 && run["from"].text.rfind(gap_from, 0) == 0) ++planted_runs;
  }
  EXPECT_EQ(planted_runs, 2) << gap_from << "\n" << same.stdout_text;
  EXPECT_EQ(clean["integrity"]["primary"]["total"].AsInt(), 86 * 5);
  EXPECT_EQ(clean["integrity"]["primary"]["by_status"]["completed"].AsInt(), 86 * 3);
  EXPECT_NEAR(clean["integrity"]["primary"]["mean_completion_minutes"].number, 40 - 14.0 / 60,
              0.01);

  // The standby loses minute 10 ago entirely and one row of minute 20 ago.
  Sql(*standby_, "DELETE FROM emergency_requests WHERE created_at >= '" + base +
                     "'::timestamptz - interval '10 minutes' AND created_at < '" + base +
                     "'::timestamptz - interval '9 minutes'");
  Sql(*standby_, "DELETE FROM emergency_requests WHERE created_at = '" + base +
                     "'::timestamptz - interval '20 minutes'");
  CommandResult diff = Gapcheck(args);
  ASSERT_EQ(diff.exit_code, 1) << diff.stdout_text << diff.stderr_text;
  JsonValue report = ParseJson(diff.stdout_text);
  EXPECT_FALSE(report["clean"].boolean);
  ASSERT_EQ(report["differing_buckets"].AsInt(), 2);
  std::map<int64_t, std::pair<int64_t, int64_t>> differing;  // primary -> (primary, standby)
  for (const JsonValue& b : report["buckets"].items) {
    if (b["differs"].boolean) differing[b["standby"].AsInt()] = {b["primary"].AsInt(), 0};
  }
  EXPECT_TRUE(differing.count(0) && differing.count(4)) << diff.stdout_text;
  bool standby_run_of_one = false;
  for (const JsonValue& run : report["empty_runs"].items) {
    if (run["side"].AsString() == "standby" && run["buckets"].AsInt() == 1) {
      standby_run_of_one = true;
    }
  }
  EXPECT_TRUE(standby_run_of_one) << diff.stdout_text;
  EXPECT_EQ(report["integrity"]["standby"]["total"].AsInt(), 86 * 5 - 6);

  // The text form names the differing buckets.
  args.pop_back();
  args.pop_back();
  CommandResult text = Gapcheck(args);
  EXPECT_EQ(text.exit_code, 1);
  EXPECT_NE(text.stdout_text.find("2 bucket(s) differ"), std::string::npos) << text.stdout_text;
}

TEST_F(GapcheckIntegration, RowsNameTheLastEventAndItsRepairCommandsFixTheStandby) {
  auto capture = StartCapture();
  auto replay = StartReplay();
  RunLoad("3s", 200);
  WaitStandbyCaughtUp();
  replay->Stop();
  ASSERT_EQ(TableDigest(*standby_), TableDigest(*primary_));

  std::vector<std::string> rows = Databases();
  rows.insert(rows.begin(), "rows");
  rows.insert(rows.end(), {"--spool", tmp_.Sub("spool"), "--format", "json"});
  CommandResult same = Gapcheck(rows);
  ASSERT_EQ(same.exit_code, 0) << same.stdout_text << same.stderr_text;

  // Plant: A missing on the standby; B changed on the standby; C deleted on the primary (the
  // delete is in the stream; the stopped replayer never applied it); D only on the standby, never
  // streamed.
  std::string ids = Sql(*primary_,
                        "SELECT string_agg(id::text, ',' ORDER BY id) FROM "
                        "(SELECT id FROM emergency_requests ORDER BY id LIMIT 3) s");
  std::vector<std::string> id;
  std::stringstream split(ids);
  for (std::string part; std::getline(split, part, ',');) id.push_back(part);
  ASSERT_EQ(id.size(), 3u) << ids;
  Sql(*primary_, "DELETE FROM emergency_requests WHERE id = '" + id[2] + "'");
  WaitSpoolCaughtUp();
  Sql(*standby_, "DELETE FROM emergency_requests WHERE id = '" + id[0] + "'");
  Sql(*standby_,
      "UPDATE emergency_requests SET customer_name = 'Someone Else' WHERE id = '" + id[1] + "'");
  const std::string d_id = "00000000-0000-4000-8000-00000000000d";
  Sql(*standby_, "INSERT INTO emergency_requests (id, customer_name, phone_number) VALUES ('" +
                     d_id + "', 'Nobody', '0')");

  CommandResult diff = Gapcheck(rows);
  ASSERT_EQ(diff.exit_code, 1) << diff.stdout_text << diff.stderr_text;
  JsonValue report = ParseJson(diff.stdout_text);
  ASSERT_EQ(report["missing"].size(), 1u) << diff.stdout_text;
  EXPECT_EQ(report["missing"][0]["key"]["id"].AsString(), id[0]);
  EXPECT_GT(report["missing"][0]["last_event"]["seq"].AsInt(), 0);
  ASSERT_EQ(report["different"].size(), 1u) << diff.stdout_text;
  EXPECT_EQ(report["different"][0]["key"]["id"].AsString(), id[1]);
  ASSERT_EQ(report["different"][0]["columns"].size(), 1u);
  EXPECT_EQ(report["different"][0]["columns"][0].AsString(), "customer_name");
  ASSERT_EQ(report["extra"].size(), 2u) << diff.stdout_text;
  std::set<std::string> extra;
  for (const JsonValue& e : report["extra"].items) {
    extra.insert(e["key"]["id"].AsString());
    if (e["key"]["id"].AsString() == id[2]) {
      EXPECT_EQ(e["last_op"].AsString(), "delete");
    }
    if (e["key"]["id"].AsString() == d_id) {
      EXPECT_FALSE(e.has("last_event"));
    }
  }
  EXPECT_EQ(extra, (std::set<std::string>{id[2], d_id}));

  // The printed repairs, run as printed, fix what the stream can fix; the never-streamed row is
  // named for a hand fix.
  int commands = 0;
  bool hand_fix_named = false;
  for (const JsonValue& c : report["repair_commands"].items) {
    if (c.AsString().rfind("#", 0) == 0) {
      hand_fix_named = c.AsString().find("1 differing key") != std::string::npos;
      continue;
    }
    ++commands;
    RunPrinted(c.AsString());
  }
  EXPECT_EQ(commands, 2) << diff.stdout_text;
  EXPECT_TRUE(hand_fix_named) << diff.stdout_text;
  Sql(*standby_, "DELETE FROM emergency_requests WHERE id = '" + d_id + "'");
  CommandResult fixed = Gapcheck(rows);
  EXPECT_EQ(fixed.exit_code, 0) << fixed.stdout_text << fixed.stderr_text;
  EXPECT_EQ(TableDigest(*standby_), TableDigest(*primary_));
}

TEST_F(GapcheckIntegration, RpoCountsTheTransactionsCommittedSinceTheReplayerStopped) {
  auto capture = StartCapture();
  auto replay = StartReplay();
  RunLoad("2s", 200);
  WaitStandbyCaughtUp();
  replay->Kill();

  // 25 single-row transactions and one that updates two rows: 26 would be lost.
  for (int i = 0; i < 25; ++i) {
    Sql(*primary_,
        "INSERT INTO emergency_requests (customer_name, phone_number) VALUES "
        "('rpo " +
            std::to_string(i) + "', '1')");
  }
  Sql(*primary_,
      "UPDATE emergency_requests SET status = 'cancelled' WHERE id IN (SELECT id FROM "
      "emergency_requests WHERE customer_name LIKE 'rpo %' ORDER BY id LIMIT 2)");
  WaitSpoolCaughtUp();

  std::vector<std::string> args = Databases();
  args.insert(args.begin(), "rpo");
  args.insert(args.end(), {"--spool", tmp_.Sub("spool"), "--format", "json"});
  CommandResult r = Gapcheck(args);
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  JsonValue rpo = ParseJson(r.stdout_text);
  EXPECT_EQ(rpo["lost_transactions"].AsInt(), 26) << r.stdout_text;
  EXPECT_EQ(rpo["lost_ops"]["insert"].AsInt(), 25);
  EXPECT_EQ(rpo["lost_ops"]["update"].AsInt(), 2);
  EXPECT_GT(rpo["rpo_seconds"].number, 0);
  EXPECT_LT(rpo["rpo_seconds"].number, 30);
  EXPECT_GT(rpo["lost_first_seq"].AsInt(), 0);

  // Judged against an objective already exceeded: exit 1. Without a stream: no count.
  std::this_thread::sleep_for(1200ms);
  args.insert(args.end(), {"--objective", "1s"});
  EXPECT_EQ(Gapcheck(args).exit_code, 1);
  std::vector<std::string> bare = Databases();
  bare.insert(bare.begin(), "rpo");
  bare.insert(bare.end(), {"--format", "json"});
  CommandResult no_stream = Gapcheck(bare);
  ASSERT_EQ(no_stream.exit_code, 0) << no_stream.stdout_text << no_stream.stderr_text;
  EXPECT_TRUE(ParseJson(no_stream.stdout_text)["lost_transactions"].is_null());
}

TEST_F(GapcheckIntegration, HtmlReportsOpenInHeadlessChromium) {
  std::string chromium = testing::RequireProgram("chromium", "chromium");
  auto capture = StartCapture();
  auto replay = StartReplay();
  RunLoad("2s", 200);
  WaitStandbyCaughtUp();
  Sql(*standby_,
      "DELETE FROM emergency_requests WHERE id = (SELECT id FROM emergency_requests ORDER BY id "
      "LIMIT 1)");

  std::vector<std::pair<std::string, std::vector<std::string>>> reports = {
      {"stream", {"stream", "--spool", tmp_.Sub("spool")}},
      {"buckets", {"buckets", "--spool", tmp_.Sub("spool")}},
      {"rows", {"rows", "--spool", tmp_.Sub("spool")}},
      {"rpo", {"rpo", "--spool", tmp_.Sub("spool")}}};
  for (auto& [name, args] : reports) {
    if (name != "stream") {
      std::vector<std::string> db = Databases();
      args.insert(args.begin() + 1, db.begin(), db.end());
    }
    std::string html = tmp_.Sub(name + ".html");
    args.insert(args.end(), {"--html", html});
    CommandResult r = Gapcheck(args);
    ASSERT_TRUE(r.exit_code == 0 || r.exit_code == 1) << name << ": " << r.stderr_text;

    // The page renders: its DOM as Chromium parsed it holds the charts, and a screenshot is made.
    std::string png = tmp_.Sub(name + ".png");
    CommandSpec shot;
    shot.argv = {chromium,
                 "--headless",
                 "--no-sandbox",
                 "--disable-gpu",
                 "--hide-scrollbars",
                 "--window-size=1100,900",
                 "--screenshot=" + png,
                 "file://" + html};
    shot.extra_env = {"HOME=" + tmp_.path()};
    shot.timeout = 90s;
    auto s = RunCommand(shot);
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->exit_code, 0) << name << ": " << s->stderr_text;
    std::ifstream image(png, std::ios::binary | std::ios::ate);
    EXPECT_GT(static_cast<int64_t>(image.tellg()), 5000) << name << ": screenshot too small";

    CommandSpec dom = shot;
    dom.argv = {chromium,        "--headless", "--no-sandbox",
                "--disable-gpu", "--dump-dom", "file://" + html};
    auto d = RunCommand(dom);
    ASSERT_TRUE(d.ok());
    EXPECT_NE(d->stdout_text.find("<svg"), std::string::npos) << name;
    EXPECT_NE(d->stdout_text.find("lifeline gapcheck"), std::string::npos) << name;
  }
}

TEST_F(GapcheckIntegration, BadInputIsExitTwoWithTheFix) {
  // An unreachable primary names the side.
  std::vector<std::string> unreachable = {
      "rows", "--source", "host=127.0.0.1 port=1 dbname=app user=postgres connect_timeout=2",
      "--target", standby_->ConnInfo("app")};
  CommandResult r = Gapcheck(unreachable);
  EXPECT_EQ(r.exit_code, 2) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("127.0.0.1"), std::string::npos) << r.stderr_text;

  // A table without a primary key.
  Sql(*primary_, "CREATE TABLE nokey (a int)");
  Sql(*standby_, "CREATE TABLE nokey (a int)");
  std::vector<std::string> nokey = Databases();
  nokey.insert(nokey.begin(), "rows");
  nokey.insert(nokey.end(), {"--table", "public.nokey"});
  r = Gapcheck(nokey);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find("primary key"), std::string::npos) << r.stderr_text;

  // A where clause that does not parse: PostgreSQL's own message.
  std::vector<std::string> where = Databases();
  where.insert(where.begin(), "rows");
  where.insert(where.end(), {"--where", "status = = 'x'"});
  r = Gapcheck(where);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find("syntax error"), std::string::npos) << r.stderr_text;

  // Contradictory or malformed flags.
  std::vector<std::string> both = {"stream", "--spool", tmp_.Sub("s"), "--kafka-brokers",
                                   "127.0.0.1:1"};
  r = Gapcheck(both);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find("not both"), std::string::npos) << r.stderr_text;
  EXPECT_EQ(Gapcheck({"stream"}).exit_code, 2);
  EXPECT_EQ(Gapcheck({"stream", "--spool", tmp_.Sub("s"), "--format", "xml"}).exit_code, 2);
  std::vector<std::string> since = Databases();
  since.insert(since.begin(), "buckets");
  since.insert(since.end(), {"--since", "soon"});
  EXPECT_EQ(Gapcheck(since).exit_code, 2);

  // A spool that does not exist; a topic that does not exist.
  r = Gapcheck({"stream", "--spool", tmp_.Sub("no-such-spool")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find("no-such-spool"), std::string::npos) << r.stderr_text;
  auto kafka = testing::StartDevKafka(1);
  ASSERT_TRUE(kafka);
  r = Gapcheck({"stream", "--kafka-brokers", kafka->bootstrap_servers(), "--topic", "no.such"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find("no.such"), std::string::npos) << r.stderr_text;

  // rpo against a standby no replayer has touched says so.
  std::vector<std::string> rpo = Databases();
  rpo.insert(rpo.begin(), "rpo");
  r = Gapcheck(rpo);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find("replay_position"), std::string::npos) << r.stderr_text;
}

}  // namespace
}  // namespace lifeline
