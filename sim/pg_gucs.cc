// Run-time parameters of a simulated PostgreSQL session (see pg_gucs.h).
#include "sim/pg_gucs.h"

#include <algorithm>
#include <cctype>
#include <vector>

#include "absl/strings/str_format.h"
#include "sim/text.h"

namespace switchyard::sim {
namespace {

using Type = GucDefinition::Type;

// Sorted by lowercased name, which is also PostgreSQL's startup report order.
constexpr GucDefinition kGucs[] = {
    {"application_name", "", Type::kString, true},
    {"bytea_output", "hex"},
    {"client_encoding", "UTF8", Type::kEncoding, true},
    {"client_min_messages", "notice"},
    {"DateStyle", "ISO, MDY", Type::kDateStyle, true},
    {"default_transaction_isolation", "read committed"},
    {"default_transaction_read_only", "off", Type::kBool, true},
    {"extra_float_digits", "1", Type::kInteger},
    {"idle_in_transaction_session_timeout", "0", Type::kInteger},
    {"in_hot_standby", "off", Type::kBool, true, true},
    {"integer_datetimes", "on", Type::kBool, true, true},
    {"IntervalStyle", "postgres", Type::kString, true},
    {"is_superuser", "off", Type::kBool, true, true},
    {"lock_timeout", "0", Type::kInteger},
    {"max_connections", "100", Type::kInteger, false, true},
    {"role", "none", Type::kString, false, false, true},
    {"search_path", "\"$user\", public"},
    {"server_encoding", "UTF8", Type::kString, true, true},
    {"server_version", "15.0", Type::kString, true, true},
    {"server_version_num", "150000", Type::kInteger, false, true},
    {"session_authorization", "", Type::kString, true, false, true},
    {"standard_conforming_strings", "on", Type::kBool, true},
    {"statement_timeout", "0", Type::kInteger},
    {"synchronous_commit", "on"},
    {"TimeZone", "UTC", Type::kString, true},
    {"transaction_isolation", "read committed", Type::kString, false, true},
    {"transaction_read_only", "off", Type::kBool, false, true},
    {"work_mem", "4MB", Type::kInteger},
};

SqlError InvalidValue(std::string_view name, std::string_view value) {
  return SqlError{
      .sqlstate = "22023",
      .message = absl::StrFormat("invalid value for parameter \"%s\": \"%s\"", name, value)};
}

std::optional<std::string> NormalizeBool(std::string_view value) {
  const std::string lower = ToLower(value);
  if (lower == "on" || lower == "true" || lower == "yes" || lower == "1" || lower == "t") {
    return "on";
  }
  if (lower == "off" || lower == "false" || lower == "no" || lower == "0" || lower == "f") {
    return "off";
  }
  return std::nullopt;
}

// An integer with an optional unit ("30s", "4MB", "-1").
bool IsInteger(std::string_view value) {
  size_t i = 0;
  if (i < value.size() && (value[i] == '-' || value[i] == '+')) ++i;
  const size_t digits = i;
  while (i < value.size() && std::isdigit(static_cast<unsigned char>(value[i]))) ++i;
  if (i == digits) return false;
  static constexpr std::string_view kUnits[] = {"",  "us", "ms", "s",  "min", "h",
                                                "d", "B",  "kB", "MB", "GB",  "TB"};
  const std::string_view unit = StripWhitespace(value.substr(i));
  return std::find(std::begin(kUnits), std::end(kUnits), unit) != std::end(kUnits);
}

std::optional<std::string> NormalizeEncoding(std::string_view value) {
  std::string upper = ToUpper(value);
  upper.erase(std::remove(upper.begin(), upper.end(), '-'), upper.end());
  upper.erase(std::remove(upper.begin(), upper.end(), '_'), upper.end());
  if (upper == "UTF8" || upper == "UNICODE") return "UTF8";
  if (upper == "SQLASCII") return "SQL_ASCII";
  if (upper == "LATIN1") return "LATIN1";
  return std::nullopt;
}

// "iso" -> "ISO, MDY", keeping the part not given from `current`, as PostgreSQL does.
std::optional<std::string> NormalizeDateStyle(std::string_view value, std::string_view current) {
  std::vector<std::string> parts = SplitOn(current, ',', false);
  for (std::string& part : parts) part = std::string(StripWhitespace(part));
  std::string style = parts.empty() ? "ISO" : parts[0];
  std::string order = parts.size() > 1 ? parts[1] : "MDY";
  for (const std::string& piece : SplitOn(value, ',', false)) {
    const std::string word = ToLower(StripWhitespace(piece));
    if (word == "iso") {
      style = "ISO";
    } else if (word == "sql") {
      style = "SQL";
    } else if (word == "postgres") {
      style = "Postgres";
    } else if (word == "german") {
      style = "German";
    } else if (word == "mdy" || word == "us" || word == "noneuropean") {
      order = "MDY";
    } else if (word == "dmy" || word == "european") {
      order = "DMY";
    } else if (word == "ymd") {
      order = "YMD";
    } else {
      return std::nullopt;
    }
  }
  return style + ", " + order;
}

// ASCII only, as PostgreSQL folds parameter names (and as std::tolower does in the C locale
// this program runs in), without a call per character: names are looked up on every statement.
constexpr char LowerAscii(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool IsLowercase(std::string_view name) {
  return std::none_of(name.begin(), name.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

// Lexicographic order of the lowercased names: <0, 0 or >0.
constexpr int CompareIgnoringCase(std::string_view a, std::string_view b) {
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const char x = LowerAscii(a[i]), y = LowerAscii(b[i]);
    if (x != y) return x < y ? -1 : 1;
  }
  return a.size() == b.size() ? 0 : (a.size() < b.size() ? -1 : 1);
}

constexpr bool SortedByLowercasedName() {
  for (size_t i = 1; i < std::size(kGucs); ++i) {
    if (CompareIgnoringCase(kGucs[i - 1].name, kGucs[i].name) >= 0) return false;
  }
  return true;
}
static_assert(SortedByLowercasedName(), "the startup report goes in lowercased-name order");
static_assert(std::size(kGucs) == kGucCount);

}  // namespace

std::string GucKey(std::string_view name) {
  std::string key(name);
  for (char& c : key) c = LowerAscii(c);
  return key;
}

const GucDefinition* FindGuc(std::string_view name) {
  // Runs several times per statement. Callers mostly pass the canonical or the lowercased
  // spelling, so exact matches come first; a scan that rejects on length beats a binary search
  // here, as many names share long prefixes ("default_transaction_") a comparison would walk.
  const bool lowercase = IsLowercase(name);
  for (const GucDefinition& guc : kGucs) {
    if (guc.name.size() == name.size() && guc.name == name) return &guc;
  }
  for (const GucDefinition& guc : kGucs) {
    if (guc.name.size() != name.size() || (lowercase && IsLowercase(guc.name))) continue;
    if (CompareIgnoringCase(guc.name, name) == 0) return &guc;
  }
  return nullptr;
}

std::span<const GucDefinition> AllGucs() { return kGucs; }

std::string Gucs::DisplayName(std::string_view name) {
  const GucDefinition* guc = FindGuc(name);
  return guc ? std::string(guc->name) : GucKey(name);
}

std::optional<SqlError> Gucs::Validate(std::string_view key, std::string_view value,
                                       std::string* normalized) const {
  const GucDefinition* guc = FindGuc(key);
  *normalized = std::string(value);
  if (guc == nullptr) return std::nullopt;  // a custom "a.b" option takes any text
  std::optional<std::string> fixed;
  switch (guc->type) {
    case Type::kString:
      if (key == "timezone" && (GucKey(value) == "utc" || GucKey(value) == "gmt")) {
        *normalized = ToUpper(value);
      }
      return std::nullopt;
    case Type::kBool:
      fixed = NormalizeBool(value);
      if (!fixed) {
        return SqlError{
            .sqlstate = "22023",
            .message = absl::StrFormat("parameter \"%s\" requires a Boolean value", guc->name)};
      }
      break;
    case Type::kInteger:
      if (!IsInteger(value)) return InvalidValue(guc->name, value);
      return std::nullopt;
    case Type::kEncoding:
      fixed = NormalizeEncoding(value);
      break;
    case Type::kDateStyle:
      fixed = NormalizeDateStyle(value, Get(key).value_or("ISO, MDY"));
      break;
  }
  if (!fixed) return InvalidValue(guc->name, value);
  *normalized = *fixed;
  return std::nullopt;
}

std::optional<SqlError> Gucs::SetResetValue(std::string_view name, std::string_view value) {
  const std::string key = GucKey(name);
  if (FindGuc(key) == nullptr && key.find('.') == std::string::npos) {
    return SqlError{.sqlstate = "42704",
                    .message = absl::StrFormat("unrecognized configuration parameter \"%s\"", key)};
  }
  std::string normalized;
  if (std::optional<SqlError> error = Validate(key, value, &normalized)) return error;
  reset_[key] = normalized;
  ++version_;
  return std::nullopt;
}

std::optional<SqlError> Gucs::Set(std::string_view name, const std::optional<std::string>& value,
                                  bool local) {
  const std::string key = GucKey(name);
  const GucDefinition* guc = FindGuc(key);
  if (guc == nullptr && key.find('.') == std::string::npos) {
    return SqlError{.sqlstate = "42704",
                    .message = absl::StrFormat("unrecognized configuration parameter \"%s\"", key)};
  }
  if (guc != nullptr && guc->read_only) {
    return SqlError{.sqlstate = "55P02",
                    .message = absl::StrFormat("parameter \"%s\" cannot be changed", guc->name)};
  }
  Values& scope = local ? local_ : session_;
  if (!value) {
    // DEFAULT: back to the reset value in this scope.
    auto reset = reset_.find(key);
    const std::string fallback = guc ? std::string(guc->default_value) : "";
    scope[key] = reset != reset_.end() ? reset->second : fallback;
    if (!local) local_.erase(key);
    ++version_;
    return std::nullopt;
  }
  std::string normalized;
  if (std::optional<SqlError> error = Validate(key, *value, &normalized)) return error;
  scope[key] = std::move(normalized);
  if (!local) local_.erase(key);
  // After the change, not before: Validate reads values (DateStyle keeps the part not given),
  // and what it read must not stay cached as current.
  ++version_;
  return std::nullopt;
}

void Gucs::ResetAll() {
  for (auto it = session_.begin(); it != session_.end();) {
    const GucDefinition* guc = FindGuc(it->first);
    it = (guc && guc->no_reset_all) ? std::next(it) : session_.erase(it);
  }
  for (auto it = local_.begin(); it != local_.end();) {
    const GucDefinition* guc = FindGuc(it->first);
    it = (guc && guc->no_reset_all) ? std::next(it) : local_.erase(it);
  }
  ++version_;
}

void Gucs::ResetEverything() {
  session_.clear();
  local_.clear();
  ++version_;
}

void Gucs::Restore(Snapshot snapshot) {
  // Most transactions change no parameter: then the values, and the version, stay as they are.
  if (snapshot.session == session_ && snapshot.local == local_) return;
  session_ = std::move(snapshot.session);
  local_ = std::move(snapshot.local);
  ++version_;
}

void Gucs::EndTransaction() {
  if (local_.empty()) return;
  local_.clear();
  ++version_;
}

const std::string* Gucs::Find(std::string_view key) const {
  for (const Values* scope : {&local_, &session_, &reset_}) {
    auto it = scope->find(key);
    if (it != scope->end()) return &it->second;
  }
  return nullptr;
}

std::string_view Gucs::Effective(const GucDefinition& guc) const {
  if (cache_.version != version_) {
    cache_.version = version_;
    cache_.filled = 0;
  }
  const size_t index = static_cast<size_t>(&guc - std::begin(kGucs));
  const uint32_t bit = uint32_t{1} << index;
  if ((cache_.filled & bit) == 0) {
    const std::string* value = IsLowercase(guc.name) ? Find(guc.name) : Find(GucKey(guc.name));
    cache_.values[index] = value != nullptr ? std::string_view(*value) : guc.default_value;
    cache_.filled |= bit;
  }
  return cache_.values[index];
}

std::optional<std::string> Gucs::Get(std::string_view name) const {
  if (const GucDefinition* guc = FindGuc(name)) return std::string(Effective(*guc));
  // A custom "a.b" parameter: only where it was set.
  const std::string* value = IsLowercase(name) ? Find(name) : Find(GucKey(name));
  if (value != nullptr) return *value;
  return std::nullopt;
}

std::map<std::string, std::string> Gucs::SessionOverrides() const {
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : session_) {
    auto reset = reset_.find(key);
    const GucDefinition* guc = FindGuc(key);
    const std::string base = reset != reset_.end() ? reset->second
                             : guc                 ? std::string(guc->default_value)
                                                   : "";
    if (value != base || (guc == nullptr && reset == reset_.end())) out[key] = value;
  }
  return out;
}

}  // namespace switchyard::sim
