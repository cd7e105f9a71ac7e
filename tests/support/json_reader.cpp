// Recursive-descent JSON reader (RFC 8259), enough for lifeline's reports: \u escapes become UTF-8.
#include "tests/support/json_reader.h"

#include <stdexcept>

namespace lifeline::testing {
namespace {

class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}

  JsonValue Document() {
    JsonValue v = Value();
    Space();
    if (i_ != s_.size()) Fail("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void Fail(const std::string& what) {
    throw std::runtime_error("JSON: " + what + " at offset " + std::to_string(i_));
  }
  void Space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t'))
      ++i_;
  }
  bool Eat(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }
  JsonValue Value() {
    Space();
    if (i_ >= s_.size()) Fail("unexpected end");
    JsonValue v;
    char c = s_[i_];
    if (c == '{') {
      v.kind = JsonValue::Kind::kObject;
      ++i_;
      Space();
      if (i_ < s_.size() && s_[i_] == '}') {
        ++i_;
        return v;
      }
      while (true) {
        Space();
        if (i_ >= s_.size() || s_[i_] != '"') Fail("expected a key");
        std::string key = String();
        Space();
        if (!Eat(":")) Fail("expected ':'");
        v.members.emplace_back(std::move(key), Value());
        Space();
        if (Eat(",")) continue;
        if (Eat("}")) return v;
        Fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      v.kind = JsonValue::Kind::kArray;
      ++i_;
      Space();
      if (i_ < s_.size() && s_[i_] == ']') {
        ++i_;
        return v;
      }
      while (true) {
        v.items.push_back(Value());
        Space();
        if (Eat(",")) continue;
        if (Eat("]")) return v;
        Fail("expected ',' or ']'");
      }
    }
    if (c == '"') {
      v.kind = JsonValue::Kind::kString;
      v.text = String();
      return v;
    }
    if (Eat("true")) {
      v.kind = JsonValue::Kind::kBool;
      v.boolean = true;
      return v;
    }
    if (Eat("false")) {
      v.kind = JsonValue::Kind::kBool;
      return v;
    }
    if (Eat("null")) return v;
    size_t start = i_;
    while (i_ < s_.size() && std::string_view("+-0123456789.eE").find(s_[i_]) != std::string::npos)
      ++i_;
    if (start == i_) Fail("unexpected character");
    v.kind = JsonValue::Kind::kNumber;
    v.text = std::string(s_.substr(start, i_ - start));
    v.number = std::stod(v.text);
    return v;
  }
  std::string String() {
    ++i_;  // opening quote
    std::string out;
    while (true) {
      if (i_ >= s_.size()) Fail("unterminated string");
      char c = s_[i_++];
      if (c == '"') return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) Fail("unterminated escape");
      char e = s_[i_++];
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'u': {
          if (i_ + 4 > s_.size()) Fail("short \\u escape");
          unsigned cp = std::stoul(std::string(s_.substr(i_, 4)), nullptr, 16);
          i_ += 4;
          if (cp >= 0xD800 && cp < 0xDC00 && s_.substr(i_, 2) == "\\u") {
            unsigned lo = std::stoul(std::string(s_.substr(i_ + 2, 4)), nullptr, 16);
            i_ += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          if (cp < 0x80) {
            out += static_cast<char>(cp);
          } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
          } else if (cp < 0x10000) {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
          } else {
            out += static_cast<char>(0xF0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
          }
          break;
        }
        default:
          out += e;  // \" \\ \/
      }
    }
  }

  std::string_view s_;
  size_t i_ = 0;
};

const JsonValue& Null() {
  static const JsonValue null;
  return null;
}

}  // namespace

bool JsonValue::has(const std::string& key) const {
  for (const auto& [k, v] : members) {
    if (k == key) return true;
  }
  return false;
}

const JsonValue& JsonValue::operator[](const std::string& key) const {
  for (const auto& [k, v] : members) {
    if (k == key) return v;
  }
  return Null();
}

const JsonValue& JsonValue::operator[](size_t index) const {
  return index < items.size() ? items[index] : Null();
}

int64_t JsonValue::AsInt() const {
  if (kind != Kind::kNumber) return 0;
  if (text.find_first_of(".eE") == std::string::npos) return std::stoll(text);
  return static_cast<int64_t>(number);
}

JsonValue ParseJson(std::string_view text) {
  return Reader(text).Document();
}

}  // namespace lifeline::testing
