// A simulated node's run-time parameters (GUCs), per session: the PostgreSQL 15 subset drivers
// and proxies touch, with session and SET LOCAL scopes, RESET, transaction rollback, and the
// GUC_REPORT set a server announces with ParameterStatus.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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

// The definition of `name` (any case), or nullptr for an unknown or custom ("a.b") name.
const GucDefinition* FindGuc(std::string_view name);
// The GUC_REPORT names, in the order PostgreSQL reports them at startup.
std::vector<std::string_view> ReportedGucs();

class Gucs {
 public:
  // The values a transaction restores when it rolls back.
  struct Snapshot {
    std::map<std::string, std::string> session;
    std::map<std::string, std::string> local;
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
  void Restore(Snapshot snapshot) {
    session_ = std::move(snapshot.session);
    local_ = std::move(snapshot.local);
  }
  void EndTransaction() { local_.clear(); }

  // Session-level values that differ from the reset values (for oracles and tests).
  std::map<std::string, std::string> SessionOverrides() const;

 private:
  std::optional<SqlError> Validate(std::string_view key, std::string_view value,
                                   std::string* normalized) const;

  std::map<std::string, std::string> reset_;    // lowercased name -> value
  std::map<std::string, std::string> session_;  // SET
  std::map<std::string, std::string> local_;    // SET LOCAL, until the transaction ends
};

// The lowercased form of a parameter name.
std::string GucKey(std::string_view name);

}  // namespace switchyard::sim
