// Each subcommand of `lifeline` registers its flags here and leaves behind what runs it; the
// component it calls does the work.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

#include "common/kafka_config.h"
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
// Registered last: it prints the option table of every command registered before it.
void AddConfigReferenceCommand(CLI::App& app, CommandBody* body);
void AddKeygenCommand(CLI::App& app, CommandBody* body);

// `--encryption-key-file FILE` (repeatable) for the commands that seal or open events.
void AddEncryptionKeyFileFlag(CLI::App& sub, std::vector<std::string>* files);

// Kafka flags shared by `capture` (which then also ships) and `ship`, and those kept as text until
// the command runs.
struct KafkaFlagText {
  std::string retention = "24h";
  std::string properties_file;
};
void AddKafkaFlags(CLI::App& sub, ShipperOptions* options, KafkaFlagText* text);
[[nodiscard]] Status FinishKafkaFlags(ShipperOptions* options, const KafkaFlagText& text);

// `--kafka-properties-file`, for every command that talks to Kafka.
void AddKafkaPropertiesFileFlag(CLI::App& sub, std::string* path);
// Puts the properties file's items ahead of `items` (the command line's, which win) and checks
// them all with librdkafka, so a bad property stops the command before it opens anything.
[[nodiscard]] Status FinishKafkaProperties(const std::string& properties_file, KafkaRole role,
                                           std::vector<std::string>* items);

}  // namespace lifeline::cli
