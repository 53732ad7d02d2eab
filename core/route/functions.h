// Function volatility as the classifier needs it: for a function name, the worst volatility of
// any function of that name (DESIGN.md section 5, "What read-only means").
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"

namespace switchyard::route {

class FunctionVolatility {
 public:
  static constexpr char kImmutable = 'i';
  static constexpr char kStable = 's';
  static constexpr char kVolatile = 'v';
  // Bounds: names are PostgreSQL identifiers (63 bytes unless the server was built with a larger
  // NAMEDATALEN); a database with more distinct function names than this keeps the first ones
  // and treats the rest as volatile.
  static constexpr size_t kNameBytesMax = 255;
  static constexpr size_t kNamesMax = size_t{1} << 18;

  // One row per function name: the bare proname, and the worst volatility over every overload
  // in every schema ('v' > 's' > 'i'). Keying by the bare name is conservative: a volatile
  // myschema.lower() makes pg_catalog.lower() count as volatile too, because the classifier
  // cannot resolve search_path. Run against the database whose queries are classified: user
  // functions differ per database.
  static constexpr std::string_view kLoadQuery =
      "SELECT proname, max(provolatile::text) FROM pg_catalog.pg_proc GROUP BY proname";

  FunctionVolatility() = default;

  // A table of PostgreSQL 15's common built-in functions (string, math, date/time, aggregate,
  // window, array, JSON, text search, system information), with pg_proc's volatility, so that
  // routing works before the first load from pg_proc. A function missing from it counts as
  // volatile, which only sends its statements to the primary.
  static FunctionVolatility Builtin();

  // Records one row of kLoadQuery. A name seen again keeps the worse volatility. Errors (bad
  // volatility, oversized name, table full) leave the table unchanged; a missing name then stays
  // volatile, which is safe.
  absl::Status AddRow(std::string_view name, std::string_view volatility);

  // 'i', 's' or 'v'; 'v' for a name never added.
  char Lookup(std::string_view name) const;

  size_t size() const { return names_.size(); }

 private:
  absl::flat_hash_map<std::string, char> names_;
};

}  // namespace switchyard::route
