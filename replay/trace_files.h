// Reads the files of a capture, in the order given, into captured sessions. A file that is not
// a trace, is damaged, is truncated or is of a newer format stops the reading with a status
// that names the file, the record and its byte offset.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "replay/capture.h"

namespace switchyard::replay {

// The most trace bytes one replay loads: sessions are rebuilt in memory before the replay
// starts, so a bound keeps a mistaken glob from exhausting it.
inline constexpr size_t kTraceBytesMaxDefault = size_t{8} << 30;

absl::StatusOr<Capture> LoadTraceFiles(const std::vector<std::string>& paths,
                                       size_t bytes_max = kTraceBytesMaxDefault);

}  // namespace switchyard::replay
