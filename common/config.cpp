// YAML configuration for CLI11, secrets, and durations.
#include "common/config.h"

#include <spdlog/spdlog.h>

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <sstream>

#include "common/log.h"

namespace lifeline {
namespace {

std::string Where(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  return mark.is_null() ? "config file" : "config file line " + std::to_string(mark.line + 1);
}

// A plain value of `option`. Nested lists and maps have no meaning to any option: an error, as
// CLI11 reports config errors, rather than a yaml-cpp exception no command expects.
std::string Scalar(const YAML::Node& node, const std::string& option) {
  if (node.IsNull()) return "";
  if (!node.IsScalar()) {
    throw CLI::ConversionError(Where(node) + ": '" + option +
                               "' takes plain values, not a nested list or map");
  }
  return node.Scalar();
}

std::string Key(const YAML::Node& node) {
  if (!node.IsScalar()) {
    throw CLI::ConversionError(Where(node) + ": a key must be an option name, such as source:");
  }
  return node.Scalar();
}

}  // namespace

std::string YamlConfig::to_config(const CLI::App* app, bool default_also, bool write_description,
                                  std::string prefix) const {
  YAML::Emitter out;
  out << YAML::BeginMap;
  for (const CLI::Option* opt : app->get_options()) {
    if (opt->get_lnames().empty() || opt->get_lnames()[0] == "help" ||
        opt->get_lnames()[0] == "config") {
      continue;
    }
    std::vector<std::string> values = opt->reduced_results();
    if (values.empty() && default_also && !opt->get_default_str().empty()) {
      values = {opt->get_default_str()};
    }
    if (values.empty()) continue;
    if (write_description) out << YAML::Comment(opt->get_description());
    out << YAML::Key << prefix + opt->get_lnames()[0];
    if (values.size() == 1) {
      out << YAML::Value << values[0];
    } else {
      out << YAML::Value << values;
    }
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::vector<CLI::ConfigItem> YamlConfig::from_config(std::istream& input) const {
  YAML::Node root;
  try {
    root = YAML::Load(input);
  } catch (const YAML::Exception& e) {
    throw CLI::ConversionError("config file is not valid YAML: " + std::string(e.what()));
  }
  std::vector<CLI::ConfigItem> items;
  if (root.IsNull()) return items;
  if (!root.IsMap()) {
    throw CLI::ConversionError("config file must be a YAML mapping of option names to values");
  }
  for (const auto& kv : root) {
    CLI::ConfigItem item;
    item.name = Key(kv.first);
    for (char& c : item.name) {
      if (c == '_') c = '-';
    }
    const YAML::Node& v = kv.second;
    if (v.IsSequence()) {
      for (const auto& e : v) item.inputs.push_back(Scalar(e, item.name));
    } else if (v.IsMap()) {
      for (const auto& e : v) {
        item.inputs.push_back(Scalar(e.first, item.name) + "=" + Scalar(e.second, item.name));
      }
    } else {
      item.inputs.push_back(Scalar(v, item.name));
    }
    items.push_back(std::move(item));
  }
  return items;
}

void AddConfigFileOption(CLI::App& app) {
  app.config_formatter(std::make_shared<YamlConfig>());
  app.set_config("--config", "", "YAML file of options (keys are the long flag names)");
  app.allow_config_extras(false);
}

void AddLogValuesFlag(CLI::App& app) {
  app.add_flag_callback(
      "--log-values", [] { SetLogValues(true); },
      "Let row values (personal data) into log lines and error messages, for debugging; off by "
      "default");
}

void WarnIfOthersMayRead(const std::string& path, std::string_view what) {
  struct stat st {};
  if (stat(path.c_str(), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    spdlog::warn("{} {} may be read by other users: chmod 600 {}", what, path, path);
  }
}

Result<std::string> ReadSecret(const std::string& env_var, const std::string& file) {
  if (!env_var.empty()) {
    if (const char* v = std::getenv(env_var.c_str()); v != nullptr && *v != '\0')
      return std::string(v);
  }
  if (file.empty()) return std::string();
  std::ifstream in(file);
  if (!in) {
    return Status::InvalidArgument("cannot read secret file " + file +
                                   ": check the path and that this user may read it");
  }
  WarnIfOthersMayRead(file, "secret file");
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  if (line.empty()) return Status::InvalidArgument("secret file " + file + " is empty");
  return line;
}

Result<int64_t> ParseDurationMs(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  std::string number = text.substr(0, i), unit = text.substr(i);
  double value;
  try {
    size_t used = 0;
    value = std::stod(number, &used);
    if (used != number.size()) throw std::invalid_argument(number);
  } catch (const std::exception&) {
    return Status::InvalidArgument("malformed duration '" + text +
                                   "': use a number and a unit, for example 500ms, 1s, 2m, 24h");
  }
  double scale;
  if (unit == "ms") {
    scale = 1;
  } else if (unit == "s" || unit.empty()) {
    scale = 1000;
  } else if (unit == "m" || unit == "min") {
    scale = 60'000;
  } else if (unit == "h") {
    scale = 3'600'000;
  } else if (unit == "d") {
    scale = 86'400'000;
  } else {
    return Status::InvalidArgument("unknown unit '" + unit + "' in duration '" + text +
                                   "': use ms, s, m, h or d");
  }
  // About 290,000 years, past which milliseconds no longer fit in 64 bits.
  constexpr double kMaxMs = 9e18;
  if (!(value * scale < kMaxMs)) {
    return Status::InvalidArgument("duration '" + text + "' is too long");
  }
  return static_cast<int64_t>(value * scale);
}

}  // namespace lifeline
