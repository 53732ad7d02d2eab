// The normalization rules of normalize.h.
#include "replay/normalize.h"

#include <array>
#include <cctype>
#include <cstdint>
#include <optional>
#include <utility>

#include "core/protocol/messages.h"
#include "replay/statements.h"

namespace switchyard::replay {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Keys after which EXPLAIN prints one timing, in every output format.
constexpr std::array<std::string_view, 13> kTimingKeys = {
    "actual time=",       "Planning Time:",           "Execution Time:",
    "Planning time:",     "\"Actual Startup Time\":", "\"Actual Total Time\":",
    "\"Planning Time\":", "\"Execution Time\":",      "Actual Startup Time:",
    "Actual Total Time:", "<Actual-Startup-Time>",    "<Actual-Total-Time>",
    "<Execution-Time>"};
// Lines on which every number is a timing.
constexpr std::array<std::string_view, 2> kTimingLines = {"Timing:", "I/O Timings:"};

// Replaces the number starting at or after `at` (after spaces) with '#'; returns where the
// masked text continues.
size_t MaskNumberAt(std::string& text, size_t at) {
  while (at < text.size() && text[at] == ' ') ++at;
  size_t end = at;
  while (end < text.size() && (IsDigit(text[end]) || text[end] == '.')) ++end;
  if (end == at) return at;
  text.replace(at, end - at, "#");
  return at + 1;
}

std::string MaskPlanLine(std::string_view line) {
  for (std::string_view key : kTimingLines) {
    if (line.find(key) != std::string_view::npos) return MaskDigits(line);
  }
  std::string out(line);
  for (std::string_view key : kTimingKeys) {
    size_t at = 0;
    while ((at = out.find(key, at)) != std::string::npos) {
      at = MaskNumberAt(out, at + key.size());
    }
  }
  return out;
}

std::string NormalizeErrorFields(char type, std::string_view message) {
  auto fields = pg::ErrorFields::Decode(type, Payload(message));
  if (!fields.ok()) return std::string(message);
  pg::ErrorFields kept;
  kept.type = type;
  kept.fields.emplace_back('V', std::string(fields->severity()));
  kept.fields.emplace_back('C', std::string(fields->sqlstate()));
  kept.fields.emplace_back('M', MaskDigits(fields->Field('M')));
  return kept.Encode();
}

uint32_t MaskTypeOid(uint32_t oid) { return oid >= kFirstNormalObjectId ? 0 : oid; }

}  // namespace

std::string MaskDigits(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (!IsDigit(text[i])) {
      out.push_back(text[i]);
      continue;
    }
    out.push_back('#');
    while (i + 1 < text.size() && IsDigit(text[i + 1])) ++i;
  }
  return out;
}

std::string MaskExplainTimings(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string_view::npos) end = text.size();
    out += MaskPlanLine(text.substr(begin, end - begin));
    if (end == text.size()) break;
    out.push_back('\n');
    begin = end + 1;
  }
  return out;
}

std::string Normalizer::Normalize(std::string_view message) {
  if (message.empty()) return std::string(message);
  std::string_view payload = Payload(message);
  switch (message[0]) {
    case 'K':
      return pg::BackendKeyData{}.Encode();
    case 'S':
      if (auto status = pg::ParameterStatus::Decode(payload); status.ok()) {
        return pg::ParameterStatus{.name = status->name, .value = ""}.Encode();
      }
      break;
    case 'A':
      if (auto notification = pg::NotificationResponse::Decode(payload); notification.ok()) {
        notification->pid = 0;
        return notification->Encode();
      }
      break;
    case 'E':
    case 'N':
      return NormalizeErrorFields(message[0], message);
    case 'T':
      if (auto description = pg::RowDescription::Decode(payload); description.ok()) {
        plan_columns_.clear();
        for (pg::RowDescription::Field& field : description->fields) {
          plan_columns_.push_back(field.name == "QUERY PLAN");
          field.table_oid = 0;
          field.type_oid = MaskTypeOid(field.type_oid);
        }
        return description->Encode();
      }
      break;
    case 't':
      if (auto description = pg::ParameterDescription::Decode(payload); description.ok()) {
        for (uint32_t& oid : description->type_oids) oid = MaskTypeOid(oid);
        return description->Encode();
      }
      break;
    case 'D': {
      bool any_plan = false;
      for (bool plan : plan_columns_) any_plan = any_plan || plan;
      if (!any_plan) break;
      auto row = pg::DataRow::Decode(payload);
      if (!row.ok()) break;
      for (size_t i = 0; i < row->values.size() && i < plan_columns_.size(); ++i) {
        if (plan_columns_[i] && row->values[i].has_value()) {
          row->values[i] = MaskExplainTimings(*row->values[i]);
        }
      }
      return row->Encode();
    }
    default:
      break;
  }
  return std::string(message);
}

}  // namespace switchyard::replay
