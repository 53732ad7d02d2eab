// The dialect's expressions: literals, $n, columns, function calls, ||, + and -, casts; and the
// checks of names they use.
#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/str_format.h"
#include "sim/sql_parser.h"
#include "sim/text.h"

namespace switchyard::sim::sql {

// ---------------------------------------------------------------- expressions
bool Parser::ParseTypeName(uint32_t* oid) {
  std::string name;
  if (!Name(&name)) return false;
  if ((name == "double" && AcceptKeyword("precision")) ||
      (name == "character" && AcceptKeyword("varying"))) {
    name += name == "double" ? " precision" : " varying";
  }
  if (AcceptOperator("(")) {  // a type modifier, e.g. varchar(10): accepted, not enforced
    if (Peek().kind != Token::Kind::kNumber) return Fail();
    Take();
    if (!ExpectOperator(")")) return false;
  }
  std::optional<uint32_t> found = TypeOidByName(name);
  if (!found) {
    MarkInvalid(Invalid("42704", absl::StrFormat("type \"%s\" does not exist", name)));
  }
  *oid = found.value_or(kTextOid);
  return true;
}

bool Parser::ParseExpr(Expr* out, int depth) {
  if (depth > kExpressionDepthMax) {
    return Fail(Invalid("54001", "stack depth limit exceeded"));
  }
  if (!ParseAdditive(out, depth + 1)) return false;
  while (AcceptOperator("||")) {
    Expr right;
    if (!ParseAdditive(&right, depth + 1)) return false;
    *out = Binary(Expr::Kind::kConcat, std::move(*out), std::move(right));
  }
  return true;
}

Expr Parser::Binary(Expr::Kind kind, Expr left, Expr right) {
  Expr e;
  e.kind = kind;
  e.args.push_back(std::move(left));
  e.args.push_back(std::move(right));
  return e;
}

bool Parser::ParseAdditive(Expr* out, int depth) {
  if (!ParseUnary(out, depth + 1)) return false;
  while (Peek().IsOperator("+") || Peek().IsOperator("-")) {
    const Expr::Kind kind = Take().text == "+" ? Expr::Kind::kAdd : Expr::Kind::kSubtract;
    Expr right;
    if (!ParseUnary(&right, depth + 1)) return false;
    *out = Binary(kind, std::move(*out), std::move(right));
  }
  return true;
}

bool Parser::ParseUnary(Expr* out, int depth) {
  if (depth > kExpressionDepthMax) {
    return Fail(Invalid("54001", "stack depth limit exceeded"));
  }
  if (AcceptOperator("-")) {
    Expr inner;
    if (!ParseUnary(&inner, depth + 1)) return false;
    if (inner.kind == Expr::Kind::kNumber && inner.text[0] != '-') {
      inner.text = "-" + inner.text;
      *out = std::move(inner);
    } else {
      out->kind = Expr::Kind::kNegate;
      out->args.push_back(std::move(inner));
    }
    return true;
  }
  AcceptOperator("+");
  if (!ParsePrimary(out, depth + 1)) return false;
  while (AcceptOperator("::")) {
    Expr cast;
    cast.kind = Expr::Kind::kCast;
    uint32_t oid = 0;
    if (!ParseTypeName(&oid)) return false;
    cast.text = std::string(TypeName(oid));
    cast.args.push_back(std::move(*out));
    *out = std::move(cast);
  }
  return true;
}

bool Parser::ParsePrimary(Expr* out, int depth) {
  const Token& t = Peek();
  switch (t.kind) {
    case Token::Kind::kString:
      out->kind = Expr::Kind::kString;
      out->text = TakeText();
      return true;
    case Token::Kind::kNumber:
      out->kind = Expr::Kind::kNumber;
      out->text = TakeText();
      return true;
    case Token::Kind::kParam:
      out->kind = Expr::Kind::kParam;
      out->param = Take().param;
      param_count_ = std::max(param_count_, out->param);
      return true;
    case Token::Kind::kOperator:
      if (!AcceptOperator("(")) return Fail();
      return ParseExpr(out, depth + 1) && ExpectOperator(")");
    case Token::Kind::kIdent:
    case Token::Kind::kQuotedIdent:
      return ParseName(out, depth);
    case Token::Kind::kEnd:
      return Fail();
  }
  return Fail();
}

// A column, a function call, or a constant keyword.
bool Parser::ParseName(Expr* out, int depth) {
  const bool quoted = Peek().kind == Token::Kind::kQuotedIdent;
  const std::string name = Take().text;
  if (!quoted && (name == "null" || name == "true" || name == "false")) {
    out->kind = name == "null" ? Expr::Kind::kNull : Expr::Kind::kBool;
    out->text = name == "true" ? "t" : name == "false" ? "f" : "";
    return true;
  }
  if (!quoted && name == "case") return ParseCase(out, depth);
  if (AcceptOperator("(")) return ParseCall(name, out, depth);
  if (AcceptOperator(".")) {
    out->kind = Expr::Kind::kColumn;
    out->qualifier = name;
    if (!Name(&out->text)) return false;
    if (name != "kv" && name != "excluded") {
      MarkInvalid(
          Invalid("42P01", absl::StrFormat("missing FROM-clause entry for table \"%s\"", name)));
    }
    return true;
  }
  const FunctionInfo* keyword = FindFunction(name);
  if (!quoted && keyword && keyword->keyword) {
    out->kind = Expr::Kind::kFunction;
    out->text = name;
    return true;
  }
  out->kind = Expr::Kind::kColumn;
  out->text = name;
  return true;
}

// CASE WHEN cond THEN value [WHEN ...] [ELSE value] END: the searched form only. The health poll
// needs it to ask a node of either role for its LSN in one statement.
bool Parser::ParseCase(Expr* out, int depth) {
  out->kind = Expr::Kind::kCase;
  if (!Peek().IsKeyword("when")) return Fail();
  while (AcceptKeyword("when")) {
    Expr condition;
    Expr value;
    if (!ParseExpr(&condition, depth + 1) || !ExpectKeyword("then") ||
        !ParseExpr(&value, depth + 1)) {
      return false;
    }
    out->args.push_back(std::move(condition));
    out->args.push_back(std::move(value));
  }
  if (AcceptKeyword("else")) {
    Expr value;
    if (!ParseExpr(&value, depth + 1)) return false;
    out->args.push_back(std::move(value));
    out->has_else = true;
  }
  return ExpectKeyword("end");
}

bool Parser::ParseCall(const std::string& name, Expr* out, int depth) {
  out->kind = Expr::Kind::kFunction;
  out->text = name;
  if (!Peek().IsOperator(")")) {
    do {
      Expr arg;
      if (AcceptOperator("*")) {
        arg.kind = Expr::Kind::kStar;
      } else if (!ParseExpr(&arg, depth + 1)) {
        return false;
      }
      out->args.push_back(std::move(arg));
    } while (AcceptOperator(","));
  }
  if (!ExpectOperator(")")) return false;
  const FunctionInfo* info = FindFunction(name);
  const int argc = static_cast<int>(out->args.size());
  if (!info || info->keyword || argc < info->args_min || argc > info->args_max) {
    MarkInvalid(Invalid("42883", absl::StrFormat("function %s() does not exist", name)));
    return true;
  }
  const bool star = argc == 1 && out->args[0].kind == Expr::Kind::kStar;
  if (name == "count" && !star) {
    MarkInvalid(Invalid("0A000", "switchyard-sim supports only count(*)"));
  } else if (name != "count" && std::any_of(out->args.begin(), out->args.end(),
                                            [](auto& a) { return a.kind == Expr::Kind::kStar; })) {
    return Fail();
  }
  return true;
}

// Marks unknown columns, and columns where there is no row; sets *aggregate on count(*).
void Parser::CheckExpr(const Expr& e, bool row, bool excluded, bool* aggregate) {
  if (e.kind == Expr::Kind::kColumn) {
    const bool known = e.text == "k" || e.text == "v";
    if (e.qualifier == "excluded" && !excluded) {
      MarkInvalid(Invalid("42P01", "missing FROM-clause entry for table \"excluded\""));
    } else if (!known || !row) {
      const std::string shown = e.qualifier.empty() ? e.text : e.qualifier + "." + e.text;
      MarkInvalid(Invalid("42703", absl::StrFormat("column \"%s\" does not exist", shown)));
    }
  }
  if (e.kind == Expr::Kind::kFunction && e.text == "count") {
    if (aggregate == nullptr) {
      MarkInvalid(Invalid("42803", "aggregate functions are not allowed here"));
    } else {
      *aggregate = true;
    }
  }
  for (const Expr& arg : e.args) CheckExpr(arg, row, excluded, aggregate);
}

bool Parser::UsesColumn(const Expr& e) {
  if (e.kind == Expr::Kind::kColumn) return true;
  return std::any_of(e.args.begin(), e.args.end(), UsesColumn);
}

}  // namespace switchyard::sim::sql
