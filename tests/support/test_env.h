// What tests share: temporary directories, the built `lifeline` binary, prerequisites that must
// fail (never skip) when missing, and started servers (PostgreSQL clusters, devkafka).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/devkafka.h"
#include "common/local_postgres.h"
#include "common/subprocess.h"

namespace lifeline::testing {

// A directory under /tmp removed at the end of the scope.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "lifeline-test");
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string SourceDir();
std::string ReferenceSchemaSql();  // path of scripts/sql/reference_schema.sql
std::string LifelineBinary();

// Path of `program`, or a test failure naming the Debian package to install.
std::string RequireProgram(const std::string& program, const std::string& package);

// Every record of `topic` from the beginning, read by kcat (an independent client) with the
// output `format` (kcat -f), or nullopt when kcat fails.
std::optional<std::string> ReadTopicWithKcat(const std::string& kcat, const std::string& brokers,
                                             const std::string& topic, const std::string& format);

// A started cluster; the test fails (fatally, via the returned nullptr + ADD_FAILURE) otherwise.
std::unique_ptr<LocalPostgres> StartPostgres(LocalPostgresOptions options = {});
// A database "app" on `pg` with the reference schema (PostGIS) loaded.
void LoadReferenceSchema(const LocalPostgres& pg, const std::string& dbname = "app");
std::unique_ptr<DevKafkaCluster> StartDevKafka(int brokers = 3);

// psql output without its trailing newlines and spaces.
std::string Trim(std::string s);

// "rows:md5" of every row of `table` in database app, ordered by `key`, in each column's text
// form: two tables are equal row for row exactly when their digests are.
std::string TableDigest(const LocalPostgres& pg, const std::string& table = "emergency_requests",
                        const std::string& key = "id");

// Runs `lifeline ARGS...` (with `env`, "NAME=value" entries, added to its environment) and
// returns its result.
CommandResult RunLifeline(const std::vector<std::string>& args, const std::string& stdin_text = "",
                          int timeout_ms = 60'000, const std::vector<std::string>& env = {});

}  // namespace lifeline::testing
