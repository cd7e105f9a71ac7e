// The `lifeline` executable: parses flags, hands off to a component, maps its Status to an exit
// code (0 ok, 2 bad input or configuration, 1 anything else).
#include <spdlog/spdlog.h>

#include <iostream>

#include "cli/commands.h"
#include "common/allocator.h"
#include "common/config.h"
#include "common/log.h"

namespace {

// CLI11 reads only the top-level app's config file, so a subcommand's `--config FILE` is handed
// to the top level, and its items are addressed to the subcommand that was chosen.
class ChosenSubcommandConfig : public lifeline::YamlConfig {
 public:
  explicit ChosenSubcommandConfig(const CLI::App* root) : root_(root) {}
  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
    std::vector<CLI::ConfigItem> items = YamlConfig::from_config(input);
    std::vector<std::string> path;
    for (const CLI::App* app = root_; !app->get_subcommands().empty();) {
      app = app->get_subcommands().front();
      path.push_back(app->get_name());
    }
    for (CLI::ConfigItem& item : items) item.parents = path;
    return items;
  }

 private:
  const CLI::App* root_;
};

void RouteConfigFiles(CLI::App& root, CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    if (CLI::Option* config = sub->get_config_ptr(); config != nullptr) {
      config->trigger_on_parse()->each(
          [&root](const std::string& file) { root.get_config_ptr()->add_result(file); });
    }
    RouteConfigFiles(root, *sub);
  }
}

}  // namespace

int main(int argc, char** argv) {
  lifeline::SetAllocatorThresholds();
  CLI::App app{
      "lifeline: change capture and recovery for PostgreSQL (capture -> spool -> Kafka -> "
      "replay)",
      "lifeline"};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical or off")
      ->capture_default_str();
  lifeline::cli::CommandBody body;
  lifeline::cli::AddCaptureCommand(app, &body);
  lifeline::cli::AddShipCommand(app, &body);
  lifeline::cli::AddReplayCommand(app, &body);
  lifeline::cli::AddSpoolCommand(app, &body);
  lifeline::cli::AddDemoCommand(app, &body);
  lifeline::cli::AddLoadCommand(app, &body);
  lifeline::cli::AddDevKafkaCommand(app, &body);
  lifeline::cli::AddKeygenCommand(app, &body);
  lifeline::cli::ReportBody report_body;
  lifeline::cli::AddGapcheckCommand(app, &report_body);
  lifeline::cli::AddDrillCommand(app, &report_body);
  lifeline::cli::AddConfigReferenceCommand(app, &body);
  app.config_formatter(std::make_shared<ChosenSubcommandConfig>(&app));
  app.set_config("--config", "", "YAML file of the subcommand's options")->group("");
  app.allow_config_extras(false);
  RouteConfigFiles(app, app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ConfigError& e) {
    // CLI11 says "INI was not able to parse capture.sourse" for a key no option has.
    std::string what = e.what();
    const std::string extras = "INI was not able to parse ";
    if (what.rfind(extras, 0) == 0) {
      std::string key = what.substr(extras.size());
      key = key.substr(key.rfind('.') + 1);
      what = "unknown key '" + key + "' in the config file: keys are the command's long option " +
             "names (see docs/config.md or the command's --help)";
    }
    std::cerr << "lifeline: " << what << "\n";
    return 2;
  } catch (const CLI::ParseError& e) {
    std::cerr << "lifeline: " << e.what() << "\nRun 'lifeline --help' for usage.\n";
    return 2;
  }
  if (lifeline::Status st = lifeline::InitLogging(log_level); !st.ok()) {
    std::cerr << "lifeline: " << st.message() << "\n";
    return 2;
  }
  if (report_body) {
    // A report's exit code 1 means findings, so every error is 2.
    lifeline::Result<int> code = report_body();
    if (!code.ok()) {
      spdlog::error("{}", code.status().ToString());
      std::cerr.flush();
      return 2;
    }
    return *code;
  }
  if (!body) {
    std::cerr << "lifeline: no subcommand given\n";
    return 2;
  }
  lifeline::Status st = body();
  if (!st.ok()) {
    spdlog::error("{}", st.ToString());
    std::cerr.flush();
    return st.ExitCode();
  }
  return 0;
}
