// What operations rely on: docs/config.md is the option table as the binary prints it, a
// subcommand's --config file reaches its options (misspelt keys refused), and the systemd units
// and example configs of scripts/systemd/ are valid.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "common/subprocess.h"
#include "tests/support/test_env.h"

namespace lifeline {
namespace {

using testing::RunLifeline;
namespace fs = std::filesystem;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string SystemdDir() {
  return testing::SourceDir() + "/scripts/systemd";
}

TEST(ConfigReferenceTest, DocsConfigMdIsTheOptionTable) {
  CommandResult r = RunLifeline({"config-reference"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  const std::string doc = ReadFile(testing::SourceDir() + "/docs/config.md");
  EXPECT_TRUE(doc == r.stdout_text)
      << "docs/config.md is stale: run scripts/gen-config-doc.sh (it writes the output of "
         "`lifeline config-reference`)";
}

TEST(ConfigReferenceTest, NamesEveryOptionOfTheDaemonsWithItsDefault) {
  CommandResult r = RunLifeline({"config-reference"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  for (const char* section : {"## `lifeline capture`", "## `lifeline replay`", "## `lifeline ship`",
                              "## `lifeline gapcheck rows`", "## `lifeline drill`"}) {
    EXPECT_NE(r.stdout_text.find(section), std::string::npos) << section;
  }
  EXPECT_NE(r.stdout_text.find("| `source` | `TEXT` |  | yes |"), std::string::npos)
      << r.stdout_text;
  EXPECT_NE(r.stdout_text.find("| `heartbeat-interval` | `TEXT` | `1s` |"), std::string::npos);
  EXPECT_NE(r.stdout_text.find("| `resnapshot` | flag"), std::string::npos);
  // The maintainer's command stays out of the listing users read.
  CommandResult help = RunLifeline({"--help"});
  EXPECT_EQ(help.stdout_text.find("config-reference"), std::string::npos) << help.stdout_text;
}

TEST(SubcommandConfigTest, KeysReachTheChosenSubcommandAndFlagsWin) {
  testing::TempDir tmp;
  std::ofstream(tmp.Sub("stream.yaml")) << "spool: " << tmp.Sub("from-yaml") << "\nformat: json\n";
  CommandResult r = RunLifeline({"gapcheck", "stream", "--config", tmp.Sub("stream.yaml")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find(tmp.Sub("from-yaml")), std::string::npos) << r.stderr_text;

  r = RunLifeline(
      {"gapcheck", "stream", "--config", tmp.Sub("stream.yaml"), "--spool", tmp.Sub("from-flag")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find(tmp.Sub("from-flag")), std::string::npos) << r.stderr_text;
  EXPECT_EQ(r.stderr_text.find(tmp.Sub("from-yaml")), std::string::npos) << r.stderr_text;

  // A required option set only in the file counts as given.
  std::ofstream(tmp.Sub("capture.yaml")) << "source: \"host=127.0.0.1 port=1\"\nspool: /x\n";
  r = RunLifeline({"capture", "--config", tmp.Sub("capture.yaml"), "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;

  std::ofstream(tmp.Sub("misspelt.yaml")) << "spool: /x\nformatt: json\n";
  r = RunLifeline({"gapcheck", "stream", "--config", tmp.Sub("misspelt.yaml")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find("formatt"), std::string::npos) << r.stderr_text;
}

// Runs the example config through the command's own parsing: 0 if every key is an option it takes.
CommandResult ParseConfig(const std::string& command, const std::string& path) {
  return RunLifeline({command, "--config", path, "--help"});
}

TEST(SystemdUnitsTest, ExampleConfigsHoldOnlyOptionsTheCommandsTake) {
  for (const char* command : {"capture", "replay"}) {
    const std::string example = SystemdDir() + "/" + command + ".yaml.example";
    ASSERT_TRUE(fs::exists(example)) << example;
    CommandResult r = ParseConfig(command, example);
    EXPECT_EQ(r.exit_code, 0) << example << ": " << r.stderr_text;

    // The same file with its first key misspelt is refused, naming the key.
    std::string text = ReadFile(example);
    std::smatch m;
    ASSERT_TRUE(std::regex_search(text, m, std::regex("\n([a-z-]+):"))) << example;
    const std::string key = m[1].str();
    text.replace(static_cast<size_t>(m.position(1)), key.size(), key + "x");
    testing::TempDir tmp;
    std::ofstream(tmp.Sub("bad.yaml")) << text;
    r = ParseConfig(command, tmp.Sub("bad.yaml"));
    EXPECT_EQ(r.exit_code, 2) << "misspelt " << key << " in " << example << " was accepted";
    EXPECT_NE(r.stderr_text.find(key + "x"), std::string::npos) << r.stderr_text;
  }
}

TEST(SystemdUnitsTest, UnitsPassSystemdAnalyzeVerify) {
  const std::string analyze = testing::RequireProgram("systemd-analyze", "systemd");
  ASSERT_FALSE(analyze.empty());
  // The units name /usr/bin/lifeline; verify checks that ExecStart is executable, so the copies
  // checked here name the binary of this build instead.
  testing::TempDir tmp;
  std::vector<std::string> units;
  for (const char* name :
       {"lifeline-capture.service", "lifeline-replay.service", "lifeline-replay@.service"}) {
    std::string text = ReadFile(SystemdDir() + "/" + name);
    ASSERT_FALSE(text.empty()) << name;
    text = std::regex_replace(text, std::regex("/usr/bin/lifeline"), testing::LifelineBinary());
    std::string unit = name;
    if (unit == "lifeline-replay@.service") unit = "lifeline-replay@standby.service";
    std::ofstream(tmp.Sub(unit)) << text;
    units.push_back(tmp.Sub(unit));

    // What the units promise: no restart on a bad configuration, secrets not on the command line,
    // the hardening that matters most.
    for (const char* line :
         {"Restart=on-failure", "RestartPreventExitStatus=2", "User=lifeline",
          "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
          "PrivateDevices=yes", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
          "SystemCallFilter=@system-service", "MemoryDenyWriteExecute=yes",
          "CapabilityBoundingSet=\n", "StateDirectory=lifeline/", "LoadCredential="}) {
      EXPECT_NE(text.find(line), std::string::npos) << name << " lacks " << line;
    }
    std::smatch exec;
    ASSERT_TRUE(std::regex_search(text, exec, std::regex("\nExecStart=([^\n]*)"))) << name;
    EXPECT_EQ(exec[1].str().find("password"), std::string::npos) << exec[1].str();
  }
  CommandSpec spec;
  spec.argv = {analyze, "verify", "--man=no"};
  spec.argv.insert(spec.argv.end(), units.begin(), units.end());
  spec.timeout = std::chrono::milliseconds(60'000);
  auto r = RunCommand(spec);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  // verify also reports on the host's own units (a container has odd ones): only lines naming
  // lifeline's units count.
  std::string ours;
  std::istringstream lines(r->stdout_text + r->stderr_text);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("lifeline") != std::string::npos) ours += line + "\n";
  }
  EXPECT_EQ(ours, "") << r->stdout_text << r->stderr_text;
}

}  // namespace
}  // namespace lifeline
