// Each subcommand of `lifeline` registers its flags here and leaves behind what runs it; the
// component it calls does the work.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

#include "common/status.h"
#include "shipper/shipper.h"

namespace lifeline::cli {

// Set by the chosen subcommand's parse callback; main runs it after parsing.
using CommandBody = std::function<Status()>;
// A report's body: the exit code it chose (0 clean, 1 findings such as differences or losses), or
// an error Status (exit 2, whatever its kind).
using ReportBody = std::function<Result<int>()>;

void AddShipCommand(CLI::App& app, CommandBody* body);
void AddReplayCommand(CLI::App& app, CommandBody* body);
void AddCaptureCommand(CLI::App& app, CommandBody* body);
void AddDemoCommand(CLI::App& app, CommandBody* body);
void AddLoadCommand(CLI::App& app, CommandBody* body);
void AddSpoolCommand(CLI::App& app, CommandBody* body);
void AddDevKafkaCommand(CLI::App& app, CommandBody* body);
void AddGapcheckCommand(CLI::App& app, ReportBody* body);
void AddDrillCommand(CLI::App& app, ReportBody* body);

// Kafka flags shared by `capture` (which then also ships) and `ship`.
void AddKafkaFlags(CLI::App& sub, ShipperOptions* options, std::string* retention);
[[nodiscard]] Status FinishKafkaFlags(ShipperOptions* options, const std::string& retention);

}  // namespace lifeline::cli
