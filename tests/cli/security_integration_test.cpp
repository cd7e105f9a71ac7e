// Security of the daemons as an operator sees it: TLS to PostgreSQL (verify-full, client
// certificates, a wrong CA refused with exit 2), secrets that never show in any output, row values
// kept out of logs and metrics unless --log-values, and HTTP endpoints on loopback by default.
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/log.h"
#include "common/postgres.h"
#include "common/status_server.h"
#include "common/subprocess.h"
#include "tests/support/daemon.h"
#include "tests/support/test_env.h"

namespace lifeline {
namespace {

using namespace std::chrono_literals;
using testing::TempDir;
using testing::Trim;
using testing::WaitFor;

// --- pieces without servers -------------------------------------------------------------------

TEST(PostgresMessageTest, RowValuesAreHiddenUnlessAskedFor) {
  const std::string check =
      "ERROR:  new row for relation \"emergency_requests\" violates check constraint \"c\"\n"
      "DETAIL:  Failing row contains (1, Ada Lovelace, +44 7700,\nsecond line of a value).\n";
  const std::string bad_value =
      "ERROR:  invalid input syntax for type uuid: \"Ada Lovelace\"\n"
      "LINE 1: SELECT 'Ada Lovelace'::uuid\n"
      "               ^\n"
      "HINT:  a hint stays\n";
  const std::string range = "ERROR:  value \"Ada99999\" is out of range for type integer";
  SetLogValues(false);
  for (const std::string& m : {check, bad_value, range}) {
    std::string shown = RedactPostgresMessage(m);
    EXPECT_EQ(shown.find("Ada"), std::string::npos) << shown;
    EXPECT_EQ(shown.find("second line"), std::string::npos) << shown;
    EXPECT_NE(shown.find("--log-values"), std::string::npos) << shown;
  }
  EXPECT_NE(RedactPostgresMessage(check).find("violates check constraint \"c\""),
            std::string::npos);
  EXPECT_NE(RedactPostgresMessage(bad_value).find("HINT:  a hint stays"), std::string::npos);
  Status st = ClassifyPostgresError(check, "applying to the target", "23514");
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(st.message().find("Ada"), std::string::npos) << st.message();
  SetLogValues(true);
  EXPECT_EQ(RedactPostgresMessage(check), check);
  SetLogValues(false);
}

TEST(PostgresMessageTest, ErrorsAreSortedIntoFixAndRetry) {
  EXPECT_EQ(ClassifyPostgresError("ERROR:  duplicate key value", "x", "23505").code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(ClassifyPostgresError("ERROR:  could not serialize access", "x", "40001").code(),
            StatusCode::kUnavailable);
  EXPECT_EQ(ClassifyPostgresError("FATAL:  terminating connection", "x", "57P01").code(),
            StatusCode::kUnavailable);
  Status tls = ClassifyPostgresError(
      "connection to server at \"127.0.0.1\", port 5432 failed: SSL error: certificate verify "
      "failed",
      "connecting to the source");
  EXPECT_EQ(tls.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(tls.message().find("connecting to the source"), std::string::npos);
  EXPECT_NE(tls.message().find("sslrootcert"), std::string::npos) << tls.message();
  EXPECT_EQ(
      ClassifyPostgresError("server certificate for \"x\" does not match host name \"y\"", "t")
          .code(),
      StatusCode::kInvalidArgument);
  EXPECT_EQ(ClassifyPostgresError("connection refused", "t").code(), StatusCode::kUnavailable);
}

TEST(ConnInfoTest, APasswordOnTheCommandLineIsRefusedWithoutEchoingIt) {
  EXPECT_TRUE(
      CheckConnInfo("host=db1 dbname=app sslmode=verify-full sslrootcert=/ca.crt", "--source")
          .ok());
  EXPECT_TRUE(CheckConnInfo("postgresql://db1/app?sslmode=require", "--source").ok());
  for (const std::string& ci : {std::string("host=db1 password=hunter2-marker"),
                                std::string("postgresql://u:hunter2-marker@db1/app"),
                                std::string("postgresql://db1/app?password=hunter2-marker")}) {
    Status st = CheckConnInfo(ci, "--target");
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << ci;
    EXPECT_NE(st.message().find("--target holds a password"), std::string::npos);
    EXPECT_EQ(st.message().find("hunter2"), std::string::npos) << st.message();
  }
  Status bad = CheckConnInfo("host=db1 nosuchkey=1", "--source");
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("--source"), std::string::npos);
}

TEST(ConnInfoTest, AUriPasswordIsPercentEncoded) {
  EXPECT_EQ(ConnInfoWithPassword("postgresql://db1/app", "a&b%c d"),
            "postgresql://db1/app?password=a%26b%25c%20d");
  EXPECT_EQ(ConnInfoWithPassword("host=db1", "it's"), "host=db1 password='it\\'s'");
}

TEST(StatusServerAddressTest, APortAloneIsLoopback) {
  Metrics metrics;
  auto port = PickFreePort();
  ASSERT_TRUE(port.ok());
  for (const std::string& address : {std::to_string(*port), ":" + std::to_string(*port)}) {
    auto s = StatusServer::Start(address, &metrics, nullptr);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ((*s)->host(), "127.0.0.1") << address;
    (*s)->Stop();
  }
  EXPECT_FALSE(StatusServer::Start("91x87", &metrics, nullptr).ok());
}

// --- helpers for the daemons ------------------------------------------------------------------

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteSecretFile(const std::string& path, const std::string& text) {
  std::ofstream(path) << text << "\n";
  chmod(path.c_str(), 0600);
}

// A `lifeline` child whose command line the test reads from /proc.
class Daemon {
 public:
  Daemon(std::vector<std::string> args, std::string log_path, std::vector<std::string> env = {})
      : log_path_(std::move(log_path)) {
    CommandSpec spec;
    spec.argv = {testing::LifelineBinary()};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.extra_env = std::move(env);
    auto child = ChildProcess::Start(spec, log_path_);
    if (!child.ok()) {
      ADD_FAILURE() << "cannot start lifeline: " << child.status().ToString();
      return;
    }
    child_ = std::move(child).value();
  }
  // What `ps` shows for it, arguments separated by spaces.
  std::string CommandLine() const {
    std::string s = ReadFile("/proc/" + std::to_string(child_.pid()) + "/cmdline");
    for (char& c : s) {
      if (c == '\0') c = ' ';
    }
    return s;
  }
  bool running() { return child_.running(); }
  int Stop() {
    auto r = child_.Stop(SIGTERM, 30s);
    return r.ok() ? *r : -1;
  }
  int WaitExit(std::chrono::milliseconds timeout) {
    auto r = child_.Wait(timeout);
    return r.ok() ? *r : -1;
  }
  std::string Log() const { return ReadFile(log_path_); }

 private:
  std::string log_path_;
  ChildProcess child_;
};

CommandResult RunWithEnv(const std::vector<std::string>& args, const std::vector<std::string>& env,
                         int timeout_ms = 60'000) {
  return testing::RunLifeline(args, "", timeout_ms, env);
}

// GET http://HOST:PORT/PATH: status and body, or "" when nothing answered.
std::string HttpGet(const std::string& host, int port, const std::string& path) {
  httplib::Client client(host, port);
  client.set_connection_timeout(2);
  client.set_read_timeout(5);
  auto r = client.Get(path.c_str());
  return r ? std::to_string(r->status) + "\n" + r->body : "";
}

int FreePort() {
  auto p = PickFreePort();
  EXPECT_TRUE(p.ok());
  return p.ok() ? *p : 0;
}

int CountRows(const LocalPostgres& pg, const std::string& where = "true") {
  auto r = pg.Psql("SELECT count(*) FROM emergency_requests WHERE " + where, "app");
  return r.ok() ? std::stoi(Trim(*r)) : -1;
}

// Every place a secret or a row value could surface, each named for the failure message.
struct Outputs {
  std::vector<std::pair<std::string, std::string>> items;
  void Add(const std::string& name, const std::string& text) { items.emplace_back(name, text); }
  void Add(const std::string& name, const CommandResult& r) {
    items.emplace_back(name + " stdout", r.stdout_text);
    items.emplace_back(name + " stderr", r.stderr_text);
  }
  void ExpectNone(const std::string& marker) const {
    for (const auto& [name, text] : items) {
      EXPECT_EQ(text.find(marker), std::string::npos)
          << "'" << marker << "' shows in " << name << ":\n"
          << text;
    }
  }
};

// --- TLS ----------------------------------------------------------------------------------------

// A certificate authority made for the test with the openssl CLI: server certificates naming
// 127.0.0.1 and localhost, a client certificate for the user postgres.
class TestCa {
 public:
  TestCa(const TempDir& dir, const std::string& name) : dir_(dir.Sub(name)) {
    std::filesystem::create_directories(dir_);
    Run({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", key(), "-out", cert(), "-days", "2", "-subj", "/CN=lifeline test CA " + name});
  }
  std::string cert() const { return dir_ + "/ca.crt"; }
  std::string key() const { return dir_ + "/ca.key"; }
  // Writes NAME.crt and NAME.key signed by this CA; returns the directory's prefix for them.
  std::string Issue(const std::string& name, const std::string& common_name,
                    const std::string& san) {
    std::string prefix = dir_ + "/" + name;
    Run({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
         prefix + ".key", "-out", prefix + ".csr", "-subj", "/CN=" + common_name});
    std::vector<std::string> sign = {"x509",          "-req",   "-in", prefix + ".csr",   "-CA",
                                     cert(),          "-CAkey", key(), "-CAcreateserial", "-out",
                                     prefix + ".crt", "-days",  "2"};
    if (!san.empty()) {
      std::ofstream(prefix + ".ext") << "subjectAltName=" << san << "\n";
      sign.insert(sign.end(), {"-extfile", prefix + ".ext"});
    }
    Run(sign);
    chmod((prefix + ".key").c_str(), 0600);
    return prefix;
  }

 private:
  void Run(std::vector<std::string> args) {
    CommandSpec spec;
    spec.argv = {testing::RequireProgram("openssl", "openssl")};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    auto r = RunCommand(spec);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->exit_code, 0) << r->stderr_text;
  }
  std::string dir_;
};

class TlsIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = ca_.Issue("server", "localhost", "IP:127.0.0.1,DNS:localhost");
    client_ = ca_.Issue("client", "postgres", "");
    LocalPostgresOptions o{.name = "tls-primary"};
    o.ssl_cert_file = server_ + ".crt";
    o.ssl_key_file = server_ + ".key";
    o.ssl_client_ca_file = ca_.cert();
    o.client_cert_file = client_ + ".crt";
    o.client_key_file = client_ + ".key";
    primary_ = testing::StartPostgres(o);
    o.name = "tls-standby";
    standby_ = testing::StartPostgres(o);
    ASSERT_TRUE(primary_ && standby_);
    testing::LoadReferenceSchema(*primary_, "app");
    testing::LoadReferenceSchema(*standby_, "app");
  }
  std::string Conn(const LocalPostgres& pg, const std::string& root_ca) const {
    return pg.ConnInfo("app") + " sslmode=verify-full sslrootcert=" + root_ca +
           " sslcert=" + client_ + ".crt sslkey=" + client_ + ".key";
  }

  TempDir tmp_;
  TestCa ca_{tmp_, "ca"};
  std::string server_, client_;
  std::unique_ptr<LocalPostgres> primary_, standby_;
};

TEST_F(TlsIntegration, CaptureReplayAndGapcheckVerifyTheServerAndPresentAClientCertificate) {
  // Nothing gets in without TLS: a plain connection is refused by pg_hba, with the fix named.
  CommandResult plain =
      testing::RunLifeline({"replay", "--target", standby_->ConnInfo("app") + " sslmode=disable",
                            "--spool", tmp_.Sub("spool"), "--stop-at-end"});
  EXPECT_EQ(plain.exit_code, 2) << plain.stderr_text;
  EXPECT_NE(plain.stderr_text.find("sslmode"), std::string::npos) << plain.stderr_text;

  ASSERT_TRUE(primary_
                  ->Psql("INSERT INTO emergency_requests (customer_name, phone_number) SELECT "
                         "'caller ' || g, '+44 7700 ' || g FROM generate_series(1, 50) g",
                         "app")
                  .ok());
  Daemon capture({"capture", "--source", Conn(*primary_, ca_.cert()), "--spool", tmp_.Sub("spool"),
                  "--heartbeat-interval", "200ms"},
                 tmp_.Sub("capture.log"));
  Daemon replay({"replay", "--target", Conn(*standby_, ca_.cert()), "--spool", tmp_.Sub("spool")},
                tmp_.Sub("replay.log"));
  ASSERT_TRUE(primary_
                  ->Psql("INSERT INTO emergency_requests (customer_name, phone_number) SELECT "
                         "'streamed ' || g, '+44 7700 ' || g FROM generate_series(1, 50) g",
                         "app")
                  .ok());
  ASSERT_TRUE(WaitFor([&] { return CountRows(*standby_) == 100; }, 120s))
      << capture.Log() << replay.Log();
  // The replication connection (libpq directly) is encrypted too.
  auto walsenders = primary_->Psql(
      "SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE s.ssl "
      "AND s.client_dn LIKE '%postgres%'",
      "app");
  ASSERT_TRUE(walsenders.ok()) << walsenders.status().ToString();
  EXPECT_EQ(Trim(*walsenders), "1");
  auto apply = standby_->Psql(
      "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE s.ssl AND "
      "a.application_name = 'lifeline replay'",
      "app");
  ASSERT_TRUE(apply.ok());
  EXPECT_GE(std::stoi(Trim(*apply)), 1);

  CommandResult rows =
      testing::RunLifeline({"gapcheck", "rows", "--source", Conn(*primary_, ca_.cert()), "--target",
                            Conn(*standby_, ca_.cert())});
  EXPECT_EQ(rows.exit_code, 0) << rows.stdout_text << rows.stderr_text;
  // By host name as well: the certificate names localhost too.
  std::string by_name = Conn(*standby_, ca_.cert());
  by_name.replace(by_name.find("host=127.0.0.1"), 14, "host=localhost");
  CommandResult rpo =
      testing::RunLifeline({"gapcheck", "rpo", "--source", Conn(*primary_, ca_.cert()), "--target",
                            by_name, "--spool", tmp_.Sub("spool")});
  EXPECT_NE(rpo.exit_code, 2) << rpo.stdout_text << rpo.stderr_text;
  EXPECT_EQ(replay.Stop(), 0) << replay.Log();
  EXPECT_EQ(capture.Stop(), 0) << capture.Log();
}

TEST_F(TlsIntegration, AServerSignedByAnotherCaIsRefusedWithExitTwoAndTheFix) {
  TestCa other(tmp_, "other");
  const std::string wrong = other.cert();
  auto expect_refused = [&](const CommandResult& r, const std::string& connection) {
    EXPECT_EQ(r.exit_code, 2) << r.stderr_text;
    EXPECT_FALSE(r.timed_out) << "a TLS failure is not retried";
    EXPECT_NE(r.stderr_text.find(connection), std::string::npos) << r.stderr_text;
    EXPECT_NE(r.stderr_text.find("sslrootcert"), std::string::npos) << r.stderr_text;
    EXPECT_NE(r.stderr_text.find("certificate verify failed"), std::string::npos) << r.stderr_text;
    EXPECT_EQ(r.stderr_text.find("attempt"), std::string::npos) << r.stderr_text;
  };
  expect_refused(testing::RunLifeline(
                     {"capture", "--source", Conn(*primary_, wrong), "--spool", tmp_.Sub("spool")},
                     "", 60'000),
                 "source");
  expect_refused(
      testing::RunLifeline(
          {"replay", "--target", Conn(*standby_, wrong), "--spool", tmp_.Sub("spool")}, "", 60'000),
      "target");
  expect_refused(testing::RunLifeline({"gapcheck", "rows", "--source", Conn(*primary_, wrong),
                                       "--target", Conn(*standby_, ca_.cert())},
                                      "", 60'000),
                 "source database");
  // A CA file that is not there names the file.
  CommandResult missing = testing::RunLifeline(
      {"replay", "--target", Conn(*standby_, tmp_.Sub("nosuch.crt")), "--spool", tmp_.Sub("spool")},
      "", 60'000);
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.stderr_text.find("nosuch.crt"), std::string::npos) << missing.stderr_text;
}

// --- secrets ------------------------------------------------------------------------------------

const std::string kSourceSecret = "src-Secret-4f1c9a";
const std::string kTargetSecret = "tgt-Secret-b72e05";
const std::string kWrongSecret = "wrong-Secret-9d3a61";

TEST(SecretsIntegration, PasswordsNeverShowInArgvLogsMetricsHealthOrErrors) {
  TempDir tmp;
  auto primary = testing::StartPostgres({.name = "primary", .superuser_password = kSourceSecret});
  auto standby = testing::StartPostgres({.name = "standby", .superuser_password = kTargetSecret});
  ASSERT_TRUE(primary && standby);
  testing::LoadReferenceSchema(*primary, "app");
  testing::LoadReferenceSchema(*standby, "app");
  auto kafka = testing::StartDevKafka(3);
  ASSERT_TRUE(kafka);
  ASSERT_TRUE(kafka->CreateTopic("lifeline", 3, 3).ok());
  const std::string target_file = tmp.Sub("target.password");
  const std::string wrong_file = tmp.Sub("wrong.password");
  WriteSecretFile(target_file, kTargetSecret);
  WriteSecretFile(wrong_file, kWrongSecret);
  Outputs out;

  const int capture_port = FreePort(), replay_port = FreePort();
  Daemon capture({"capture", "--source", primary->ConnInfo("app"), "--spool", tmp.Sub("spool"),
                  "--heartbeat-interval", "200ms", "--metrics-addr", std::to_string(capture_port),
                  "--kafka-brokers", kafka->bootstrap_servers(), "--topic", "lifeline"},
                 tmp.Sub("capture.log"), {"LIFELINE_SOURCE_PASSWORD=" + kSourceSecret});
  Daemon replay({"replay", "--target", standby->ConnInfo("app"), "--spool", tmp.Sub("spool"),
                 "--target-password-file", target_file, "--metrics-addr",
                 "127.0.0.1:" + std::to_string(replay_port)},
                tmp.Sub("replay.log"));
  ASSERT_TRUE(primary
                  ->Psql("INSERT INTO emergency_requests (customer_name, phone_number) SELECT "
                         "'caller ' || g, '+44 7700 ' || g FROM generate_series(1, 20) g",
                         "app")
                  .ok());
  ASSERT_TRUE(WaitFor([&] { return CountRows(*standby) == 20; }, 120s))
      << capture.Log() << replay.Log();
  out.Add("capture argv", capture.CommandLine());
  out.Add("replay argv", replay.CommandLine());
  EXPECT_NE(capture.CommandLine().find("capture"), std::string::npos);
  for (const auto& [name, port] : {std::pair{"capture", capture_port}, {"replay", replay_port}}) {
    std::string metrics = HttpGet("127.0.0.1", port, "/metrics");
    EXPECT_EQ(metrics.substr(0, 4), "200\n") << name;
    out.Add(std::string(name) + " /metrics", metrics);
    std::string health = HttpGet("127.0.0.1", port, "/health");
    EXPECT_FALSE(health.empty()) << name;
    out.Add(std::string(name) + " /health", health);
  }
  // A bare port is loopback only: another local address does not answer.
  EXPECT_EQ(HttpGet("127.0.0.2", capture_port, "/metrics"), "");

  CommandResult rows =
      RunWithEnv({"gapcheck", "rows", "--source", primary->ConnInfo("app"), "--target",
                  standby->ConnInfo("app"), "--target-password-file", target_file},
                 {"LIFELINE_SOURCE_PASSWORD=" + kSourceSecret});
  EXPECT_EQ(rows.exit_code, 0) << rows.stdout_text << rows.stderr_text;
  out.Add("gapcheck rows", rows);
  // libpq's own PGPASSWORD works as well.
  CommandResult buckets = RunWithEnv({"gapcheck", "buckets", "--source", primary->ConnInfo("app"),
                                      "--target", primary->ConnInfo("app")},
                                     {"PGPASSWORD=" + kSourceSecret});
  EXPECT_EQ(buckets.exit_code, 0) << buckets.stdout_text << buckets.stderr_text;
  out.Add("gapcheck buckets", buckets);

  EXPECT_EQ(replay.Stop(), 0) << replay.Log();
  EXPECT_EQ(capture.Stop(), 0) << capture.Log();
  out.Add("capture log", capture.Log());
  out.Add("replay log", replay.Log());

  // Wrong passwords: refused with exit 2, and the wrong one is not echoed either.
  CommandResult bad_capture =
      RunWithEnv({"capture", "--source", primary->ConnInfo("app"), "--spool", tmp.Sub("spool2")},
                 {"LIFELINE_SOURCE_PASSWORD=" + kWrongSecret});
  EXPECT_EQ(bad_capture.exit_code, 2) << bad_capture.stderr_text;
  EXPECT_NE(bad_capture.stderr_text.find("password authentication failed"), std::string::npos)
      << bad_capture.stderr_text;
  out.Add("capture, wrong password", bad_capture);
  CommandResult bad_replay = RunWithEnv({"replay", "--target", standby->ConnInfo("app"), "--spool",
                                         tmp.Sub("spool"), "--target-password-file", wrong_file},
                                        {});
  EXPECT_EQ(bad_replay.exit_code, 2) << bad_replay.stderr_text;
  out.Add("replay, wrong password", bad_replay);
  CommandResult bad_gapcheck =
      RunWithEnv({"gapcheck", "rpo", "--source", primary->ConnInfo("app"), "--target",
                  standby->ConnInfo("app"), "--spool", tmp.Sub("spool"), "--source-password-file",
                  wrong_file, "--target-password-file", target_file},
                 {});
  EXPECT_EQ(bad_gapcheck.exit_code, 2) << bad_gapcheck.stderr_text;
  out.Add("gapcheck, wrong password", bad_gapcheck);
  // A password put into the conninfo anyway is refused before any connection, not echoed.
  CommandResult in_argv =
      RunWithEnv({"replay", "--target", standby->ConnInfo("app") + " password=" + kWrongSecret,
                  "--spool", tmp.Sub("spool")},
                 {});
  EXPECT_EQ(in_argv.exit_code, 2);
  EXPECT_NE(in_argv.stderr_text.find("--target holds a password"), std::string::npos)
      << in_argv.stderr_text;
  out.Add("replay, password in the conninfo", in_argv);

  for (const std::string& marker : {kSourceSecret, kTargetSecret, kWrongSecret}) {
    out.ExpectNone(marker);
  }
}

// --- personal data ------------------------------------------------------------------------------

const std::string kPerson = "Zq9xPersonMarker";

TEST(PersonalDataIntegration, RowValuesStayOutOfLogsAndMetricsUnlessLogValues) {
  TempDir tmp;
  auto primary = testing::StartPostgres({.name = "primary"});
  auto standby = testing::StartPostgres({.name = "standby"});
  ASSERT_TRUE(primary && standby);
  testing::LoadReferenceSchema(*primary, "app");
  testing::LoadReferenceSchema(*standby, "app");
  // The standby refuses the marked rows: the apply error's DETAIL carries the whole row.
  ASSERT_TRUE(standby
                  ->Psql("ALTER TABLE emergency_requests ADD CONSTRAINT no_marked_callers CHECK "
                         "(customer_name NOT LIKE '%" +
                             kPerson + "%')",
                         "app")
                  .ok());
  Outputs out;
  const int capture_port = FreePort(), replay_port = FreePort();
  Daemon capture(
      {"capture", "--source", primary->ConnInfo("app"), "--spool", tmp.Sub("spool"),
       "--heartbeat-interval", "200ms", "--metrics-addr", ":" + std::to_string(capture_port)},
      tmp.Sub("capture.log"));
  ASSERT_TRUE(primary
                  ->Psql("INSERT INTO emergency_requests (customer_name, phone_number) SELECT "
                         "'caller ' || g, '+44 7700 ' || g FROM generate_series(1, 10) g",
                         "app")
                  .ok());
  ASSERT_TRUE(
      primary
          ->Psql("INSERT INTO emergency_requests (customer_name, phone_number, location_address, "
                 "notes) VALUES ('Ada " +
                     kPerson + "', '+44 " + kPerson + "', '1 " + kPerson + " Road', '{\"who\": \"" +
                     kPerson + "\"}')",
                 "app")
          .ok());
  ASSERT_TRUE(primary
                  ->Psql("UPDATE emergency_requests SET status = 'assigned' WHERE "
                         "customer_name LIKE 'caller%'",
                         "app")
                  .ok());

  // The replayer stops at the refused row (exit 2, not retried), naming the constraint only.
  Daemon replay({"replay", "--target", standby->ConnInfo("app"), "--spool", tmp.Sub("spool"),
                 "--metrics-addr", std::to_string(replay_port)},
                tmp.Sub("replay.log"));
  EXPECT_EQ(replay.WaitExit(120s), 2) << replay.Log();
  std::string refused = replay.Log();
  EXPECT_NE(refused.find("no_marked_callers"), std::string::npos) << refused;
  EXPECT_NE(refused.find("--log-values"), std::string::npos) << refused;
  EXPECT_EQ(refused.find("reconnecting"), std::string::npos) << refused;
  EXPECT_LE(CountRows(*standby), 10);
  EXPECT_EQ(CountRows(*standby, "customer_name LIKE '%" + kPerson + "%'"), 0);
  out.Add("replay log (refused row)", refused);
  out.Add("capture /metrics", HttpGet("127.0.0.1", capture_port, "/metrics"));
  out.Add("capture /health", HttpGet("127.0.0.1", capture_port, "/health"));

  // A report the user asked for may list rows; its log lines may not.
  CommandResult rows =
      testing::RunLifeline({"gapcheck", "rows", "--source", primary->ConnInfo("app"), "--target",
                            standby->ConnInfo("app")});
  EXPECT_EQ(rows.exit_code, 1) << rows.stdout_text << rows.stderr_text;
  out.Add("gapcheck rows stderr", rows.stderr_text);
  CommandResult stream = testing::RunLifeline({"gapcheck", "stream", "--spool", tmp.Sub("spool")});
  out.Add("gapcheck stream", stream);

  // With --log-values the same failure shows the row, for debugging.
  CommandResult debug = testing::RunLifeline(
      {"replay", "--target", standby->ConnInfo("app"), "--spool", tmp.Sub("spool"), "--log-values"},
      "", 120'000);
  EXPECT_EQ(debug.exit_code, 2) << debug.stderr_text;
  EXPECT_NE(debug.stderr_text.find(kPerson), std::string::npos) << debug.stderr_text;

  // Fixed on the standby, the stream resumes where it stopped and nothing leaks on the way.
  ASSERT_TRUE(
      standby->Psql("ALTER TABLE emergency_requests DROP CONSTRAINT no_marked_callers", "app")
          .ok());
  Daemon resumed({"replay", "--target", standby->ConnInfo("app"), "--spool", tmp.Sub("spool"),
                  "--metrics-addr", std::to_string(replay_port)},
                 tmp.Sub("replay2.log"));
  ASSERT_TRUE(WaitFor([&] { return CountRows(*standby, "status = 'assigned'") == 10; }, 120s))
      << resumed.Log();
  EXPECT_EQ(testing::TableDigest(*standby), testing::TableDigest(*primary));
  out.Add("replay /metrics", HttpGet("127.0.0.1", replay_port, "/metrics"));
  out.Add("replay /health", HttpGet("127.0.0.1", replay_port, "/health"));
  EXPECT_EQ(resumed.Stop(), 0);
  EXPECT_EQ(capture.Stop(), 0);
  out.Add("replay log (resumed)", resumed.Log());
  out.Add("capture log", capture.Log());
  out.ExpectNone(kPerson);
}

}  // namespace
}  // namespace lifeline
