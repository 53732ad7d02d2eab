// Structured log lines on stderr: `event=NAME key=value ...`, one write(2) per line so that
// lines from different threads never interleave. Nothing here is on the per-query path.
#pragma once

#include <string>
#include <string_view>

#include "absl/strings/str_format.h"
#include "core/base/types.h"

namespace switchyard::io_real {

// Writes `line` plus a newline to stderr in one call.
void LogLine(std::string_view line);

template <typename... Args>
void Log(const absl::FormatSpec<Args...>& format, const Args&... args) {
  LogLine(absl::StrFormat(format, args...));
}

// A value safe to put after `key=`: bare when it has no spaces, quotes or '=', else quoted with
// inner quotes and backslashes escaped and control characters dropped.
std::string LogValue(std::string_view value);

// "c<index>.<generation>", as the core prints connection ids.
std::string ConnText(ConnId conn);

}  // namespace switchyard::io_real
