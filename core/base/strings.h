// String helpers that accept std::string_view and absl::string_view alike (the Abseil we build
// against keeps its own string_view type).
#pragma once

#include <cctype>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/strings/string_view.h"

namespace switchyard {

inline std::string_view AsView(absl::string_view s) { return {s.data(), s.size()}; }

namespace internal {
inline void AppendPiece(std::string& out, std::string_view piece) { out.append(piece); }
inline void AppendPiece(std::string& out, const char* piece) { out.append(piece); }
inline void AppendPiece(std::string& out, const std::string& piece) { out.append(piece); }
inline void AppendPiece(std::string& out, absl::string_view piece) {
  out.append(piece.data(), piece.size());
}
inline void AppendPiece(std::string& out, char c) { out.push_back(c); }
template <typename T>
requires std::is_integral_v<T>
void AppendPiece(std::string& out, T value) { out.append(std::to_string(value)); }
}  // namespace internal

// Concatenates strings, views, chars and integers.
template <typename... Pieces>
std::string Cat(const Pieces&... pieces) {
  std::string out;
  (internal::AppendPiece(out, pieces), ...);
  return out;
}

inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace switchyard
