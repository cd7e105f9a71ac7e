// initdb/pg_ctl/psql orchestration for local clusters.
#include "common/local_postgres.h"

#include <netinet/in.h>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>
#include <tuple>

#include "common/subprocess.h"

namespace lifeline {
namespace fs = std::filesystem;

namespace {

constexpr char kPgBin[] = "/usr/lib/postgresql/15/bin";

bool RunningAsRoot() {
  return geteuid() == 0;
}

Status ChownToPostgres(const std::string& path) {
  if (!RunningAsRoot()) return Status::Ok();
  struct passwd* pw = getpwnam("postgres");
  if (pw == nullptr) {
    return Status::FailedPrecondition(
        "running as root, but there is no `postgres` OS user to own the cluster: install "
        "postgresql-15 (scripts/setup.sh)");
  }
  if (chown(path.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
    return Status::IOError("chown " + path + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

std::string Tail(const std::string& text, size_t n = 2000) {
  return text.size() <= n ? text : text.substr(text.size() - n);
}

}  // namespace

Result<std::string> PostgresBinDir() {
  if (access((std::string(kPgBin) + "/initdb").c_str(), X_OK) != 0 ||
      access((std::string(kPgBin) + "/pg_ctl").c_str(), X_OK) != 0) {
    return Status::FailedPrecondition(
        std::string("PostgreSQL 15 server binaries not found in ") + kPgBin +
        ": run scripts/setup.sh, or apt-get install postgresql-15 postgresql-15-postgis-3");
  }
  return std::string(kPgBin);
}

Result<int> PickFreePort() {
  // Below the kernel's ephemeral range: a port from inside it is free only until some client's
  // connect() takes it as its local port, which a cluster restarted on its port, or a daemon
  // binding a port picked a moment before, would then fail on.
  int ephemeral_low = 32768;
  if (std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range"); range) range >> ephemeral_low;
  const int low = 10000, high = std::max(low + 1000, ephemeral_low) - 1;
  std::mt19937 rng(std::random_device{}());
  std::string last_error;
  for (int attempt = 0; attempt < 200; ++attempt) {
    const int port = low + static_cast<int>(rng() % static_cast<unsigned>(high - low + 1));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return Status::IOError(std::string("socket: ") + std::strerror(errno));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    const bool bound = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    if (!bound) last_error = std::strerror(errno);
    close(fd);
    if (bound) return port;
  }
  return Status::IOError("no free port on 127.0.0.1 between " + std::to_string(low) + " and " +
                         std::to_string(high) + " after 200 tries: " + last_error);
}

LocalPostgres::~LocalPostgres() {
  if (running_) Stop("immediate").IgnoreError();
  if (!keep_ && !base_dir_.empty()) {
    std::error_code ec;
    fs::remove_all(base_dir_, ec);
  }
}

Status LocalPostgres::RunAsOwner(const std::vector<std::string>& argv, int timeout_ms,
                                 std::string* output) const {
  CommandSpec spec;
  spec.argv = argv;
  spec.timeout = std::chrono::milliseconds(timeout_ms);
  if (RunningAsRoot()) spec.run_as_user = "postgres";
  auto r = RunCommand(spec);
  if (!r.ok()) return r.status();
  if (output != nullptr) *output = r->stdout_text;
  if (r->exit_code != 0) {
    return Status::Unavailable(argv[0] + " failed for cluster " + name_ + " (exit " +
                               std::to_string(r->exit_code) + (r->timed_out ? ", timed out" : "") +
                               "): " + Tail(r->stderr_text + r->stdout_text));
  }
  return Status::Ok();
}

Status LocalPostgres::WriteConfig(const LocalPostgresOptions& options) {
  std::ofstream conf(data_dir() + "/postgresql.conf", std::ios::app);
  conf << "\n# lifeline local cluster\n"
       << "listen_addresses = '127.0.0.1'\n"
       << "port = " << port_ << "\n"
       << "unix_socket_directories = '" << base_dir_ << "'\n"
       << "wal_level = logical\n"
       << "max_replication_slots = 20\n"
       << "max_wal_senders = 20\n"
       << "max_connections = 100\n"
       // The OS does not crash in tests; skipping fsync keeps them fast and does not change
       // what an immediate shutdown (a PostgreSQL crash) loses.
       << "fsync = off\n"
       << "shared_buffers = 128MB\n"
       << "logging_collector = off\n"
       << "log_min_messages = warning\n";
  if (options.wal_archiving) {
    conf << "archive_mode = on\n"
         << "archive_command = 'test ! -f " << archive_dir() << "/%f && cp %p " << archive_dir()
         << "/%f'\n"
         << "archive_timeout = 1s\n";
  }
  for (const auto& line : options.settings) conf << line << "\n";
  if (!conf) return Status::IOError("cannot write " + data_dir() + "/postgresql.conf");
  return WriteTls(options);
}

Status LocalPostgres::WriteTls(const LocalPostgresOptions& options) {
  if (options.ssl_cert_file.empty() && options.ssl_key_file.empty()) return Status::Ok();
  if (options.ssl_cert_file.empty() || options.ssl_key_file.empty()) {
    return Status::InvalidArgument("cluster " + name_ +
                                   ": TLS needs both ssl_cert_file and ssl_key_file");
  }
  // The server reads them as the cluster's owner and refuses a key others may read.
  std::string conf_lines = "ssl = on\n";
  for (const auto& [from, to, key] :
       {std::tuple{options.ssl_cert_file, std::string("server.crt"), "ssl_cert_file"},
        std::tuple{options.ssl_key_file, std::string("server.key"), "ssl_key_file"},
        std::tuple{options.ssl_client_ca_file, std::string("client_ca.crt"), "ssl_ca_file"}}) {
    if (from.empty()) continue;
    std::error_code ec;
    fs::copy_file(from, base_dir_ + "/" + to, fs::copy_options::overwrite_existing, ec);
    if (ec)
      return Status::IOError("cannot copy " + from + " into " + base_dir_ + ": " + ec.message());
    fs::permissions(base_dir_ + "/" + to, fs::perms::owner_read | fs::perms::owner_write);
    LIFELINE_RETURN_IF_ERROR(ChownToPostgres(base_dir_ + "/" + to));
    conf_lines += std::string(key) + " = '" + base_dir_ + "/" + to + "'\n";
  }
  std::ofstream conf(data_dir() + "/postgresql.conf", std::ios::app);
  conf << conf_lines;
  std::string method = options.superuser_password.empty() ? "trust" : "scram-sha-256";
  std::string client = options.ssl_client_ca_file.empty() ? "" : " clientcert=verify-full";
  std::ofstream hba(data_dir() + "/pg_hba.conf", std::ios::trunc);
  hba << "# lifeline local cluster: TLS only over TCP\n"
      << "local all all trust\n"
      << "local replication all trust\n"
      << "hostssl all all 127.0.0.1/32 " << method << client << "\n"
      << "hostssl replication all 127.0.0.1/32 " << method << client << "\n";
  if (!conf || !hba) return Status::IOError("cannot write the TLS settings of cluster " + name_);
  ssl_ = true;
  client_cert_ = options.client_cert_file;
  client_key_ = options.client_key_file;
  return Status::Ok();
}

Result<std::unique_ptr<LocalPostgres>> LocalPostgres::Create(const LocalPostgresOptions& options) {
  LIFELINE_ASSIGN_OR_RETURN(std::string bin, PostgresBinDir());
  std::unique_ptr<LocalPostgres> pg(new LocalPostgres());
  pg->name_ = options.name;
  pg->password_ = options.superuser_password;
  std::string parent = options.parent_dir.empty() ? "/tmp" : options.parent_dir;
  std::string tmpl = parent + "/lifeline-" + options.name + "-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    return Status::IOError("cannot create a cluster directory under " + parent + ": " +
                           std::strerror(errno));
  }
  pg->base_dir_ = tmpl;
  LIFELINE_RETURN_IF_ERROR(ChownToPostgres(pg->base_dir_));
  if (options.wal_archiving) {
    fs::create_directories(pg->archive_dir());
    LIFELINE_RETURN_IF_ERROR(ChownToPostgres(pg->archive_dir()));
  }
  std::vector<std::string> initdb = {bin + "/initdb", "-D", pg->data_dir(), "-U",
                                     "postgres",      "-E", "UTF8",         "--locale=C.UTF-8",
                                     "--no-sync"};
  if (options.superuser_password.empty()) {
    initdb.insert(initdb.end(), {"--auth-local=trust", "--auth-host=trust"});
  } else {
    std::string pwfile = pg->base_dir_ + "/pwfile";
    {
      std::ofstream out(pwfile);
      out << options.superuser_password << "\n";
    }
    LIFELINE_RETURN_IF_ERROR(ChownToPostgres(pwfile));
    initdb.insert(initdb.end(),
                  {"--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile=" + pwfile});
  }
  LIFELINE_RETURN_IF_ERROR(pg->RunAsOwner(initdb, 120'000));
  fs::remove(pg->base_dir_ + "/pwfile");
  {
    // Replication connections over TCP (pg_hba "all" does not cover them).
    std::ofstream hba(pg->data_dir() + "/pg_hba.conf", std::ios::app);
    hba << "host replication all 127.0.0.1/32 "
        << (options.superuser_password.empty() ? "trust" : "scram-sha-256") << "\n";
  }
  Status started;
  for (int attempt = 0; attempt < 3; ++attempt) {
    LIFELINE_ASSIGN_OR_RETURN(pg->port_, PickFreePort());
    if (attempt == 0) {
      LIFELINE_RETURN_IF_ERROR(pg->WriteConfig(options));
    } else {
      std::ofstream conf(pg->data_dir() + "/postgresql.conf", std::ios::app);
      conf << "port = " << pg->port_ << "\n";  // a later line wins
    }
    started = pg->Start();
    if (started.ok()) break;
  }
  LIFELINE_RETURN_IF_ERROR(started);
  spdlog::debug("cluster {} on 127.0.0.1:{} in {}", pg->name_, pg->port_, pg->base_dir_);
  return pg;
}

Result<std::unique_ptr<LocalPostgres>> LocalPostgres::RestoreFromBackup(
    const LocalPostgresOptions& options, const std::string& backup_dir,
    const std::string& archive_dir, const std::string& recovery_target_time) {
  LIFELINE_ASSIGN_OR_RETURN(std::string bin, PostgresBinDir());
  std::unique_ptr<LocalPostgres> pg(new LocalPostgres());
  pg->name_ = options.name;
  std::string parent = options.parent_dir.empty() ? "/tmp" : options.parent_dir;
  std::string tmpl = parent + "/lifeline-" + options.name + "-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    return Status::IOError("cannot create a cluster directory under " + parent);
  }
  pg->base_dir_ = tmpl;
  LIFELINE_RETURN_IF_ERROR(ChownToPostgres(pg->base_dir_));
  LIFELINE_RETURN_IF_ERROR(pg->RunAsOwner({"cp", "-a", backup_dir, pg->data_dir()}, 300'000));
  LIFELINE_ASSIGN_OR_RETURN(pg->port_, PickFreePort());
  {
    std::ofstream conf(pg->data_dir() + "/postgresql.conf", std::ios::app);
    conf << "\n# restored by lifeline\n"
         << "port = " << pg->port_ << "\n"
         << "unix_socket_directories = '" << pg->base_dir_ << "'\n"
         << "archive_mode = off\n"
         << "restore_command = 'cp " << archive_dir << "/%f %p'\n"
         << "recovery_target_time = '" << recovery_target_time << "'\n"
         << "recovery_target_action = 'promote'\n";
    for (const auto& line : options.settings) conf << line << "\n";
  }
  std::ofstream(pg->data_dir() + "/recovery.signal").close();
  LIFELINE_RETURN_IF_ERROR(ChownToPostgres(pg->data_dir() + "/recovery.signal"));
  LIFELINE_RETURN_IF_ERROR(pg->Start());
  // Recovery ends with a promotion; wait until the cluster takes writes.
  for (int i = 0; i < 600; ++i) {
    auto r = pg->Psql("SELECT pg_is_in_recovery()");
    if (r.ok() && r.value().find('f') != std::string::npos) return pg;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return Status::Unavailable("restored cluster " + pg->name_ +
                             " did not leave recovery within 60 s; see " + pg->log_path());
}

std::string LocalPostgres::ConnInfo(const std::string& dbname) const {
  std::string ci =
      "host=127.0.0.1 port=" + std::to_string(port_) + " user=postgres dbname=" + dbname;
  return ci;
}

Status LocalPostgres::Start() {
  LIFELINE_ASSIGN_OR_RETURN(std::string bin, PostgresBinDir());
  LIFELINE_RETURN_IF_ERROR(RunAsOwner(
      {bin + "/pg_ctl", "-D", data_dir(), "-l", log_path(), "-w", "-t", "120", "start"}, 130'000));
  running_ = true;
  return Status::Ok();
}

Status LocalPostgres::Stop(const std::string& mode) {
  LIFELINE_ASSIGN_OR_RETURN(std::string bin, PostgresBinDir());
  Status s = RunAsOwner({bin + "/pg_ctl", "-D", data_dir(), "-m", mode, "-w", "-t", "120", "stop"},
                        130'000);
  if (s.ok()) running_ = false;
  return s;
}

Status LocalPostgres::Restart(const std::string& mode) {
  LIFELINE_RETURN_IF_ERROR(Stop(mode));
  return Start();
}

int LocalPostgres::postmaster_pid() const {
  std::ifstream in(data_dir() + "/postmaster.pid");
  int pid = -1;
  if (in >> pid) return pid;
  return -1;
}

Result<std::string> LocalPostgres::Psql(const std::string& sql, const std::string& dbname) const {
  CommandSpec spec;
  spec.argv = {"psql",
               "-X",
               "-q",
               "-A",
               "-t",
               "-v",
               "ON_ERROR_STOP=1",
               "-h",
               "127.0.0.1",
               "-p",
               std::to_string(port_),
               "-U",
               "postgres",
               "-d",
               dbname,
               "-f",
               "-"};
  spec.stdin_text = sql;
  spec.timeout = std::chrono::milliseconds(300'000);
  if (!password_.empty()) spec.extra_env.push_back("PGPASSWORD=" + password_);
  if (ssl_) spec.extra_env.push_back("PGSSLMODE=require");
  if (!client_cert_.empty()) spec.extra_env.push_back("PGSSLCERT=" + client_cert_);
  if (!client_key_.empty()) spec.extra_env.push_back("PGSSLKEY=" + client_key_);
  LIFELINE_ASSIGN_OR_RETURN(CommandResult r, RunCommand(spec));
  if (r.exit_code != 0) {
    return Status::InvalidArgument("psql on cluster " + name_ + " failed: " + Tail(r.stderr_text));
  }
  return r.stdout_text;
}

Status LocalPostgres::PsqlFile(const std::string& path, const std::string& dbname) const {
  std::ifstream in(path);
  if (!in) return Status::NotFound("SQL file " + path + " not found");
  std::string sql((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto r = Psql(sql, dbname);
  return r.ok() ? Status::Ok() : r.status().WithContext(path);
}

Status LocalPostgres::CreateDatabase(const std::string& dbname) const {
  auto r = Psql("CREATE DATABASE \"" + dbname + "\"");
  return r.status();
}

Status LocalPostgres::BaseBackup(const std::string& target_dir) const {
  LIFELINE_ASSIGN_OR_RETURN(std::string bin, PostgresBinDir());
  fs::create_directories(fs::path(target_dir).parent_path());
  LIFELINE_RETURN_IF_ERROR(ChownToPostgres(fs::path(target_dir).parent_path().string()));
  return RunAsOwner({bin + "/pg_basebackup", "-h", "127.0.0.1", "-p", std::to_string(port_), "-U",
                     "postgres", "-D", target_dir, "-X", "stream", "-c", "fast", "--no-sync"},
                    300'000);
}

Status LocalPostgres::ArchiveUpToNow(int timeout_ms) const {
  LIFELINE_ASSIGN_OR_RETURN(std::string segment,
                            Psql("SELECT pg_walfile_name(pg_current_wal_lsn()); "
                                 "SELECT pg_switch_wal()"));
  segment = segment.substr(0, segment.find('\n'));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string archived;
  while (std::chrono::steady_clock::now() < deadline) {
    LIFELINE_ASSIGN_OR_RETURN(archived,
                              Psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver"));
    while (!archived.empty() && std::isspace(static_cast<unsigned char>(archived.back()))) {
      archived.pop_back();
    }
    // Segment names of one timeline sort as their positions.
    if (archived.size() == segment.size() && archived >= segment) return Status::Ok();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return Status::Unavailable(
      "WAL segment " + segment + " was not archived within " + std::to_string(timeout_ms) +
      " ms (last archived: " + (archived.empty() ? "none" : archived) + "); check archive_command");
}

}  // namespace lifeline
