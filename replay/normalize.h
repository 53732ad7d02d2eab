// What legitimately differs between a captured answer and a replayed one, taken out before the
// two are compared. The rule set (docs/replay.md lists it for users):
//   BackendKeyData        pid and secret set to 0
//   ParameterStatus       value emptied: only the name is compared
//   NotificationResponse  sender pid set to 0
//   ErrorResponse, NoticeResponse  only severity, SQLSTATE and the message are kept, with every
//                         run of digits in the message replaced by '#' (OIDs, pids, positions)
//   RowDescription        table OIDs set to 0, and type OIDs of user-defined types (>= 16384)
//   ParameterDescription  type OIDs of user-defined types set to 0
//   DataRow of a column named "QUERY PLAN" (EXPLAIN)  timings masked: the numbers after
//                         "actual time=", "Planning Time:", "Execution Time:" (and their
//                         JSON/YAML/XML spellings), and every number on a JIT "Timing:" or an
//                         "I/O Timings:" line, become '#'
// Everything else is compared byte for byte.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace switchyard::replay {

// PostgreSQL's FirstNormalObjectId: OIDs below it are fixed by initdb, the same on every server.
inline constexpr uint32_t kFirstNormalObjectId = 16384;

// Normalizes the answers of one connection, in order: a DataRow is read with the columns of the
// latest RowDescription before it.
class Normalizer {
 public:
  // The message with the rules above applied; a message that does not decode is kept as is.
  std::string Normalize(std::string_view message);

 private:
  std::vector<bool> plan_columns_;  // per column of the latest RowDescription: "QUERY PLAN"
};

// EXPLAIN output with its timings replaced by '#' (see the rules above).
std::string MaskExplainTimings(std::string_view text);

// `text` with every run of ASCII digits replaced by one '#'.
std::string MaskDigits(std::string_view text);

}  // namespace switchyard::replay
