// A small JSON reader for tests that check lifeline's JSON reports by structure, not by substring.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lifeline::testing {

struct JsonValue {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  double number = 0;
  std::string text;  // a string's value, or a number's literal
  std::vector<JsonValue> items;
  std::vector<std::pair<std::string, JsonValue>> members;

  bool is_null() const { return kind == Kind::kNull; }
  bool has(const std::string& key) const;
  // Member or element; a missing one is null (so chains like v["a"]["b"] never throw).
  const JsonValue& operator[](const std::string& key) const;
  const JsonValue& operator[](size_t index) const;
  size_t size() const { return kind == Kind::kObject ? members.size() : items.size(); }
  int64_t AsInt() const;  // a number's integer value (exact for integers up to 2^63)
  const std::string& AsString() const { return text; }
};

// Parses one JSON document; throws std::runtime_error naming the offset on malformed input.
JsonValue ParseJson(std::string_view text);

}  // namespace lifeline::testing
