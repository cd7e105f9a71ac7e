// Test environment: temp dirs, prerequisites, servers.
#include "tests/support/test_env.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

namespace lifeline::testing {
namespace fs = std::filesystem;

TempDir::TempDir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    ADD_FAILURE() << "cannot create a temporary directory";
  }
  // Clusters run as the postgres OS user and may need to reach into it (base backups).
  chmod(tmpl.c_str(), 0755);
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string SourceDir() {
  return LIFELINE_SOURCE_DIR;
}
std::string ReferenceSchemaSql() {
  return SourceDir() + "/scripts/sql/reference_schema.sql";
}
std::string LifelineBinary() {
  return LIFELINE_BINARY;
}

std::string RequireProgram(const std::string& program, const std::string& package) {
  std::string path = FindProgram(program);
  if (path.empty()) {
    ADD_FAILURE() << program << " is required by this test but not installed: run scripts/setup.sh"
                  << " or apt-get install " << package;
  }
  return path;
}

std::unique_ptr<LocalPostgres> StartPostgres(LocalPostgresOptions options) {
  auto pg = LocalPostgres::Create(options);
  if (!pg.ok()) {
    ADD_FAILURE() << "cannot start a PostgreSQL cluster: " << pg.status().ToString();
    return nullptr;
  }
  return std::move(pg).value();
}

void LoadReferenceSchema(const LocalPostgres& pg, const std::string& dbname) {
  Status st = pg.CreateDatabase(dbname);
  ASSERT_TRUE(st.ok()) << st.ToString();
  st = pg.PsqlFile(ReferenceSchemaSql(), dbname);
  ASSERT_TRUE(st.ok()) << st.ToString()
                       << " (PostGIS missing? apt-get install postgresql-15-postgis-3)";
}

std::unique_ptr<DevKafkaCluster> StartDevKafka(int brokers) {
  auto k = DevKafkaCluster::Start(brokers);
  if (!k.ok()) {
    ADD_FAILURE() << "cannot start devkafka: " << k.status().ToString();
    return nullptr;
  }
  return std::move(k).value();
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string TableDigest(const LocalPostgres& pg, const std::string& table, const std::string& key) {
  auto r = pg.Psql("SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t." +
                       key + ")), '') FROM " + table + " t",
                   "app");
  return r.ok() ? Trim(*r) : "error: " + r.status().ToString();
}

std::optional<std::string> ReadTopicWithKcat(const std::string& kcat, const std::string& brokers,
                                             const std::string& topic, const std::string& format) {
  CommandSpec spec;
  spec.argv = {kcat, "-C", "-b", brokers, "-t", topic, "-o", "beginning", "-e", "-q", "-f", format};
  auto r = RunCommand(spec);
  if (!r.ok() || r->exit_code != 0) return std::nullopt;
  return r->stdout_text;
}

CommandResult RunLifeline(const std::vector<std::string>& args, const std::string& stdin_text,
                          int timeout_ms, const std::vector<std::string>& env) {
  CommandSpec spec;
  spec.argv = {LifelineBinary()};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.stdin_text = stdin_text;
  spec.extra_env = env;
  spec.timeout = std::chrono::milliseconds(timeout_ms);
  auto r = RunCommand(spec);
  if (!r.ok()) {
    ADD_FAILURE() << "cannot run lifeline: " << r.status().ToString();
    return {};
  }
  return std::move(r).value();
}

}  // namespace lifeline::testing
