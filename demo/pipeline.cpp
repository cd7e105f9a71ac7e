// LocalPipeline: clusters, devkafka and daemons of the local pipeline, each started, crashed and
// restarted on request; observations read with psql so they work whatever state the daemons are in.
#include "demo/pipeline.h"

#include <signal.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <sstream>

#include "common/event_format.h"

namespace lifeline {
namespace {

namespace fs = std::filesystem;

std::string ReferenceSchemaPath() {
  // The source tree holding the binary: <repo>/build/cli/lifeline -> <repo>/scripts/sql.
  fs::path exe = SelfExecutable();
  for (fs::path dir = exe.parent_path(); !dir.empty() && dir != dir.parent_path();
       dir = dir.parent_path()) {
    fs::path candidate = dir / "scripts/sql/reference_schema.sql";
    if (fs::exists(candidate)) return candidate.string();
  }
  return "scripts/sql/reference_schema.sql";
}

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

std::string SelfExecutable() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("lifeline") : p.string();
}

Result<std::unique_ptr<LocalPipeline>> LocalPipeline::Create(const PipelineOptions& options) {
  std::unique_ptr<LocalPipeline> p(new LocalPipeline(options));
  p->workdir_ = options.workdir;
  if (p->workdir_.empty()) {
    std::string tmpl = "/tmp/lifeline-run-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
      return Status::IOError("cannot create a work directory under /tmp");
    }
    p->workdir_ = tmpl;
  }
  std::error_code ec;
  fs::create_directories(p->workdir_, ec);
  if (ec) {
    return Status::InvalidArgument("cannot create the work directory " + p->workdir_ + ": " +
                                   ec.message());
  }
  // The clusters run as the postgres OS user, which must reach its directory inside.
  fs::permissions(p->workdir_,
                  fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                      fs::perms::others_read | fs::perms::others_exec,
                  ec);
  auto make_cluster = [&](const char* name,
                          bool archiving) -> Result<std::unique_ptr<LocalPostgres>> {
    LocalPostgresOptions o;
    o.name = name;
    o.parent_dir = p->workdir_;
    o.wal_archiving = archiving;
    LIFELINE_ASSIGN_OR_RETURN(auto pg, LocalPostgres::Create(o));
    pg->set_keep(options.keep);
    LIFELINE_RETURN_IF_ERROR(pg->CreateDatabase("app"));
    LIFELINE_RETURN_IF_ERROR(pg->PsqlFile(ReferenceSchemaPath(), "app"));
    return pg;
  };
  LIFELINE_ASSIGN_OR_RETURN(p->primary_, make_cluster("primary", options.wal_archiving));
  LIFELINE_ASSIGN_OR_RETURN(p->standby_, make_cluster("standby", false));
  LIFELINE_ASSIGN_OR_RETURN(p->kafka_, DevKafkaCluster::Start(3));
  LIFELINE_RETURN_IF_ERROR(p->kafka_->CreateTopic(options.topic, options.topic_partitions, 3));
  if (options.rtt_ms > 0) {
    LIFELINE_RETURN_IF_ERROR(p->kafka_->SetRoundTripTime(-1, options.rtt_ms));
  }
  return p;
}

LocalPipeline::~LocalPipeline() {
  StopLoad();
  if (load_thread_.joinable()) load_thread_.join();
  StopReplay();
  StopCapture();
  kafka_.reset();
  primary_.reset();
  standby_.reset();
  if (!options_.keep) {
    std::error_code ec;
    fs::remove_all(workdir_, ec);
  }
}

std::string LocalPipeline::Binary() const {
  return options_.lifeline_binary.empty() ? SelfExecutable() : options_.lifeline_binary;
}

Status LocalPipeline::StartCapture() {
  CommandSpec spec;
  spec.argv = {Binary(),
               "capture",
               "--source",
               primary_->ConnInfo("app"),
               "--spool",
               spool_dir(),
               "--heartbeat-interval",
               options_.heartbeat_interval,
               "--kafka-brokers",
               kafka_->bootstrap_servers(),
               "--topic",
               options_.topic,
               "--topic-partitions",
               std::to_string(options_.topic_partitions)};
  LIFELINE_ASSIGN_OR_RETURN(capture_, ChildProcess::Start(spec, workdir_ + "/capture.log"));
  return Status::Ok();
}

Status LocalPipeline::StartReplay() {
  CommandSpec spec;
  spec.argv = {Binary(),          "replay",
               "--target",        standby_->ConnInfo("app"),
               "--kafka-brokers", kafka_->bootstrap_servers(),
               "--topic",         options_.topic};
  if (!options_.audit_table.empty()) {
    spec.argv.insert(spec.argv.end(), {"--audit-table", options_.audit_table});
  }
  LIFELINE_ASSIGN_OR_RETURN(replay_, ChildProcess::Start(spec, workdir_ + "/replay.log"));
  return Status::Ok();
}

