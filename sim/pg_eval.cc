// Expression evaluation, typing and value conversion for the simulated nodes (see pg_eval.h).
#include "sim/pg_eval.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <variant>

#include "absl/strings/str_format.h"
#include "sim/text.h"

namespace switchyard::sim::internal {
namespace {

std::string_view InternalTypeName(uint32_t oid) {
  switch (oid) {
    case kBoolOid:
      return "bool";
    case kNameOid:
      return "name";
    case kInt8Oid:
      return "int8";
    case kInt4Oid:
      return "int4";
    case kFloat8Oid:
      return "float8";
    case kNumericOid:
      return "numeric";
    case kVoidOid:
      return "void";
    case kPgLsnOid:
      return "pg_lsn";
    default:
      return "text";
  }
}

bool IsIntegerType(uint32_t type) { return type == kInt4Oid || type == kInt8Oid; }

SqlError InvalidInput(uint32_t type, std::string_view value) {
  return SqlError{.sqlstate = "22P02",
                  .message = absl::StrFormat("invalid input syntax for type %s: \"%s\"",
                                             TypeName(type), value)};
}

SqlError OutOfRange(uint32_t type) {
  return SqlError{.sqlstate = "22003",
                  .message = absl::StrFormat("%s out of range", TypeName(type))};
}

// A decimal literal's type: int4 if it fits, then int8, then numeric.
uint32_t NumberType(std::string_view text) {
  if (text.find('.') != std::string_view::npos) return kNumericOid;
  int64_t value = 0;
  if (!ParseInt64(text, &value)) return kNumericOid;
  if (value >= std::numeric_limits<int32_t>::min() &&
      value <= std::numeric_limits<int32_t>::max()) {
    return kInt4Oid;
  }
  return kInt8Oid;
}

bool IsDecimal(std::string_view text) {
  text = StripWhitespace(text);
  if (!text.empty() && (text[0] == '-' || text[0] == '+')) text.remove_prefix(1);
  bool digits = false;
  bool point = false;
  for (char c : text) {
    if (std::isdigit(static_cast<unsigned char>(c))) {
      digits = true;
    } else if (c == '.' && !point) {
      point = true;
    } else {
      return false;
    }
  }
  return digits;
}

std::optional<SqlError> ToInteger(const Value& in, uint32_t from, uint32_t to, Value* out) {
  const std::string_view text = StripWhitespace(*in);
  int64_t value = 0;
  if (from == kNumericOid || from == kFloat8Oid) {
    double d = 0;
    if (!ParseDouble(text, &d)) return InvalidInput(to, *in);
    // numeric -> integer rounds half away from zero.
    d = d < 0 ? -std::floor(-d + 0.5) : std::floor(d + 0.5);
    if (d < -9.2e18 || d > 9.2e18) return OutOfRange(to);
    value = static_cast<int64_t>(d);
  } else if (!ParseInt64(text, &value)) {
    if (IsDecimal(text) && text.find('.') == std::string_view::npos) return OutOfRange(to);
    return InvalidInput(to, *in);
  }
  if (to == kInt4Oid && (value < std::numeric_limits<int32_t>::min() ||
                         value > std::numeric_limits<int32_t>::max())) {
    return SqlError{
        .sqlstate = "22003",
        .message = absl::StrFormat("value \"%s\" is out of range for type integer", *in)};
  }
  *out = std::to_string(value);
  return std::nullopt;
}

std::optional<SqlError> Arithmetic(Expr::Kind kind, const Datum& a, const Datum& b, Datum* out) {
  const bool unary = kind == Expr::Kind::kNegate;
  if (!IsIntegerType(a.type) || (!unary && !IsIntegerType(b.type))) {
    const char* op = kind == Expr::Kind::kAdd ? "+" : "-";
    return SqlError{
        .sqlstate = "42883",
        .message = unary ? absl::StrFormat("operator does not exist: - %s", TypeName(a.type))
                         : absl::StrFormat("operator does not exist: %s %s %s", TypeName(a.type),
                                           op, TypeName(b.type))};
  }
  out->type = (a.type == kInt8Oid || (!unary && b.type == kInt8Oid)) ? kInt8Oid : kInt4Oid;
  if (!a.value || (!unary && !b.value)) {
    out->value.reset();
    return std::nullopt;
  }
  int64_t x = 0;
  int64_t y = 0;
  if (!ParseInt64(*a.value, &x) || (!unary && !ParseInt64(*b.value, &y))) {
    return InvalidInput(out->type, unary ? *a.value : *b.value);
  }
  int64_t result = 0;
  bool overflow = false;
  if (unary) {
    overflow = __builtin_sub_overflow(int64_t{0}, x, &result);
  } else if (kind == Expr::Kind::kAdd) {
    overflow = __builtin_add_overflow(x, y, &result);
  } else {
    overflow = __builtin_sub_overflow(x, y, &result);
  }
  if (overflow || (out->type == kInt4Oid && (result < std::numeric_limits<int32_t>::min() ||
                                             result > std::numeric_limits<int32_t>::max()))) {
    return OutOfRange(out->type);
  }
  out->value = std::to_string(result);
  return std::nullopt;
}

std::optional<SqlError> EvalColumn(const Expr& e, const EvalContext& c, Datum* out) {
  const std::optional<RowRef>& row = e.qualifier == "excluded" ? c.excluded : c.row;
  if (!row) {
    return SqlError{.sqlstate = "42703",
                    .message = absl::StrFormat("column \"%s\" does not exist", e.text)};
  }
  out->type = kTextOid;
  if (e.text == "k") {
    out->value = std::string(row->key);
  } else {
    out->value = *row->value;
  }
  return std::nullopt;
}

// CASE and COALESCE evaluate only the branches they need: the others may fail (a replica's
// pg_current_wal_lsn()), as in PostgreSQL.
std::optional<SqlError> EvalCase(const Expr& e, const EvalContext& c, Datum* out) {
  const size_t pairs = (e.args.size() - (e.has_else ? 1 : 0)) / 2;
  for (size_t i = 0; i < pairs; ++i) {
    Datum condition;
    if (std::optional<SqlError> error = Eval(e.args[2 * i], c, &condition)) return error;
    if (condition.type != kBoolOid) {
      return SqlError{
          .sqlstate = "42804",
          .message = absl::StrFormat("argument of CASE/WHEN must be type boolean, not type %s",
                                     TypeName(condition.type))};
    }
    if (condition.value == "t") return Eval(e.args[2 * i + 1], c, out);
  }
  if (e.has_else) return Eval(e.args.back(), c, out);
  *out = Datum{std::nullopt, e.args.size() > 1 ? TypeOf(e.args[1], {}) : kTextOid};
  return std::nullopt;
}

std::optional<SqlError> EvalCoalesce(const Expr& e, const EvalContext& c, Datum* out) {
  for (const Expr& arg : e.args) {
    if (std::optional<SqlError> error = Eval(arg, c, out)) return error;
    if (out->value) return std::nullopt;
  }
  return std::nullopt;
}

std::optional<SqlError> EvalFunction(const Expr& e, const EvalContext& c, Datum* out) {
  if (e.text == "coalesce") return EvalCoalesce(e, c, out);
  if (e.text == "count") {
    if (!c.count) {
      return SqlError{.sqlstate = "42803", .message = "aggregate functions are not allowed here"};
    }
    *out = Datum{std::to_string(*c.count), kInt8Oid};
    return std::nullopt;
  }
  std::vector<Datum> args(e.args.size());
  for (size_t i = 0; i < e.args.size(); ++i) {
    if (std::optional<SqlError> error = Eval(e.args[i], c, &args[i])) return error;
  }
  if (c.host == nullptr) {
    return SqlError{.sqlstate = "0A000",
                    .message = absl::StrFormat("function %s() is not available here", e.text)};
  }
  const FunctionInfo* info = FindFunction(e.text);
  out->type = info ? info->result_oid : kTextOid;
  return c.host->Call(e.text, args, out);
}

}  // namespace

std::optional<SqlError> Eval(const Expr& e, const EvalContext& c, Datum* out) {
  switch (e.kind) {
    case Expr::Kind::kNull:
      *out = Datum{std::nullopt, kTextOid};
      return std::nullopt;
    case Expr::Kind::kString:
      *out = Datum{e.text, kTextOid};
      return std::nullopt;
    case Expr::Kind::kNumber:
      *out = Datum{e.text, NumberType(e.text)};
      return std::nullopt;
    case Expr::Kind::kBool:
      *out = Datum{e.text, kBoolOid};
      return std::nullopt;
    case Expr::Kind::kStar:
      return SqlError{.sqlstate = "42601", .message = "syntax error at or near \"*\""};
    case Expr::Kind::kParam: {
      if (c.params == nullptr || e.param > static_cast<int>(c.params->size())) {
        return SqlError{.sqlstate = "42P02",
                        .message = absl::StrFormat("there is no parameter $%d", e.param)};
      }
      const size_t i = static_cast<size_t>(e.param - 1);
      const uint32_t type =
          c.param_types && i < c.param_types->size() ? (*c.param_types)[i] : kTextOid;
      *out = Datum{(*c.params)[i], type == 0 ? kTextOid : type};
      return std::nullopt;
    }
    case Expr::Kind::kColumn:
      return EvalColumn(e, c, out);
    case Expr::Kind::kCase:
      return EvalCase(e, c, out);
    case Expr::Kind::kFunction:
      return EvalFunction(e, c, out);
    case Expr::Kind::kConcat:
    case Expr::Kind::kAdd:
    case Expr::Kind::kSubtract:
    case Expr::Kind::kNegate: {
      Datum a;
      Datum b;
      if (std::optional<SqlError> error = Eval(e.args[0], c, &a)) return error;
      if (e.args.size() > 1) {
        if (std::optional<SqlError> error = Eval(e.args[1], c, &b)) return error;
      }
      if (e.kind != Expr::Kind::kConcat) return Arithmetic(e.kind, a, b, out);
      out->type = kTextOid;
      if (!a.value || !b.value) {
        out->value.reset();
      } else {
        out->value = *a.value + *b.value;
      }
      return std::nullopt;
    }
    case Expr::Kind::kCast: {
      Datum inner;
      if (std::optional<SqlError> error = Eval(e.args[0], c, &inner)) return error;
      const uint32_t to = TypeOidByName(e.text).value_or(kTextOid);
      out->type = to;
      return CastValue(inner.value, inner.type, to, &out->value);
    }
  }
  return SqlError{.sqlstate = "XX000", .message = "unknown expression"};
}

uint32_t TypeOf(const Expr& e, const std::vector<uint32_t>& param_types) {
  switch (e.kind) {
    case Expr::Kind::kNull:
    case Expr::Kind::kString:
    case Expr::Kind::kColumn:
    case Expr::Kind::kConcat:
    case Expr::Kind::kStar:
      return kTextOid;
    case Expr::Kind::kNumber:
      return NumberType(e.text);
    case Expr::Kind::kBool:
      return kBoolOid;
    case Expr::Kind::kParam: {
      const size_t i = static_cast<size_t>(e.param - 1);
      return i < param_types.size() && param_types[i] != 0 ? param_types[i] : kTextOid;
    }
    case Expr::Kind::kFunction: {
      if (e.text == "coalesce" && !e.args.empty()) return TypeOf(e.args[0], param_types);
      const FunctionInfo* info = FindFunction(e.text);
      return info ? info->result_oid : kTextOid;
    }
    case Expr::Kind::kCase:
      return e.args.size() > 1 ? TypeOf(e.args[1], param_types) : kTextOid;
    case Expr::Kind::kAdd:
    case Expr::Kind::kSubtract:
    case Expr::Kind::kNegate: {
      for (const Expr& arg : e.args) {
        if (TypeOf(arg, param_types) == kInt8Oid) return kInt8Oid;
      }
      return kInt4Oid;
    }
    case Expr::Kind::kCast:
      return TypeOidByName(e.text).value_or(kTextOid);
  }
  return kTextOid;
}

namespace {

// PostgreSQL's FigureColname: the name a target gets without an alias, or "" for "?column?".
std::string FigureName(const Expr& e) {
  switch (e.kind) {
    case Expr::Kind::kColumn:
    case Expr::Kind::kFunction:
      return e.text;
    case Expr::Kind::kCast: {
      std::string inner = FigureName(e.args[0]);
      if (!inner.empty()) return inner;
      return std::string(InternalTypeName(TypeOidByName(e.text).value_or(kTextOid)));
    }
    case Expr::Kind::kBool:
      return "bool";
    case Expr::Kind::kCase:
      return "case";
    default:
      return "";
  }
}

}  // namespace

std::vector<Column> DescribeItems(const std::vector<SelectItem>& items,
                                  const std::vector<uint32_t>& param_types) {
  std::vector<Column> columns;
  for (const SelectItem& item : items) {
    if (item.star) {
      columns.push_back(Column{"k", kTextOid, kKvTableOid, 1});
      columns.push_back(Column{"v", kTextOid, kKvTableOid, 2});
      continue;
    }
    Column column;
    column.type = TypeOf(item.expr, param_types);
    if (item.expr.kind == Expr::Kind::kColumn) {
      column.table_oid = kKvTableOid;
      column.attnum = item.expr.text == "k" ? 1 : 2;
    }
    column.name = item.alias;
    if (column.name.empty()) column.name = FigureName(item.expr);
    if (column.name.empty()) column.name = "?column?";
    columns.push_back(std::move(column));
  }
  return columns;
}

namespace {

void Want(std::vector<uint32_t>* types, int param, uint32_t type) {
  const size_t i = static_cast<size_t>(param - 1);
  if (types->size() <= i) types->resize(i + 1, 0);
  if ((*types)[i] == 0) (*types)[i] = type;
}

// Walks an expression; `context` is the type its position asks for.
void InferExpr(const Expr& e, uint32_t context, std::vector<uint32_t>* types) {
  switch (e.kind) {
    case Expr::Kind::kParam:
      Want(types, e.param, context);
      return;
    case Expr::Kind::kCast:
      InferExpr(e.args[0], TypeOidByName(e.text).value_or(kTextOid), types);
      return;
    case Expr::Kind::kAdd:
    case Expr::Kind::kSubtract:
    case Expr::Kind::kNegate:
      for (const Expr& arg : e.args) InferExpr(arg, kInt4Oid, types);
      return;
    case Expr::Kind::kCase:
      for (size_t i = 0; i < e.args.size(); ++i) {
        const bool condition = i % 2 == 0 && !(e.has_else && i + 1 == e.args.size());
        InferExpr(e.args[i], condition ? kBoolOid : kTextOid, types);
      }
      return;
    case Expr::Kind::kFunction: {
      std::vector<uint32_t> wanted(e.args.size(), kTextOid);
      if (e.text == "pg_sleep") wanted = {kFloat8Oid};
      if (e.text == "set_config") wanted = {kTextOid, kTextOid, kBoolOid};
      if (e.text == "current_setting") wanted = {kTextOid, kBoolOid};
      if (e.text == "pg_terminate_backend") wanted = {kInt4Oid, kInt8Oid};
      if (e.text == "pg_cancel_backend") wanted = {kInt4Oid};
      if (e.text == "pg_wal_lsn_diff") wanted = {kPgLsnOid, kPgLsnOid};
      for (size_t i = 0; i < e.args.size(); ++i) {
        InferExpr(e.args[i], i < wanted.size() ? wanted[i] : kTextOid, types);
      }
      return;
    }
    default:
      for (const Expr& arg : e.args) InferExpr(arg, kTextOid, types);
      return;
  }
}

void InferItems(const std::vector<SelectItem>& items, std::vector<uint32_t>* types) {
  for (const SelectItem& item : items) {
    if (!item.star) InferExpr(item.expr, kTextOid, types);
  }
}

}  // namespace

std::vector<uint32_t> InferParamTypes(const Statement& statement, std::vector<uint32_t> given) {
  std::vector<uint32_t>* types = &given;
  if (const auto* s = std::get_if<SelectStmt>(&statement.node)) {
    InferItems(s->items, types);
    if (s->where_key) InferExpr(*s->where_key, kTextOid, types);
    if (s->limit) InferExpr(*s->limit, kInt8Oid, types);
  } else if (const auto* s = std::get_if<InsertStmt>(&statement.node)) {
    for (const auto& row : s->rows) {
      for (const Expr& e : row) InferExpr(e, kTextOid, types);
    }
    if (s->update_value) InferExpr(*s->update_value, kTextOid, types);
    InferItems(s->returning, types);
  } else if (const auto* s = std::get_if<UpdateStmt>(&statement.node)) {
    InferExpr(s->value, kTextOid, types);
    if (s->where_key) InferExpr(*s->where_key, kTextOid, types);
    InferItems(s->returning, types);
  } else if (const auto* s = std::get_if<DeleteStmt>(&statement.node)) {
    if (s->where_key) InferExpr(*s->where_key, kTextOid, types);
    InferItems(s->returning, types);
  } else if (const auto* s = std::get_if<ExecuteStmt>(&statement.node)) {
    for (const Expr& e : s->args) InferExpr(e, kTextOid, types);
  }
  if (given.size() < static_cast<size_t>(statement.param_count)) {
    given.resize(static_cast<size_t>(statement.param_count), 0);
  }
  for (uint32_t& type : given) {
    if (type == 0) type = kTextOid;
  }
  return given;
}

std::optional<SqlError> CastValue(const Value& in, uint32_t from, uint32_t to, Value* out) {
  if (!in) {
    out->reset();
    return std::nullopt;
  }
  switch (to) {
    case kInt4Oid:
    case kInt8Oid:
      return ToInteger(in, from, to, out);
    case kBoolOid: {
      const std::string lower = ToLower(StripWhitespace(*in));
      if (lower == "t" || lower == "true" || lower == "on" || lower == "yes" || lower == "1") {
        *out = "t";
      } else if (lower == "f" || lower == "false" || lower == "off" || lower == "no" ||
                 lower == "0") {
        *out = "f";
      } else {
        return InvalidInput(to, *in);
      }
      return std::nullopt;
    }
    case kNumericOid:
    case kFloat8Oid: {
      double d = 0;
      if (!ParseDouble(*in, &d) || (to == kNumericOid && !IsDecimal(*in))) {
        return InvalidInput(to, *in);
      }
      *out = std::string(StripWhitespace(*in));
      return std::nullopt;
    }
    case kPgLsnOid: {
      absl::StatusOr<uint64_t> lsn = ParseLsn(*in);
      if (!lsn.ok()) return InvalidInput(to, *in);
      *out = FormatLsn(*lsn);
      return std::nullopt;
    }
    case kVoidOid:
      return SqlError{.sqlstate = "42846",
                      .message = absl::StrFormat("cannot cast type %s to void", TypeName(from))};
    case kNameOid:
      *out = in->substr(0, std::min(in->size(), kIdentifierBytesMax));
      return std::nullopt;
    default:
      *out = in;
      return std::nullopt;
  }
}

std::optional<SqlError> ToBinary(const Value& text, uint32_t type, Value* out) {
  if (!text) {
    out->reset();
    return std::nullopt;
  }
  auto big_endian = [](uint64_t v, int bytes) {
    std::string s(static_cast<size_t>(bytes), '\0');
    for (int i = bytes - 1; i >= 0; --i) {
      s[static_cast<size_t>(i)] = static_cast<char>(v & 0xff);
      v >>= 8;
    }
    return s;
  };
  int64_t n = 0;
  switch (type) {
    case kTextOid:
    case kNameOid:
      *out = text;
      return std::nullopt;
    case kVoidOid:
      *out = std::string();
      return std::nullopt;
    case kBoolOid:
      *out = std::string(1, *text == "t" ? '\1' : '\0');
      return std::nullopt;
    case kInt4Oid:
    case kInt8Oid:
      if (!ParseInt64(*text, &n)) return InvalidInput(type, *text);
      *out = big_endian(static_cast<uint64_t>(n), type == kInt4Oid ? 4 : 8);
      return std::nullopt;
    case kPgLsnOid: {
      absl::StatusOr<uint64_t> lsn = ParseLsn(*text);
      if (!lsn.ok()) return InvalidInput(type, *text);
      *out = big_endian(*lsn, 8);
      return std::nullopt;
    }
    default:
      return SqlError{.sqlstate = "0A000",
                      .message = absl::StrFormat("switchyard-sim cannot send type %s in binary",
                                                 TypeName(type))};
  }
}

std::optional<SqlError> FromBinary(std::string_view bytes, uint32_t type, std::string* text) {
  auto load = [&](size_t size, uint64_t* v) {
    if (bytes.size() != size) return false;
    *v = 0;
    for (char c : bytes) *v = (*v << 8) | static_cast<uint8_t>(c);
    return true;
  };
  uint64_t v = 0;
  const SqlError bad{.sqlstate = "22P03",
                     .message = "incorrect binary data format in bind parameter"};
  switch (type) {
    case kTextOid:
    case kNameOid:
      *text = std::string(bytes);
      return std::nullopt;
    case kBoolOid:
      if (bytes.size() != 1) return bad;
      *text = bytes[0] ? "t" : "f";
      return std::nullopt;
    case kInt4Oid:
      if (!load(4, &v)) return bad;
      *text = std::to_string(static_cast<int32_t>(static_cast<uint32_t>(v)));
      return std::nullopt;
    case kInt8Oid:
      if (!load(8, &v)) return bad;
      *text = std::to_string(static_cast<int64_t>(v));
      return std::nullopt;
    case kFloat8Oid: {
      if (!load(8, &v)) return bad;
      double d = 0;
      static_assert(sizeof(d) == sizeof(v));
      std::memcpy(&d, &v, sizeof(d));
      *text = absl::StrFormat("%.17g", d);
      return std::nullopt;
    }
    case kPgLsnOid:
      if (!load(8, &v)) return bad;
      *text = FormatLsn(v);
      return std::nullopt;
    default:
      return SqlError{.sqlstate = "0A000",
                      .message = absl::StrFormat("switchyard-sim cannot receive type %s in binary",
                                                 TypeName(type))};
  }
}

int16_t TypeSize(uint32_t type) {
  switch (type) {
    case kBoolOid:
      return 1;
    case kNameOid:
      return 64;
    case kInt8Oid:
    case kFloat8Oid:
    case kPgLsnOid:
      return 8;
    case kInt4Oid:
    case kVoidOid:
      return 4;
    default:
      return -1;
  }
}

}  // namespace switchyard::sim::internal
