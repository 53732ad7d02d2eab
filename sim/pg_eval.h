// Expression evaluation and typing for the simulated nodes' SQL: values are kept in PostgreSQL's
// text output form with a type oid. Functions that need the node or the session (pg_sleep,
// set_config, the LSN functions, ...) are delegated to a FunctionHost. Private to sim/.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sim/kv_store.h"
#include "sim/sql_dialect.h"

namespace switchyard::sim::internal {

struct Datum {
  Value value;  // text form; nullopt is NULL
  uint32_t type = kTextOid;
};

class FunctionHost {
 public:
  virtual ~FunctionHost() = default;
  // Calls `name` (known to FindFunction, argument count already checked) on evaluated args.
  virtual std::optional<SqlError> Call(std::string_view name, const std::vector<Datum>& args,
                                       Datum* out) = 0;
};

// A row of kv seen by an expression.
struct RowRef {
  std::string_view key;
  const Value* value = nullptr;
};

struct EvalContext {
  const std::vector<Value>* params = nullptr;
  const std::vector<uint32_t>* param_types = nullptr;
  std::optional<RowRef> row;
  std::optional<RowRef> excluded;  // INSERT ... ON CONFLICT DO UPDATE
  std::optional<int64_t> count;    // count(*) of an aggregate SELECT
  FunctionHost* host = nullptr;
};

std::optional<SqlError> Eval(const Expr& expr, const EvalContext& context, Datum* out);

// A result column: name, type, and where it comes from.
struct Column {
  std::string name;
  uint32_t type = kTextOid;
  uint32_t table_oid = 0;
  int16_t attnum = 0;
};
// The type an expression has before it runs (Describe answers with it).
uint32_t TypeOf(const Expr& expr, const std::vector<uint32_t>& param_types);
// The columns a target list produces (`*` is k, v).
std::vector<Column> DescribeItems(const std::vector<SelectItem>& items,
                                  const std::vector<uint32_t>& param_types);
// Fills in the type of every $n the statement uses from where it appears, keeping the types
// given (non-zero) and defaulting to text: the result has one entry per $n.
std::vector<uint32_t> InferParamTypes(const Statement& statement, std::vector<uint32_t> given);

// Converts a value of type `from` to type `to`, as a cast does (22P02 / 22003 on bad input).
std::optional<SqlError> CastValue(const Value& in, uint32_t from, uint32_t to, Value* out);
// Binary wire form of a text value and back, for the types that have one here.
std::optional<SqlError> ToBinary(const Value& text, uint32_t type, Value* out);
std::optional<SqlError> FromBinary(std::string_view bytes, uint32_t type, std::string* text);
// pg_type.typlen of a type, for RowDescription.
int16_t TypeSize(uint32_t type);

}  // namespace switchyard::sim::internal
