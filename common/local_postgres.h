// A throwaway PostgreSQL 15 cluster on 127.0.0.1 for tests, the demo, drills and benchmarks:
// initdb into a temporary directory (as the `postgres` OS user when run as root), logical WAL,
// a free port, optional WAL archiving, optional TLS-only access; stopped and removed when the
// object goes away.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace lifeline {

struct LocalPostgresOptions {
  std::string name = "pg";            // used in the directory name and log lines
  std::string parent_dir;             // where to create the cluster directory; empty: /tmp
  std::vector<std::string> settings;  // extra postgresql.conf lines, e.g. "max_wal_senders = 4"
  bool wal_archiving = false;         // archive_mode=on, archive_command copies into archive_dir()
  std::string superuser_password;     // non-empty: TCP connections need it (scram-sha-256)
  // TLS: with a server certificate and key (PEM, copied into the cluster directory), TCP
  // connections must use it (pg_hba hostssl lines only). With a client CA as well, clients must
  // also present a certificate it signed (clientcert=verify-full); Psql() here then presents
  // client_cert_file / client_key_file (the key mode 0600).
  std::string ssl_cert_file, ssl_key_file, ssl_client_ca_file;
  std::string client_cert_file, client_key_file;
};

class LocalPostgres {
 public:
  ~LocalPostgres();
  LocalPostgres(const LocalPostgres&) = delete;
  LocalPostgres& operator=(const LocalPostgres&) = delete;

  // initdb + start. Fails with what to install when the server binaries are missing.
  [[nodiscard]] static Result<std::unique_ptr<LocalPostgres>> Create(
      const LocalPostgresOptions& options);
  // Restores a base backup taken with BaseBackup() into a new cluster and starts it in recovery
  // towards `recovery_target_time` (PostgreSQL's timestamp syntax), replaying WAL from
  // `archive_dir`; promotes when the target is reached. Waits until it accepts writes.
  [[nodiscard]] static Result<std::unique_ptr<LocalPostgres>> RestoreFromBackup(
      const LocalPostgresOptions& options, const std::string& backup_dir,
      const std::string& archive_dir, const std::string& recovery_target_time);

  // "host=127.0.0.1 port=P user=postgres dbname=DB"
  std::string ConnInfo(const std::string& dbname = "postgres") const;
  int port() const { return port_; }
  const std::string& base_dir() const { return base_dir_; }
  std::string data_dir() const { return base_dir_ + "/data"; }
  std::string archive_dir() const { return base_dir_ + "/archive"; }
  std::string log_path() const { return base_dir_ + "/postgres.log"; }

  [[nodiscard]] Status Start();
  // mode: "fast" or "immediate" (a crash: no checkpoint, recovery on the next start).
  [[nodiscard]] Status Stop(const std::string& mode = "fast");
  [[nodiscard]] Status Restart(const std::string& mode = "immediate");
  bool running() const { return running_; }
  // The postmaster's pid (from postmaster.pid), or -1.
  int postmaster_pid() const;

  // Runs SQL through psql (ON_ERROR_STOP), returning unaligned, tuples-only output.
  [[nodiscard]] Result<std::string> Psql(const std::string& sql,
                                         const std::string& dbname = "postgres") const;
  [[nodiscard]] Status PsqlFile(const std::string& path, const std::string& dbname) const;
  [[nodiscard]] Status CreateDatabase(const std::string& dbname) const;
  // pg_basebackup (plain format, WAL streamed) into `target_dir`.
  [[nodiscard]] Status BaseBackup(const std::string& target_dir) const;
  // Switches to a new WAL segment and waits (up to `timeout_ms`) until the archive holds every
  // segment written so far, so a restore can recover to any time before now.
  [[nodiscard]] Status ArchiveUpToNow(int timeout_ms = 60'000) const;

  // Keep the directory after destruction (the demo's --keep).
  void set_keep(bool keep) { keep_ = keep; }

 private:
  LocalPostgres() = default;
  [[nodiscard]] Status RunAsOwner(const std::vector<std::string>& argv, int timeout_ms,
                                  std::string* output = nullptr) const;
  [[nodiscard]] Status WriteConfig(const LocalPostgresOptions& options);
  [[nodiscard]] Status WriteTls(const LocalPostgresOptions& options);
  std::string name_;
  std::string base_dir_;
  std::string password_;
  std::string client_cert_, client_key_;
  bool ssl_ = false;
  int port_ = 0;
  bool running_ = false;
  bool keep_ = false;
};

// The directory of the PostgreSQL 15 server binaries, or a FailedPrecondition naming the package.
[[nodiscard]] Result<std::string> PostgresBinDir();

// A TCP port on 127.0.0.1 that was free a moment ago, below the kernel's ephemeral range (so no
// client connection takes it meanwhile).
[[nodiscard]] Result<int> PickFreePort();

}  // namespace lifeline
