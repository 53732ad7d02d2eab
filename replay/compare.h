// Compares the replayed answers of one unit with the captured ones, both already normalized
// (normalize.h), and says how they differ: the first divergence of the unit, in terms a user
// can act on (the statement, the first differing row in both versions, the two command tags,
// the two errors), and the replay's errors, each marked as also captured or not.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::replay {

enum class DivergenceKind {
  kRowValues,    // same number of rows, a row differs
  kRowCount,     // a different number of rows
  kCommandTag,   // CommandComplete tags differ ("UPDATE 3" vs "UPDATE 2")
  kErrorStatus,  // one side failed, the other did not
  kSqlstate,     // both failed, with different SQLSTATEs
  kShape,        // different messages otherwise: their types, order, descriptions, notices
};
inline constexpr size_t kDivergenceKinds = 6;

// "row-values", "row-count", "command-tag", "error-vs-success", "sqlstate", "shape".
std::string_view DivergenceKindName(DivergenceKind kind);

struct Divergence {
  DivergenceKind kind = DivergenceKind::kShape;
  std::string statement;  // the statement whose answer differs ("" when unknown)
  std::string where;      // "row 3", "result 2 of 4", ...
  std::string captured;   // the captured version (a row, a tag, an error, a message type)
  std::string replayed;   // the replayed version
};

struct ReplayError {
  std::string sqlstate;
  bool captured = false;  // the captured answer had the same error at the same place
};

struct UnitComparison {
  std::optional<Divergence> divergence;  // the first one of the unit
  std::vector<ReplayError> errors;       // the replayed unit's errors, in order
};

// `statements` names the statement of each replayed result (a result ends with a response end,
// see statements.h); a missing entry is an unknown statement.
UnitComparison CompareUnits(const std::vector<std::string>& captured,
                            const std::vector<std::string>& replayed,
                            const std::vector<std::string>& statements);

// A DataRow as "(1, 'apple', NULL)", each value cut after a few dozen bytes.
std::string FormatRow(std::string_view message);
// An ErrorResponse as "ERROR 22012: division by zero".
std::string FormatError(std::string_view message);

}  // namespace switchyard::replay
