// Small text helpers over std::string_view for sim/ (the Abseil we build against keeps its own
// string_view type, so its string functions do not take ours).
#pragma once

#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"

namespace switchyard::sim {

inline absl::string_view ToAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

inline bool ParseInt64(std::string_view s, int64_t* out) {
  return absl::SimpleAtoi(ToAbsl(s), out);
}
inline bool ParseDouble(std::string_view s, double* out) {
  return absl::SimpleAtod(ToAbsl(s), out);
}

inline std::string_view StripWhitespace(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

inline std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

inline std::string ToUpper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

inline std::vector<std::string> SplitOn(std::string_view s, char separator, bool skip_empty) {
  std::vector<std::string> parts;
  while (true) {
    const size_t at = s.find(separator);
    std::string_view part = s.substr(0, at);
    if (!part.empty() || !skip_empty) parts.emplace_back(part);
    if (at == std::string_view::npos) return parts;
    s.remove_prefix(at + 1);
  }
}

inline std::string JoinWith(const std::vector<std::string>& parts, std::string_view separator) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += separator;
    out += parts[i];
  }
  return out;
}

}  // namespace switchyard::sim
