// A simulated node's run-time parameters (GUCs), per session: the PostgreSQL 15 subset drivers
// and proxies touch, with session and SET LOCAL scopes, RESET, transaction rollback, and the
// GUC_REPORT set a server announces with ParameterStatus.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "sim/sql_dialect.h"

namespace switchyard::sim {

struct GucDefinition {
  enum class Type { kString, kBool, kInteger, kEncoding, kDateStyle };
  std::string_view name;  // canonical spelling, as SHOW's column and ParameterStatus use it
  std::string_view default_value;
  Type type = Type::kString;
  bool report = false;        // GUC_REPORT: ParameterStatus at startup and on change
  bool read_only = false;     // SET fails with 55P02
  bool no_reset_all = false;  // RESET ALL leaves it alone (role, session_authorization)
};

// How many parameters the simulated nodes know.
inline constexpr size_t kGucCount = 28;

// The definition of `name` (any case), or nullptr for an unknown or custom ("a.b") name.
const GucDefinition* FindGuc(std::string_view name);
// Every known parameter, sorted by lowercased name: PostgreSQL's startup report order for the
// GUC_REPORT ones.
std::span<const GucDefinition> AllGucs();

class Gucs {
 public:
  // Lowercased name -> value; transparent, so a lookup by an already lowercase name does not
  // build a string.
  using Values = std::map<std::string, std::string, std::less<>>;
  // The values a transaction restores when it rolls back.
  struct Snapshot {
    Values session;
    Values local;
  };

  // Sets the value RESET goes back to (built-in default, startup parameter, per-node value).
  // Read-only parameters may be given one too. Validation as for SET.
  std::optional<SqlError> SetResetValue(std::string_view name, std::string_view value);
  // SET [LOCAL] name = value; nullopt value is DEFAULT (the reset value).
  std::optional<SqlError> Set(std::string_view name, const std::optional<std::string>& value,
                              bool local);
  // RESET ALL.
  void ResetAll();
  // RESET ALL including role and session_authorization (DISCARD ALL).
  void ResetEverything();

  // The effective value, or an error for a name never defined (42704).
  std::optional<std::string> Get(std::string_view name) const;
  // SHOW's column name for `name`.
  static std::string DisplayName(std::string_view name);

  // Transaction boundaries.
  Snapshot Save() const { return Snapshot{session_, local_}; }
  void Restore(Snapshot snapshot);
  void EndTransaction();

  // Changes whenever a value may have changed (never for a plain read), so a caller can tell
  // that what it derived from the values earlier is still current.
  uint64_t version() const { return version_; }

  // Session-level values that differ from the reset values (for oracles and tests).
  std::map<std::string, std::string> SessionOverrides() const;

 private:
  std::optional<SqlError> Validate(std::string_view key, std::string_view value,
                                   std::string* normalized) const;

  // The value in the innermost scope that has `key` (lowercased), or nullptr.
  const std::string* Find(std::string_view key) const;
  // The effective value of a known parameter (Get without the lookups, once per version).
  std::string_view Effective(const GucDefinition& guc) const;

  // Effective values looked up since the last change: Get runs several times per statement (the
  // transaction defaults, statement_timeout, the reported set). The views point into the maps
  // below or at the built-in defaults, and any change bumps version_, which empties the cache.
  struct Cache {
    Cache() = default;
    // A copy's views would point into another object's maps: it starts empty instead.
    Cache(const Cache&) {}
    Cache& operator=(const Cache&) {
      filled = 0;
      return *this;
    }
    uint64_t version = 0;
    uint32_t filled = 0;  // bit i: values[i] is current
    std::array<std::string_view, kGucCount> values{};
  };
  static_assert(kGucCount <= 32, "Cache::filled has a bit per parameter");

  Values reset_;    // lowercased name -> value
  Values session_;  // SET
  Values local_;    // SET LOCAL, until the transaction ends
  uint64_t version_ = 0;
  mutable Cache cache_;
};

// The lowercased form of a parameter name.
std::string GucKey(std::string_view name);

}  // namespace switchyard::sim
