// The `lifeline` executable: parses flags, hands off to a component, maps its Status to an exit
// code (0 ok, 2 bad input or configuration, 1 anything else).
#include <spdlog/spdlog.h>

#include <iostream>

#include "cli/commands.h"
#include "common/log.h"

int main(int argc, char** argv) {
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
  lifeline::cli::ReportBody report_body;
  lifeline::cli::AddGapcheckCommand(app, &report_body);
  lifeline::cli::AddDrillCommand(app, &report_body);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
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