void LocalPipeline::KillCapture() {
  if (capture_.running()) (void)capture_.Stop(SIGKILL, std::chrono::seconds(10));
}

void LocalPipeline::KillReplay() {
  if (replay_.running()) (void)replay_.Stop(SIGKILL, std::chrono::seconds(10));
}

int LocalPipeline::StopCapture() {
  if (!capture_.running()) return -1;
  auto r = capture_.Stop(SIGTERM, std::chrono::seconds(30));
  return r.ok() ? *r : -1;
}

int LocalPipeline::StopReplay() {
  if (!replay_.running()) return -1;
  auto r = replay_.Stop(SIGTERM, std::chrono::seconds(30));
  return r.ok() ? *r : -1;
}

bool LocalPipeline::capture_running() {
  return capture_.running();
}
bool LocalPipeline::replay_running() {
  return replay_.running();
}

Status LocalPipeline::KafkaDown() {
  for (int id = 1; id <= kafka_->broker_count(); ++id) {
    LIFELINE_RETURN_IF_ERROR(kafka_->SetBrokerDown(id));
  }
  return Status::Ok();
}

Status LocalPipeline::KafkaUp() {
  for (int id = 1; id <= kafka_->broker_count(); ++id) {
    LIFELINE_RETURN_IF_ERROR(kafka_->SetBrokerUp(id));
  }
  return Status::Ok();
}

void LocalPipeline::StartLoad(double rate, int64_t duration_ms) {
  load_stop_ = false;
  LoadOptions load;
  load.target = primary_->ConnInfo("app");
  load.rate = rate;
  load.duration_ms = duration_ms;
  load.ledger_path = workdir_ + "/ledger.txt";
  load.on_request_committed = [this](const std::string& id) {
    std::lock_guard<std::mutex> lock(ledger_mu_);
    ledger_.push_back({id, NowUnixMicros()});
  };
  load_thread_ =
      std::thread([this, load] { load_result_ = RunLoad(load, load_stop_, &committed_); });
}

void LocalPipeline::StopLoad() {
  load_stop_ = true;
}

Result<LoadReport> LocalPipeline::WaitLoad() {
  if (load_thread_.joinable()) load_thread_.join();
  return load_result_;
}

std::vector<LedgerEntry> LocalPipeline::Ledger() const {
  std::lock_guard<std::mutex> lock(ledger_mu_);
  return ledger_;
}

AppliedPosition LocalPipeline::Applied() const {
  AppliedPosition a;
  auto r = standby_->Psql(
      "SELECT coalesce(max(last_seq), 0) || '|' || coalesce(max(last_commit_lsn), '0/0') || '|' "
      "|| coalesce((extract(epoch FROM max(last_commit_time)) * 1000000)::bigint, 0) FROM "
      "lifeline.replay_position",
      "app");
  if (!r.ok()) return a;
  unsigned long long seq = 0;
  long long t = 0;
  char lsn[64] = {0};
  if (std::sscanf(r->c_str(), "%llu|%63[^|]|%lld", &seq, lsn, &t) == 3) {
    a.seq = seq;
    if (auto l = Lsn::Parse(lsn); l.ok()) a.lsn = *l;
    a.commit_time_us = t;
  }
  return a;
}

Result<Lsn> LocalPipeline::PrimaryWalLsn() const {
  LIFELINE_ASSIGN_OR_RETURN(std::string text, primary_->Psql("SELECT pg_current_wal_lsn()", "app"));
  return Lsn::Parse(Trimmed(text));
}

bool LocalPipeline::WaitApplied(Lsn lsn, std::chrono::milliseconds timeout,
                                const std::atomic<bool>& stop) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline && !stop.load()) {
    if (Applied().lsn > lsn) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

std::set<std::string> LocalPipeline::RequestIds(const LocalPostgres& pg) const {
  std::set<std::string> ids;
  auto r = pg.Psql("SELECT id FROM emergency_requests", "app");
  if (!r.ok()) return ids;
  std::istringstream in(*r);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) ids.insert(line);
  }
  return ids;
}

std::string LocalPipeline::Digest(const LocalPostgres& pg) const {
  auto r = pg.Psql(
      "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t.id)), '') FROM "
      "emergency_requests t",
      "app");
  return r.ok() ? Trimmed(*r) : "";
}

std::vector<LedgerEntry> LocalPipeline::LostCalls() const {
  std::set<std::string> on_standby = RequestIds(*standby_);
  std::vector<LedgerEntry> lost;
  for (const LedgerEntry& e : Ledger()) {
    if (!on_standby.count(e.id)) lost.push_back(e);
  }
  return lost;
}

}  // namespace lifeline
