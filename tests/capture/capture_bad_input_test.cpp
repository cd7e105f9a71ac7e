// `lifeline capture` given bad input or a source it cannot use: it exits 2 naming the problem and
// the fix (or keeps retrying when the source may come back), and leaves the spool as it was.
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/mount.h>
#include <unistd.h>
#include <csignal>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/local_postgres.h"
#include "common/lsn.h"
#include "common/spool.h"
#include "common/subprocess.h"
#include "tests/support/daemon.h"
#include "tests/support/test_env.h"

namespace lifeline {
namespace {

using testing::Trim;

using std::chrono::milliseconds;
using testing::LifelineDaemon;
using testing::RunLifeline;
using testing::SpoolLastSeq;
using testing::TempDir;
using testing::WaitFor;

constexpr int kSnapshotRows = 5;

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

size_t CountOf(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = haystack.find(needle); pos != std::string::npos;
       pos = haystack.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

// psql output (trimmed), or "" and a test failure.
std::string Sql(const LocalPostgres& pg, const std::string& sql, const std::string& db = "app") {
  auto r = pg.Psql(sql, db);
  EXPECT_TRUE(r.ok()) << sql << ": " << r.status().ToString();
  return r.ok() ? Trim(*r) : std::string();
}

void InsertRequests(const LocalPostgres& pg, int n) {
  Sql(pg,
      "INSERT INTO emergency_requests (customer_name, phone_number) SELECT 'customer ' || g, "
      "'555-' || g FROM generate_series(1, " +
          std::to_string(n) + ") g");
}

std::vector<std::string> CaptureArgs(const std::string& source, const std::string& spool,
                                     std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"capture",
                                   "--source",
                                   source,
                                   "--spool",
                                   spool,
                                   "--table",
                                   "public.emergency_requests",
                                   "--heartbeat-interval",
                                   "200ms"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::string Describe(const CommandResult& r) {
  return "exit " + std::to_string(r.exit_code) + (r.timed_out ? " (timed out)" : "") +
         "\nstdout:\n" + r.stdout_text + "\nstderr:\n" + r.stderr_text;
}

// `lifeline ARGS` with extra environment entries, bounded by `timeout_ms`.
CommandResult RunLifelineWithEnv(const std::vector<std::string>& args,
                                 const std::vector<std::string>& env, int timeout_ms) {
  CommandSpec spec;
  spec.argv = {testing::LifelineBinary()};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.extra_env = env;
  spec.timeout = milliseconds(timeout_ms);
  auto r = RunCommand(spec);
  if (!r.ok()) {
    ADD_FAILURE() << "cannot run lifeline: " << r.status().ToString();
    return {};
  }
  return std::move(r).value();
}

// All events of a stopped capture's spool as JSON Lines.
std::string InspectJson(const std::string& spool) {
  CommandResult r =
      RunLifeline({"spool", "inspect", "--spool", spool, "--format", "json"}, "", 30'000);
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  return r.stdout_text;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

class CaptureBadInputIntegrationTest : public ::testing::Test {
 protected:
  // A cluster with the reference schema in database "app" and kSnapshotRows rows to snapshot.
  std::unique_ptr<LocalPostgres> StartSource(LocalPostgresOptions options = {}) {
    auto pg = testing::StartPostgres(options);
    if (pg == nullptr) return nullptr;
    testing::LoadReferenceSchema(*pg, "app");
    if (::testing::Test::HasFatalFailure()) return nullptr;
    InsertRequests(*pg, kSnapshotRows);
    return pg;
  }

  // Starts capture on `spool` and waits until the snapshot is spooled and it streams.
  std::unique_ptr<LifelineDaemon> StartStreaming(const std::string& source,
                                                 const std::string& spool,
                                                 const std::string& log_name,
                                                 std::vector<std::string> extra_args = {},
                                                 std::vector<std::string> env = {}) {
    auto d = std::make_unique<LifelineDaemon>(CaptureArgs(source, spool, std::move(extra_args)),
                                              tmp_.Sub(log_name), std::move(env));
    if (!d->Start()) return nullptr;
    bool streaming =
        WaitFor([&] { return Contains(d->Log(), "streaming from slot") || !d->running(); },
                milliseconds(30'000));
    EXPECT_TRUE(streaming && d->running()) << "capture did not reach streaming:\n" << d->Log();
    return d;
  }

  TempDir tmp_{"lifeline-capture-bad-input"};
};

// 1. wal_level = replica: logical decoding is impossible; nothing may be set up on the source.
TEST_F(CaptureBadInputIntegrationTest, WalLevelNotLogicalExitsTwo) {
  LocalPostgresOptions options;
  options.settings = {"wal_level = replica"};
  auto pg = StartSource(options);
  ASSERT_NE(pg, nullptr);
  ASSERT_EQ(Sql(*pg, "SHOW wal_level"), "replica");
  std::string spool = tmp_.Sub("spool");
  CommandResult r = RunLifeline(CaptureArgs(pg->ConnInfo("app"), spool), "", 30'000);
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_TRUE(Contains(r.stderr_text, "wal_level = replica")) << r.stderr_text;
  EXPECT_TRUE(Contains(r.stderr_text, "wal_level = logical")) << r.stderr_text;
  EXPECT_TRUE(Contains(r.stderr_text, "restart PostgreSQL")) << r.stderr_text;
  EXPECT_EQ(SpoolLastSeq(spool), 0u);
  EXPECT_EQ(Sql(*pg, "SELECT count(*) FROM pg_publication"), "0");
}

// 2. A table without a primary key or replica identity: its updates could not be keyed.
TEST_F(CaptureBadInputIntegrationTest, TableWithoutReplicaIdentityExitsTwo) {
  auto pg = StartSource();
  ASSERT_NE(pg, nullptr);
  Sql(*pg, "CREATE TABLE public.nopk (a int, b text); INSERT INTO public.nopk VALUES (1, 'x')");
  std::string spool = tmp_.Sub("spool");
  CommandResult r = RunLifeline(
      {"capture", "--source", pg->ConnInfo("app"), "--spool", spool, "--table", "public.nopk"}, "",
      30'000);
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_TRUE(Contains(r.stderr_text, "nopk")) << r.stderr_text;
  EXPECT_TRUE(Contains(r.stderr_text, "no primary key or replica identity")) << r.stderr_text;
  EXPECT_TRUE(Contains(r.stderr_text, "REPLICA IDENTITY FULL")) << r.stderr_text;
  EXPECT_EQ(SpoolLastSeq(spool), 0u);
  // Rejected before anything was set up on the source.
  EXPECT_EQ(Sql(*pg, "SELECT count(*) FROM pg_publication"), "0");
  EXPECT_EQ(Sql(*pg, "SELECT count(*) FROM pg_replication_slots"), "0");
}

// 3. A table that does not exist.
TEST_F(CaptureBadInputIntegrationTest, MissingTableExitsTwo) {
  auto pg = StartSource();
  ASSERT_NE(pg, nullptr);
  std::string spool = tmp_.Sub("spool");
  CommandResult r = RunLifeline(
      {"capture", "--source", pg->ConnInfo("app"), "--spool", spool, "--table", "public.nope"}, "",
      30'000);
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_TRUE(Contains(r.stderr_text, "public.nope")) << r.stderr_text;
  EXPECT_TRUE(Contains(r.stderr_text, "does not exist")) << r.stderr_text;
  EXPECT_TRUE(Contains(r.stderr_text, "--table")) << r.stderr_text;
  EXPECT_EQ(SpoolLastSeq(spool), 0u);
  EXPECT_EQ(Sql(*pg, "SELECT count(*) FROM pg_replication_slots"), "0");
}

// 4. Malformed flags are rejected before any source or spool is touched.
TEST_F(CaptureBadInputIntegrationTest, MalformedFlagsExitTwo) {
  std::string spool = tmp_.Sub("spool");
  // Nothing listens here; a flag error must come first anyway.
  std::string source = "host=127.0.0.1 port=1 user=postgres dbname=app connect_timeout=1";

  CommandResult r = RunLifeline(
      {"capture", "--source", source, "--spool", spool, "--table", "a.b.c"}, "", 15'000);
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_TRUE(Contains(r.stderr_text, "malformed --table 'a.b.c'")) << r.stderr_text;
  EXPECT_TRUE(Contains(r.stderr_text, "schema.name")) << r.stderr_text;

  r = RunLifeline({"capture", "--source", source, "--spool", spool, "--heartbeat-interval", "fast"},
                  "", 15'000);
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_TRUE(Contains(r.stderr_text, "malformed duration 'fast'")) << r.stderr_text;
  EXPECT_TRUE(Contains(r.stderr_text, "500ms")) << r.stderr_text;

  r = RunLifeline({"capture", "--source", source, "--spool", spool, "--no-such-flag"}, "", 15'000);
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_TRUE(Contains(r.stderr_text, "--no-such-flag")) << r.stderr_text;
  EXPECT_TRUE(Contains(r.stderr_text, "--help")) << r.stderr_text;

  EXPECT_FALSE(std::filesystem::exists(spool)) << "a flag error created the spool";
}

// 5. A wrong password is a configuration error (exit 2) that never prints the password; the right
// one from --source-password-file works.
TEST_F(CaptureBadInputIntegrationTest, WrongPasswordExitsTwoWithoutPrintingIt) {
  const std::string kRight = "Rt-pass-8c1e";
  const std::string kWrong = "Wr-pass-57d3";
  LocalPostgresOptions options;
  options.superuser_password = kRight;
  auto pg = StartSource(options);
  ASSERT_NE(pg, nullptr);
  std::string spool = tmp_.Sub("spool");

  CommandResult r = RunLifelineWithEnv(CaptureArgs(pg->ConnInfo("app"), spool),
                                       {"LIFELINE_SOURCE_PASSWORD=" + kWrong}, 15'000);
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_TRUE(Contains(r.stderr_text, "password authentication failed")) << r.stderr_text;
  EXPECT_TRUE(Contains(r.stderr_text, "--source-password-file")) << r.stderr_text;
  for (const std::string& secret : {kWrong, kRight}) {
    EXPECT_FALSE(Contains(r.stdout_text, secret)) << "password printed on stdout";
    EXPECT_FALSE(Contains(r.stderr_text, secret)) << "password printed on stderr";
  }
  EXPECT_EQ(SpoolLastSeq(spool), 0u);

  std::string password_file = tmp_.Sub("password");
  {
    std::ofstream out(password_file);
    out << kRight << "\n";
  }
  // An empty LIFELINE_SOURCE_PASSWORD is ignored, so the file is used.
  auto d = StartStreaming(pg->ConnInfo("app"), spool, "right.log",
                          {"--source-password-file", password_file}, {"LIFELINE_SOURCE_PASSWORD="});
  ASSERT_NE(d, nullptr);
  EXPECT_GE(SpoolLastSeq(spool), static_cast<uint64_t>(kSnapshotRows)) << d->Log();
  EXPECT_EQ(d->Stop(), 0) << d->Log();
  EXPECT_FALSE(Contains(d->Log(), kRight)) << "password printed in the log";
}

// 6. An unreachable source may come back: capture retries with backoff and logs each attempt.
TEST_F(CaptureBadInputIntegrationTest, UnreachableSourceRetriesUntilStopped) {
  auto port = PickFreePort();
  ASSERT_TRUE(port.ok()) << port.status().ToString();
  std::string source = "host=127.0.0.1 port=" + std::to_string(*port) +
                       " user=postgres dbname=app connect_timeout=2";
  std::string spool = tmp_.Sub("spool");
  LifelineDaemon d(CaptureArgs(source, spool), tmp_.Sub("capture.log"));
  ASSERT_TRUE(d.Start());
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(d.WaitExit(milliseconds(3'000)), -1) << "capture exited on its own:\n" << d.Log();
  EXPECT_TRUE(WaitFor([&] { return CountOf(d.Log(), "retrying") >= 3; }, milliseconds(5'000)))
      << d.Log();
  std::string log = d.Log();
  EXPECT_TRUE(Contains(log, "source unavailable (attempt 1)")) << log;
  EXPECT_TRUE(Contains(log, "source unavailable (attempt 2)")) << log;
  EXPECT_TRUE(Contains(log, std::to_string(*port))) << "the log should name the address:\n" << log;
  EXPECT_EQ(d.Stop(), 0) << d.Log();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(15));
  EXPECT_EQ(SpoolLastSeq(spool), 0u);
}

// 7. A slot another process consumes: the second capture gives up (after its 30 s grace) naming
// the holder, and the first keeps its slot.
TEST_F(CaptureBadInputIntegrationTest, SlotHeldByAnotherProcessExitsTwo) {
  auto pg = StartSource();
  ASSERT_NE(pg, nullptr);
  std::string spool_a = tmp_.Sub("spool-a"), spool_b = tmp_.Sub("spool-b");
  auto a = StartStreaming(pg->ConnInfo("app"), spool_a, "a.log");
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(a->running());
  std::string active_pid =
      Sql(*pg, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'lifeline'");
  ASSERT_FALSE(active_pid.empty());

  LifelineDaemon b(CaptureArgs(pg->ConnInfo("app"), spool_b), tmp_.Sub("b.log"));
  ASSERT_TRUE(b.Start());
  int b_exit = b.WaitExit(milliseconds(45'000));
  if (b_exit == -1) b.Kill();
  std::string log_b = b.Log();
  EXPECT_EQ(b_exit, 2) << "second capture on slot lifeline did not fail within 45 s:\n" << log_b;
  EXPECT_TRUE(Contains(log_b, "is active for PID")) << log_b;
  EXPECT_TRUE(Contains(log_b, "another process is consuming slot lifeline")) << log_b;
  EXPECT_TRUE(Contains(log_b, "choose another --slot")) << log_b;

  // The first capture is unharmed: still running, its slot still there, its changes arriving.
  EXPECT_TRUE(a->running()) << a->Log();
  EXPECT_EQ(Sql(*pg, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'lifeline'"),
            "1");
  uint64_t before = SpoolLastSeq(spool_a);
  InsertRequests(*pg, 1);
  EXPECT_TRUE(WaitFor([&] { return SpoolLastSeq(spool_a) > before; }, milliseconds(10'000)))
      << a->Log();
  EXPECT_EQ(a->Stop(), 0) << a->Log();
  // Nothing the second capture left behind may take the slot once the first releases it.
  EXPECT_FALSE(WaitFor(
      [&] {
        return Sql(*pg,
                   "SELECT count(*) FROM pg_replication_slots WHERE slot_name = "
                   "'lifeline'") == "0";
      },
      milliseconds(3'000)))
      << "slot lifeline was dropped after its consumer stopped";
}

// 7b. A slot held by the WAL sender of a client that stopped answering without closing its
// connection (a frozen process looks to the server like a cut network): that sender lets go after
// wal_sender_timeout, so a capture on a copy of its spool waits that long for the slot instead of
// giving up after 15 s, and then streams on.
TEST_F(CaptureBadInputIntegrationTest, SlotHeldForASilentClientIsWaitedOut) {
  LocalPostgresOptions options;
  options.settings = {"wal_sender_timeout = 20s"};
  auto pg = StartSource(options);
  ASSERT_NE(pg, nullptr);
  std::string spool_a = tmp_.Sub("spool-a"), spool_b = tmp_.Sub("spool-b");
  auto a = StartStreaming(pg->ConnInfo("app"), spool_a, "a.log");
  ASSERT_NE(a, nullptr);
  std::string old_sender =
      Sql(*pg, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'lifeline'");
  ASSERT_FALSE(old_sender.empty());
  ASSERT_EQ(::kill(a->pid(), SIGSTOP), 0);
  // The frozen capture's spool, copied for a capture elsewhere (as off a host that hung).
  std::filesystem::copy(spool_a, spool_b, std::filesystem::copy_options::recursive);
  std::filesystem::remove(spool_b + "/LOCK");

  LifelineDaemon b(CaptureArgs(pg->ConnInfo("app"), spool_b), tmp_.Sub("b.log"));
  ASSERT_TRUE(b.Start());
  // Past the 15 s a live consumer gets: still waiting.
  EXPECT_EQ(b.WaitExit(milliseconds(20'000)), -1) << "capture gave up on a silent holder:\n"
                                                  << b.Log();
  EXPECT_TRUE(Contains(b.Log(), "is active for PID " + old_sender)) << b.Log();
  // The old sender times out and the slot is taken by the new capture's sender.
  EXPECT_TRUE(WaitFor(
      [&] {
        std::string holder =
            Sql(*pg, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'lifeline'");
        return !holder.empty() && holder != old_sender;
      },
      milliseconds(45'000)))
      << b.Log();
  EXPECT_FALSE(Contains(b.Log(), "another process is consuming")) << b.Log();
  uint64_t before = SpoolLastSeq(spool_b);
  InsertRequests(*pg, 1);
  EXPECT_TRUE(WaitFor([&] { return SpoolLastSeq(spool_b) > before; }, milliseconds(15'000)))
      << b.Log();
  ::kill(a->pid(), SIGCONT);
  a->Kill();
  b.Kill();
}

// 8. Two captures on one spool directory.
TEST_F(CaptureBadInputIntegrationTest, SecondCaptureOnTheSameSpoolExitsTwo) {
  auto pg = StartSource();
  ASSERT_NE(pg, nullptr);
  std::string spool = tmp_.Sub("spool");
  auto a = StartStreaming(pg->ConnInfo("app"), spool, "a.log");
  ASSERT_NE(a, nullptr);

  CommandResult r =
      RunLifeline(CaptureArgs(pg->ConnInfo("app"), spool, {"--slot", "other"}), "", 30'000);
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_TRUE(Contains(r.stderr_text, "open for writing by another process")) << r.stderr_text;
  EXPECT_TRUE(Contains(r.stderr_text, "stop that process")) << r.stderr_text;
  EXPECT_EQ(Sql(*pg, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'other'"), "0");

  // The first capture carries on.
  EXPECT_TRUE(a->running()) << a->Log();
  uint64_t before = SpoolLastSeq(spool);
  InsertRequests(*pg, 1);
  EXPECT_TRUE(WaitFor([&] { return SpoolLastSeq(spool) > before; }, milliseconds(10'000)))
      << a->Log();
  EXPECT_EQ(a->Stop(), 0) << a->Log();
}

// 9. The slot was dropped after the snapshot: refuse (changes may be missed) until --resnapshot,
// which records a marker, makes a new slot and snapshots every row again.
TEST_F(CaptureBadInputIntegrationTest, MissingSlotNeedsResnapshot) {
  auto pg = StartSource();
  ASSERT_NE(pg, nullptr);
  std::string spool = tmp_.Sub("spool");
  {
    auto d = StartStreaming(pg->ConnInfo("app"), spool, "first.log");
    ASSERT_NE(d, nullptr);
    ASSERT_EQ(d->Stop(), 0) << d->Log();
  }
  ASSERT_TRUE(
      WaitFor([&] { return pg->Psql("SELECT pg_drop_replication_slot('lifeline')", "app").ok(); },
              milliseconds(10'000)));
  // Changes made while no slot exists: only a new snapshot can bring them.
  InsertRequests(*pg, 3);
  uint64_t seq_before = SpoolLastSeq(spool);
  ASSERT_GE(seq_before, static_cast<uint64_t>(kSnapshotRows));

  CommandResult r = RunLifeline(CaptureArgs(pg->ConnInfo("app"), spool), "", 30'000);
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_TRUE(Contains(r.stderr_text, "replication slot lifeline is missing")) << r.stderr_text;
  EXPECT_TRUE(Contains(r.stderr_text, "--resnapshot")) << r.stderr_text;
  EXPECT_EQ(SpoolLastSeq(spool), seq_before);
  EXPECT_EQ(Sql(*pg, "SELECT count(*) FROM pg_replication_slots"), "0")
      << "capture recreated the slot silently";

  {
    auto d = StartStreaming(pg->ConnInfo("app"), spool, "resnapshot.log", {"--resnapshot"});
    ASSERT_NE(d, nullptr);
    EXPECT_TRUE(Contains(d->Log(), "--resnapshot: recorded a marker")) << d->Log();
    ASSERT_EQ(d->Stop(), 0) << d->Log();
  }
  EXPECT_EQ(Sql(*pg, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'lifeline'"),
            "1");

  std::vector<std::string> events = Lines(InspectJson(spool));
  ASSERT_GT(events.size(), seq_before) << "nothing after seq " << seq_before;
  // Events after the old end of the spool: the marker first, then the new snapshot.
  std::vector<std::string> after(events.begin() + static_cast<long>(seq_before), events.end());
  ASSERT_TRUE(Contains(after[0], "\"op\":\"resnapshot\"")) << after[0];
  EXPECT_TRUE(Contains(after[0], "\"seq\":" + std::to_string(seq_before + 1))) << after[0];
  std::string snapshot;
  int snapshot_rows = 0;
  for (size_t i = 1; i < after.size(); ++i) {
    if (!Contains(after[i], "\"op\":\"snapshot\"")) break;  // the snapshot is contiguous
    snapshot += after[i] + "\n";
    ++snapshot_rows;
  }
  EXPECT_EQ(snapshot_rows, kSnapshotRows + 3) << InspectJson(spool);
  std::string ids = Sql(*pg, "SELECT id FROM emergency_requests ORDER BY id");
  for (const std::string& id : Lines(ids)) {
    EXPECT_TRUE(Contains(snapshot, id)) << "row " << id << " missing from the new snapshot";
  }
}

// 10. The source invalidated the slot (max_slot_wal_keep_size): WAL is gone, so refuse.
TEST_F(CaptureBadInputIntegrationTest, InvalidatedSlotExitsTwo) {
  LocalPostgresOptions options;
  options.settings = {"max_slot_wal_keep_size = 1MB", "wal_keep_size = 0"};
  auto pg = StartSource(options);
  ASSERT_NE(pg, nullptr);
  std::string spool = tmp_.Sub("spool");
  {
    auto d = StartStreaming(pg->ConnInfo("app"), spool, "first.log");
    ASSERT_NE(d, nullptr);
    ASSERT_EQ(d->Stop(), 0) << d->Log();
  }
  uint64_t seq_before = SpoolLastSeq(spool);
  Sql(*pg, "CREATE TABLE filler (id serial PRIMARY KEY, pad text)");
  std::string wal_status;
  for (int i = 0; i < 10 && wal_status != "lost"; ++i) {
    Sql(*pg,
        "INSERT INTO filler (pad) SELECT repeat('x', 200) FROM generate_series(1, 20000); "
        "SELECT pg_switch_wal(); CHECKPOINT;");
    wal_status =
        Sql(*pg, "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'lifeline'");
  }
  ASSERT_EQ(wal_status, "lost") << "could not make the source invalidate the slot";

  CommandResult r = RunLifeline(CaptureArgs(pg->ConnInfo("app"), spool), "", 30'000);
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_TRUE(Contains(r.stderr_text, "wal_status = lost")) << r.stderr_text;
  EXPECT_TRUE(Contains(r.stderr_text, "max_slot_wal_keep_size")) << r.stderr_text;
  EXPECT_TRUE(Contains(r.stderr_text, "--resnapshot")) << r.stderr_text;
  EXPECT_EQ(SpoolLastSeq(spool), seq_before);
}

// 11. A spool filled from one PostgreSQL system pointed at another.
TEST_F(CaptureBadInputIntegrationTest, SpoolOfAnotherSourceExitsTwo) {
  LocalPostgresOptions x_options, y_options;
  x_options.name = "x";
  y_options.name = "y";
  auto x = StartSource(x_options);
  ASSERT_NE(x, nullptr);
  auto y = StartSource(y_options);
  ASSERT_NE(y, nullptr);
  std::string spool = tmp_.Sub("spool");
  {
    auto d = StartStreaming(x->ConnInfo("app"), spool, "x.log");
    ASSERT_NE(d, nullptr);
    ASSERT_EQ(d->Stop(), 0) << d->Log();
  }
  uint64_t seq_before = SpoolLastSeq(spool);
  std::string x_id = Sql(*x, "SELECT system_identifier FROM pg_control_system()");
  std::string y_id = Sql(*y, "SELECT system_identifier FROM pg_control_system()");
  ASSERT_NE(x_id, y_id);

  CommandResult r = RunLifeline(CaptureArgs(y->ConnInfo("app"), spool), "", 30'000);
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_TRUE(Contains(r.stderr_text, "holds changes of PostgreSQL system " + x_id))
      << r.stderr_text;
  EXPECT_TRUE(Contains(r.stderr_text, "source is system " + y_id)) << r.stderr_text;
  EXPECT_TRUE(Contains(r.stderr_text, "use a new --spool")) << r.stderr_text;
  EXPECT_EQ(SpoolLastSeq(spool), seq_before);
  EXPECT_EQ(Sql(*y, "SELECT count(*) FROM pg_replication_slots"), "0");
}

// 12. A spool path that cannot be a directory.
TEST_F(CaptureBadInputIntegrationTest, UnusableSpoolPathExitsTwo) {
  std::string file = tmp_.Sub("regular-file");
  {
    std::ofstream out(file);
    out << "not a directory\n";
  }
  std::string source = "host=127.0.0.1 port=1 user=postgres dbname=app connect_timeout=1";

  CommandResult r = RunLifeline(CaptureArgs(source, file + "/spool"), "", 15'000);
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_TRUE(Contains(r.stderr_text, "cannot create spool directory " + file + "/spool"))
      << r.stderr_text;
  EXPECT_TRUE(Contains(r.stderr_text, "choose a writable --spool")) << r.stderr_text;

  r = RunLifeline(CaptureArgs(source, file), "", 15'000);
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_TRUE(Contains(r.stderr_text, "spool path " + file + " is not a directory"))
      << r.stderr_text;

  std::ifstream in(file);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "not a directory\n");
}

// 13. Too few replication slots: all max_replication_slots are taken by another consumer's slot.
TEST_F(CaptureBadInputIntegrationTest, NoFreeReplicationSlotExitsTwo) {
  LocalPostgresOptions options;
  options.settings = {"max_replication_slots = 1"};
  auto pg = StartSource(options);
  ASSERT_NE(pg, nullptr);
  ASSERT_EQ(Sql(*pg, "SHOW max_replication_slots"), "1");
  Sql(*pg, "SELECT pg_create_logical_replication_slot('someone_else', 'pgoutput')");
  std::string spool = tmp_.Sub("spool");
  CommandResult r = RunLifeline(CaptureArgs(pg->ConnInfo("app"), spool), "", 30'000);
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_TRUE(Contains(r.stderr_text, "max_replication_slots = 1")) << r.stderr_text;
  EXPECT_TRUE(Contains(r.stderr_text, "someone_else")) << r.stderr_text;
  EXPECT_TRUE(Contains(r.stderr_text, "ALTER SYSTEM SET max_replication_slots = 2"))
      << r.stderr_text;
  EXPECT_TRUE(Contains(r.stderr_text, "pg_drop_replication_slot")) << r.stderr_text;
  EXPECT_EQ(SpoolLastSeq(spool), 0u);
  // Refused before anything was set up on the source; the other slot is untouched.
  EXPECT_EQ(Sql(*pg, "SELECT count(*) FROM pg_publication"), "0");
  EXPECT_EQ(Sql(*pg, "SELECT string_agg(slot_name, ',') FROM pg_replication_slots"),
            "someone_else");
}

// 14. Too few WAL senders: the only one is held by another replication client. A sender freed a
// moment later (a capture just killed) is waited for; one that stays busy is an error.
TEST_F(CaptureBadInputIntegrationTest, NoFreeWalSenderExitsTwo) {
  LocalPostgresOptions options;
  options.settings = {"max_wal_senders = 1"};
  auto pg = StartSource(options);
  ASSERT_NE(pg, nullptr);
  ASSERT_EQ(Sql(*pg, "SHOW max_wal_senders"), "1");
  // A replication connection occupies a WAL sender for as long as it is open.
  CommandSpec holder;
  holder.argv = {"psql",
                 "-X",
                 "-q",
                 "-d",
                 pg->ConnInfo("app") + " replication=database application_name=holder",
                 "-c",
                 "SELECT pg_sleep(120)"};
  auto held = ChildProcess::Start(holder, tmp_.Sub("holder.log"));
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  ASSERT_TRUE(WaitFor(
      [&] {
        return Sql(*pg, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender'",
                   "postgres") == "1";
      },
      milliseconds(10'000)))
      << "the holder did not take the WAL sender";

  std::string spool = tmp_.Sub("spool");
  auto started = std::chrono::steady_clock::now();
  CommandResult r = RunLifeline(CaptureArgs(pg->ConnInfo("app"), spool), "", 60'000);
  auto took = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_TRUE(Contains(r.stderr_text, "max_wal_senders")) << r.stderr_text;
  EXPECT_TRUE(Contains(r.stderr_text, "raise max_wal_senders")) << r.stderr_text;
  EXPECT_TRUE(Contains(r.stderr_text, "stop a replication client that holds one")) << r.stderr_text;
  EXPECT_GE(took, std::chrono::seconds(10)) << "a busy sender is waited for before giving up";
  EXPECT_EQ(SpoolLastSeq(spool), 0u);
  EXPECT_EQ(Sql(*pg, "SELECT count(*) FROM pg_replication_slots"), "0");
  auto stopped = held->Stop(SIGTERM, milliseconds(10'000));
  EXPECT_TRUE(stopped.ok());
}

// A tmpfs of a given size mounted on a directory of the test, unmounted at the end: a real
// filesystem that runs out of space.
class SmallFilesystem {
 public:
  SmallFilesystem(std::string dir, const std::string& size) : dir_(std::move(dir)) {
    std::filesystem::create_directories(dir_);
    std::string opts = "size=" + size + ",mode=0755";
    if (mount("tmpfs", dir_.c_str(), "tmpfs", 0, opts.c_str()) != 0) {
      error_ = std::string("mount -t tmpfs -o ") + opts + " " + dir_ + ": " + std::strerror(errno) +
               " (the test needs root, or CAP_SYS_ADMIN, to make a small filesystem)";
      return;
    }
    mounted_ = true;
  }
  ~SmallFilesystem() {
    if (mounted_) umount2(dir_.c_str(), MNT_DETACH);
  }
  bool ok() const { return mounted_; }
  const std::string& error() const { return error_; }
  // Grows (or shrinks) the filesystem in place, as freeing space would.
  bool Resize(const std::string& size) {
    std::string opts = "size=" + size + ",mode=0755";
    return mount("tmpfs", dir_.c_str(), "tmpfs", MS_REMOUNT, opts.c_str()) == 0;
  }

 private:
  std::string dir_;
  bool mounted_ = false;
  std::string error_;
};

// 15. The spool's filesystem fills up: capture stops confirming (the slot's confirmed_flush_lsn
// stays within what is synced in the spool), reports it loudly naming the spool and the fix, and
// keeps running; once space comes back it carries on and every committed change arrives once.
TEST_F(CaptureBadInputIntegrationTest, FullDiskUnderTheSpoolHoldsTheSlotAndLosesNothing) {
  auto pg = StartSource();
  ASSERT_NE(pg, nullptr);
  Sql(*pg, "CREATE TABLE items (n bigint PRIMARY KEY, pad text)");
  SmallFilesystem fs(tmp_.Sub("small"), "12m");
  ASSERT_TRUE(fs.ok()) << fs.error();
  std::string spool = tmp_.Sub("small") + "/spool";
  auto port = PickFreePort();
  ASSERT_TRUE(port.ok());
  auto d = StartStreaming(
      pg->ConnInfo("app"), spool, "capture.log",
      {"--table", "public.items", "--metrics-addr", "127.0.0.1:" + std::to_string(*port)});
  ASSERT_NE(d, nullptr);
  httplib::Client http("127.0.0.1", *port);
  auto failing = [&] {
    auto res = http.Get("/metrics");
    return res && res->status == 200 &&
           Contains(res->body, "\nlifeline_capture_spool_write_failing 1\n");
  };
  uint64_t lsn_before_load = Lsn::Parse(Sql(*pg, "SELECT pg_current_wal_lsn()"))->value();

  // About 30 MB of events against 12 MB of space: transactions of 200 rows of ~500 bytes.
  constexpr int kTxns = 300, kRowsPerTxn = 200;
  for (int t = 0; t < kTxns; ++t) {
    Sql(*pg, "INSERT INTO items SELECT g, repeat(md5(g::text), 16) FROM generate_series(" +
                 std::to_string(t * kRowsPerTxn + 1) + ", " +
                 std::to_string((t + 1) * kRowsPerTxn) + ") g");
  }
  ASSERT_TRUE(WaitFor(failing, milliseconds(60'000))) << d->Log();
  ASSERT_TRUE(WaitFor([&] { return Contains(d->Log(), "cannot write the spool " + spool); },
                      milliseconds(10'000)))
      << d->Log();
  std::string log = d->Log();
  EXPECT_TRUE(Contains(log, "No space left on device")) << log;
  EXPECT_TRUE(Contains(log, "Free space on the filesystem of " + spool)) << log;
  EXPECT_TRUE(Contains(log, "nothing is lost")) << log;

  // Stuck, but alive, and not confirming anything it has not synced: every transaction of the
  // load committed after lsn_before_load, so the slot may confirm at most that or what the spool
  // holds. Status updates go out every second; give them a few.
  std::this_thread::sleep_for(std::chrono::seconds(4));
  EXPECT_TRUE(d->running()) << d->Log();
  EXPECT_TRUE(failing());
  uint64_t confirmed = Lsn::Parse(Sql(*pg,
                                      "SELECT confirmed_flush_lsn FROM pg_replication_slots "
                                      "WHERE slot_name = 'lifeline'"))
                           ->value();
  uint64_t spooled_lsn = 0, spooled_seq = 0;
  {
    auto reader = Spool::OpenForRead(spool);
    ASSERT_TRUE(reader.ok()) << reader.status().ToString();
    spooled_lsn = (*reader)->last_complete_commit_lsn().value();
    spooled_seq = (*reader)->last_complete_seq();
  }
  EXPECT_LE(confirmed, std::max(spooled_lsn, lsn_before_load))
      << "the slot confirmed " << Lsn(confirmed).ToString() << " past the spool's "
      << Lsn(spooled_lsn).ToString();
  EXPECT_LT(spooled_seq, static_cast<uint64_t>(kSnapshotRows + kTxns * kRowsPerTxn))
      << "the filesystem was expected to fill before the load was spooled";
  std::string wal_status =
      Sql(*pg, "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'lifeline'");
  EXPECT_TRUE(wal_status == "reserved" || wal_status == "extended") << wal_status;

  // Space comes back: capture carries on by itself and everything arrives exactly once.
  ASSERT_TRUE(fs.Resize("512m")) << std::strerror(errno);
  uint64_t want = kSnapshotRows + kTxns * kRowsPerTxn;
  EXPECT_TRUE(WaitFor(
      [&] {
        auto reader = Spool::OpenForRead(spool);
        if (!reader.ok()) return false;
        auto st = (*reader)->Stats();
        return st.events >= want;
      },
      milliseconds(120'000)))
      << d->Log();
  EXPECT_TRUE(WaitFor([&] { return !failing(); }, milliseconds(10'000)));
  EXPECT_TRUE(Contains(d->Log(), "is writable again")) << d->Log();
  EXPECT_EQ(d->Stop(), 0) << d->Log();

  // Row events in the spool: the snapshot, then every load row once, in order, nothing else.
  std::vector<std::string> events = Lines(InspectJson(spool));
  std::vector<std::string> inserts;
  for (const auto& e : events) {
    if (Contains(e, "\"op\":\"insert\"")) inserts.push_back(e);
  }
  ASSERT_EQ(inserts.size(), static_cast<size_t>(kTxns * kRowsPerTxn));
  for (size_t i = 0; i < inserts.size(); ++i) {
    ASSERT_TRUE(Contains(inserts[i], "\"n\":\"" + std::to_string(i + 1) + "\""))
        << "row " << i + 1 << " missing, duplicated or out of order: " << inserts[i];
  }
  CommandResult verify = RunLifeline({"spool", "verify", "--spool", spool}, "", 60'000);
  EXPECT_EQ(verify.exit_code, 0) << Describe(verify);
}

}  // namespace
}  // namespace lifeline
