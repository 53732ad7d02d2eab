// Compares one unit's captured and replayed answers (see compare.h).
#include "replay/compare.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"
#include "core/protocol/messages.h"
#include "replay/statements.h"

namespace switchyard::replay {
namespace {

constexpr size_t kValueShownMax = 48;
constexpr size_t kColumnsShownMax = 16;

using Messages = std::vector<const std::string*>;

// The messages of a unit up to and including each response end, and what follows the last.
struct Results {
  std::vector<Messages> results;
  Messages tail;
};

Results SplitResults(const std::vector<std::string>& messages) {
  Results split;
  Messages current;
  for (const std::string& message : messages) {
    current.push_back(&message);
    if (!message.empty() && IsResponseEnd(message[0])) {
      split.results.push_back(std::move(current));
      current.clear();
    }
  }
  split.tail = std::move(current);
  return split;
}

char TypeOf(const std::string* message) { return message->empty() ? '\0' : (*message)[0]; }
bool IsError(const Messages& result) { return TypeOf(result.back()) == 'E'; }

std::string Sqlstate(const std::string& message) {
  auto fields = pg::ErrorFields::Decode('E', Payload(message));
  return fields.ok() ? std::string(fields->sqlstate()) : "";
}

std::string Tag(const std::string& message) {
  auto complete = pg::CommandComplete::Decode(Payload(message));
  return complete.ok() ? complete->tag : "";
}

std::string Quote(std::string_view value) {
  std::string out = "'";
  size_t shown = std::min(value.size(), kValueShownMax);
  for (size_t i = 0; i < shown; ++i) {
    unsigned char c = static_cast<unsigned char>(value[i]);
    if (c == '\'') {
      out += "''";
    } else if (c < 0x20 || c == 0x7f) {
      out += absl::StrFormat("\\x%02x", c);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out += "'";
  if (shown < value.size()) out += absl::StrFormat("...(%zu bytes)", value.size());
  return out;
}

// A message for a report: its name and what it says.
std::string Describe(const std::string* message) {
  if (message == nullptr) return "(nothing)";
  char type = TypeOf(message);
  std::string name(pg::TypeName(pg::Direction::kBackend, type));
  std::string_view payload = Payload(*message);
  switch (type) {
    case 'E':
    case 'N':
      return absl::StrFormat("%s %s", name, FormatError(*message));
    case 'C':
      return absl::StrFormat("%s \"%s\"", name, Tag(*message));
    case 'D':
      return absl::StrFormat("%s %s", name, FormatRow(*message));
    case 'Z':
      return payload.size() == 1 ? absl::StrFormat("%s '%c'", name, payload[0]) : name;
    case 'S':
      if (auto status = pg::ParameterStatus::Decode(payload); status.ok()) {
        return absl::StrFormat("%s %s", name, status->name);
      }
      return name;
    case 'T':
      if (auto description = pg::RowDescription::Decode(payload); description.ok()) {
        std::string columns;
        for (const auto& field : description->fields) {
          columns +=
              absl::StrFormat("%s%s:%u", columns.empty() ? "" : ", ", field.name, field.type_oid);
        }
        return absl::StrFormat("%s (%s)", name, columns);
      }
      return name;
    default:
      return name;
  }
}

std::string Outcome(const Messages& result) {
  const std::string* last = result.back();
  if (TypeOf(last) == 'E') return FormatError(*last);
  if (TypeOf(last) == 'C') return absl::StrFormat("success: %s", Tag(*last));
  return absl::StrFormat("success: %s", Describe(last));
}

Messages Filter(const Messages& result, bool rows) {
  Messages out;
  for (const std::string* message : result) {
    if ((TypeOf(message) == 'D') == rows) out.push_back(message);
  }
  return out;
}

std::optional<Divergence> CompareRows(const Messages& captured, const Messages& replayed) {
  Messages captured_rows = Filter(captured, true);
  Messages replayed_rows = Filter(replayed, true);
  size_t common = std::min(captured_rows.size(), replayed_rows.size());
  size_t first = 0;
  while (first < common && *captured_rows[first] == *replayed_rows[first]) ++first;
  auto row = [](const Messages& rows, size_t i) {
    return i < rows.size() ? FormatRow(*rows[i]) : std::string("(no row)");
  };
  Divergence divergence;
  if (captured_rows.size() != replayed_rows.size()) {
    divergence.kind = DivergenceKind::kRowCount;
    divergence.where =
        absl::StrFormat("%zu rows captured, %zu replayed; first difference at row %zu",
                        captured_rows.size(), replayed_rows.size(), first + 1);
  } else if (first < common) {
    divergence.kind = DivergenceKind::kRowValues;
    divergence.where = absl::StrFormat("row %zu of %zu", first + 1, common);
  } else {
    return std::nullopt;
  }
  divergence.captured = row(captured_rows, first);
  divergence.replayed = row(replayed_rows, first);
  return divergence;
}

std::optional<Divergence> CompareShape(const Messages& captured, const Messages& replayed,
                                       const char* what) {
  size_t common = std::min(captured.size(), replayed.size());
  size_t first = 0;
  while (first < common && *captured[first] == *replayed[first]) ++first;
  if (first == captured.size() && first == replayed.size()) return std::nullopt;
  Divergence divergence;
  divergence.kind = DivergenceKind::kShape;
  divergence.where = absl::StrFormat("%s message %zu", what, first + 1);
  divergence.captured = Describe(first < captured.size() ? captured[first] : nullptr);
  divergence.replayed = Describe(first < replayed.size() ? replayed[first] : nullptr);
  return divergence;
}

std::optional<Divergence> CompareResult(const Messages& captured, const Messages& replayed) {
  bool captured_error = IsError(captured);
  bool replayed_error = IsError(replayed);
  if (captured_error != replayed_error ||
      (captured_error && Sqlstate(*captured.back()) != Sqlstate(*replayed.back()))) {
    Divergence divergence;
    divergence.kind =
        captured_error == replayed_error ? DivergenceKind::kSqlstate : DivergenceKind::kErrorStatus;
    divergence.captured = Outcome(captured);
    divergence.replayed = Outcome(replayed);
    return divergence;
  }
  if (auto rows = CompareRows(captured, replayed); rows.has_value()) return rows;
  if (TypeOf(captured.back()) == 'C' && TypeOf(replayed.back()) == 'C' &&
      Tag(*captured.back()) != Tag(*replayed.back())) {
    return Divergence{.kind = DivergenceKind::kCommandTag,
                      .captured = Tag(*captured.back()),
                      .replayed = Tag(*replayed.back())};
  }
  return CompareShape(Filter(captured, false), Filter(replayed, false), "result");
}

// One side has results the other lacks, from `common` on: an error there (a statement that
// failed where the other side stopped, say at a COPY) is an error-vs-success divergence.
Divergence CompareUnpaired(const Results& captured, const Results& replayed, size_t common) {
  const Results& longer = captured.results.size() > common ? captured : replayed;
  const Results& shorter = captured.results.size() > common ? replayed : captured;
  const Messages& extra = longer.results[common];
  const std::string* instead = shorter.tail.empty() ? nullptr : shorter.tail.front();
  std::string longer_text = IsError(extra) ? Outcome(extra) : Describe(extra.back());
  std::string shorter_text =
      absl::StrFormat("no result %zu (next: %s)", common + 1, Describe(instead));
  Divergence divergence;
  divergence.kind = IsError(extra) ? DivergenceKind::kErrorStatus : DivergenceKind::kShape;
  divergence.where = absl::StrFormat("%zu results captured, %zu replayed", captured.results.size(),
                                     replayed.results.size());
  bool captured_longer = &longer == &captured;
  divergence.captured = captured_longer ? longer_text : shorter_text;
  divergence.replayed = captured_longer ? shorter_text : longer_text;
  return divergence;
}

}  // namespace

std::string_view DivergenceKindName(DivergenceKind kind) {
  switch (kind) {
    case DivergenceKind::kRowValues:
      return "row-values";
    case DivergenceKind::kRowCount:
      return "row-count";
    case DivergenceKind::kCommandTag:
      return "command-tag";
    case DivergenceKind::kErrorStatus:
      return "error-vs-success";
    case DivergenceKind::kSqlstate:
      return "sqlstate";
    case DivergenceKind::kShape:
      return "shape";
  }
  return "unknown";
}

UnitComparison CompareUnits(const std::vector<std::string>& captured,
                            const std::vector<std::string>& replayed,
                            const std::vector<std::string>& statements) {
  Results captured_results = SplitResults(captured);
  Results replayed_results = SplitResults(replayed);
  const auto& c = captured_results.results;
  const auto& r = replayed_results.results;
  UnitComparison comparison;
  for (size_t i = 0; i < r.size(); ++i) {
    if (!IsError(r[i])) continue;
    std::string sqlstate = Sqlstate(*r[i].back());
    bool captured_too = i < c.size() && IsError(c[i]) && Sqlstate(*c[i].back()) == sqlstate;
    comparison.errors.push_back(ReplayError{.sqlstate = sqlstate, .captured = captured_too});
  }
  size_t common = std::min(c.size(), r.size());
  for (size_t i = 0; i < common && !comparison.divergence.has_value(); ++i) {
    comparison.divergence = CompareResult(c[i], r[i]);
    if (comparison.divergence.has_value()) {
      if (i < statements.size()) comparison.divergence->statement = statements[i];
      if (common > 1) {
        std::string& where = comparison.divergence->where;
        where = absl::StrFormat("result %zu of %zu%s%s", i + 1, c.size(), where.empty() ? "" : ", ",
                                where);
      }
    }
  }
  if (!comparison.divergence.has_value() && c.size() != r.size()) {
    comparison.divergence = CompareUnpaired(captured_results, replayed_results, common);
    if (common < statements.size()) comparison.divergence->statement = statements[common];
  }
  if (!comparison.divergence.has_value()) {
    comparison.divergence = CompareShape(captured_results.tail, replayed_results.tail, "final");
    if (comparison.divergence.has_value() && !statements.empty()) {
      comparison.divergence->statement = statements.back();
    }
  }
  return comparison;
}

std::string FormatRow(std::string_view message) {
  auto row = pg::DataRow::Decode(Payload(message));
  if (!row.ok()) return "(malformed row)";
  std::string out = "(";
  for (size_t i = 0; i < row->values.size(); ++i) {
    if (i == kColumnsShownMax) {
      out += absl::StrFormat(", ...%zu more", row->values.size() - i);
      break;
    }
    if (i > 0) out += ", ";
    out += row->values[i].has_value() ? Quote(*row->values[i]) : std::string("NULL");
  }
  return out + ")";
}

std::string FormatError(std::string_view message) {
  char type = message.empty() ? 'E' : message[0];
  auto fields = pg::ErrorFields::Decode(type, Payload(message));
  if (!fields.ok()) return "(malformed error)";
  return absl::StrFormat("%s %s: %s", fields->severity(), fields->sqlstate(), fields->Field('M'));
}

}  // namespace switchyard::replay
