// The dialect's data statements: SELECT, TABLE, INSERT, UPDATE, DELETE, TRUNCATE, CREATE TABLE
// and COPY.
#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/str_format.h"
#include "sim/sql_parser.h"
#include "sim/text.h"

namespace switchyard::sim::sql {

bool Parser::ParseSelect(Statement* out) {
  SelectStmt s;
  if (!ParseItems(&s.items)) return false;
  if (AcceptKeyword("from")) {
    if (!ParseTableName()) return false;
    s.from_kv = true;
  }
  if (AcceptKeyword("where") && !ParseKeyEquals(&s.where_key)) return false;
  if (AcceptKeyword("order")) {
    if (!ExpectKeyword("by") || !ParseKeyColumn()) return false;
    if (!AcceptKeyword("asc") && AcceptKeyword("desc")) s.order_desc = true;
  }
  if (AcceptKeyword("limit") && !AcceptKeyword("all")) {
    s.limit.emplace();
    if (!ParseExpr(&*s.limit, 0)) return false;
  }
  if (AcceptKeyword("for")) {
    if (AcceptKeyword("no") && !ExpectKeyword("key")) return false;
    if (AcceptKeyword("key") && !Peek().IsKeyword("share")) return Fail();
    if (!AcceptKeyword("update") && !ExpectKeyword("share")) return false;
    s.for_update = true;
    if (AcceptKeyword("of") && !ParseTableName()) return false;
    if (AcceptKeyword("nowait")) {
      s.lock_wait = LockWait::kNoWait;
    } else if (AcceptKeyword("skip")) {
      if (!ExpectKeyword("locked")) return false;
      s.lock_wait = LockWait::kSkipLocked;
    }
  }
  CheckSelect(s);
  out->node = std::move(s);
  return true;
}

void Parser::CheckSelect(const SelectStmt& s) {
  bool aggregate = false;
  for (const SelectItem& item : s.items) {
    if (item.star && !s.from_kv) {
      MarkInvalid(Invalid("42601", "SELECT * with no tables specified is not valid"));
    }
    if (!item.star) CheckExpr(item.expr, s.from_kv, false, &aggregate);
  }
  if (s.where_key) CheckExpr(*s.where_key, false, false, nullptr);
  if (s.limit) CheckExpr(*s.limit, false, false, nullptr);
  if (!s.from_kv && (s.where_key || s.for_update)) {
    MarkInvalid(Invalid("42703", "column \"k\" does not exist"));
  }
  if (aggregate) {
    for (const SelectItem& item : s.items) {
      if (item.star || UsesColumn(item.expr)) {
        MarkInvalid(Invalid("42803",
                            "column \"kv.k\" must appear in the GROUP BY clause or be used in "
                            "an aggregate function"));
      }
    }
    if (s.for_update) {
      MarkInvalid(Invalid("0A000", "FOR UPDATE is not allowed with aggregate functions"));
    }
  }
}

bool Parser::ParseTable(Statement* out) {
  SelectStmt s;
  if (!ParseTableName()) return false;
  s.from_kv = true;
  s.items.push_back(SelectItem{.star = true});
  out->node = std::move(s);
  return true;
}

bool Parser::ParseItems(std::vector<SelectItem>* items) {
  do {
    SelectItem item;
    if (AcceptOperator("*")) {
      item.star = true;
    } else {
      if (!ParseExpr(&item.expr, 0)) return false;
      if (AcceptKeyword("as")) {
        if (!Name(&item.alias)) return false;
      } else if ((Peek().kind == Token::Kind::kIdent && !IsClauseKeyword(Peek())) ||
                 Peek().kind == Token::Kind::kQuotedIdent) {
        item.alias = Take().text;
      }
    }
    items->push_back(std::move(item));
  } while (AcceptOperator(","));
  return true;
}

// k | kv.k | public.kv.k
bool Parser::ParseKeyColumn() {
  std::string name;
  if (!Name(&name)) return false;
  if (name == "public" && AcceptOperator(".") && !Name(&name)) return false;
  if (name == "kv" && AcceptOperator(".") && !Name(&name)) return false;
  if (name == "v") {
    MarkInvalid(Invalid("0A000", "switchyard-sim supports only column k here"));
  } else if (name != "k") {
    MarkInvalid(Invalid("42703", absl::StrFormat("column \"%s\" does not exist", name)));
  }
  return true;
}

bool Parser::ParseKeyEquals(std::optional<Expr>* key) {
  if (!ParseKeyColumn() || !ExpectOperator("=")) return false;
  key->emplace();
  return ParseExpr(&**key, 0);
}

bool Parser::ParseReturning(std::vector<SelectItem>* items) {
  if (!AcceptKeyword("returning")) return true;
  if (!ParseItems(items)) return false;
  for (const SelectItem& item : *items) {
    if (!item.star) CheckExpr(item.expr, true, false, nullptr);
  }
  return true;
}

bool Parser::ParseInsert(Statement* out) {
  InsertStmt s;
  if (!ExpectKeyword("into") || !ParseTableName()) return false;
  std::vector<std::string> columns = {"k", "v"};
  if (AcceptOperator("(")) {
    columns.clear();
    do {
      std::string column;
      if (!Name(&column)) return false;
      if (column != "k" && column != "v") {
        MarkInvalid(Invalid(
            "42703", absl::StrFormat("column \"%s\" of relation \"kv\" does not exist", column)));
      } else if (std::find(columns.begin(), columns.end(), column) != columns.end()) {
        MarkInvalid(
            Invalid("42701", absl::StrFormat("column \"%s\" specified more than once", column)));
      }
      columns.push_back(column);
    } while (AcceptOperator(","));
    if (!ExpectOperator(")")) return false;
  }
  s.key_first = columns.empty() || columns[0] == "k";
  if (!ExpectKeyword("values")) return false;
  do {
    if (!ExpectOperator("(")) return false;
    std::vector<Expr> values;
    do {
      Expr value;
      if (AcceptKeyword("default")) {
        value.kind = Expr::Kind::kNull;
      } else if (!ParseExpr(&value, 0)) {
        return false;
      }
      CheckExpr(value, false, false, nullptr);
      values.push_back(std::move(value));
    } while (AcceptOperator(","));
    if (!ExpectOperator(")")) return false;
    if (values.size() > columns.size()) {
      return Fail(Invalid("42601", "INSERT has more expressions than target columns"));
    }
    std::vector<Expr> row(2);  // {k, v}, NULL where not given
    for (size_t i = 0; i < values.size(); ++i) {
      row[columns[i] == "k" ? 0 : 1] = std::move(values[i]);
    }
    s.rows.push_back(std::move(row));
  } while (AcceptOperator(","));
  if (AcceptKeyword("on") && !ParseOnConflict(&s)) return false;
  if (!ParseReturning(&s.returning)) return false;
  out->node = std::move(s);
  return true;
}

bool Parser::ParseOnConflict(InsertStmt* s) {
  if (!ExpectKeyword("conflict")) return false;
  bool target = false;
  if (AcceptOperator("(")) {
    if (!ParseKeyColumn() || !ExpectOperator(")")) return false;
    target = true;
  } else if (AcceptKeyword("on")) {
    std::string constraint;
    if (!ExpectKeyword("constraint") || !Name(&constraint)) return false;
    if (constraint != "kv_pkey") {
      MarkInvalid(Invalid(
          "42704",
          absl::StrFormat("constraint \"%s\" for table \"kv\" does not exist", constraint)));
    }
    target = true;
  }
  if (!ExpectKeyword("do")) return false;
  if (AcceptKeyword("nothing")) {
    s->on_conflict = InsertStmt::OnConflict::kNothing;
    return true;
  }
  if (!ExpectKeyword("update") || !ExpectKeyword("set")) return false;
  if (!target) {
    return Fail(Invalid("42601",
                        "ON CONFLICT DO UPDATE requires inference specification or constraint "
                        "name"));
  }
  s->on_conflict = InsertStmt::OnConflict::kUpdate;
  if (!ParseAssignV() || !ExpectOperator("=")) return false;
  s->update_value.emplace();
  if (!ParseExpr(&*s->update_value, 0)) return false;
  CheckExpr(*s->update_value, true, true, nullptr);
  return true;
}

// The left side of `SET v = ...`.
bool Parser::ParseAssignV() {
  std::string column;
  if (!Name(&column)) return false;
  if (column == "k") {
    MarkInvalid(Invalid("0A000", "switchyard-sim cannot change a row's key"));
  } else if (column != "v") {
    MarkInvalid(Invalid(
        "42703", absl::StrFormat("column \"%s\" of relation \"kv\" does not exist", column)));
  }
  return true;
}

bool Parser::ParseUpdate(Statement* out) {
  UpdateStmt s;
  if (!ParseTableName() || !ExpectKeyword("set") || !ParseAssignV() || !ExpectOperator("=")) {
    return false;
  }
  if (!ParseExpr(&s.value, 0)) return false;
  CheckExpr(s.value, true, false, nullptr);
  if (AcceptKeyword("where") && !ParseKeyEquals(&s.where_key)) return false;
  if (s.where_key) CheckExpr(*s.where_key, false, false, nullptr);
  if (!ParseReturning(&s.returning)) return false;
  out->node = std::move(s);
  return true;
}

bool Parser::ParseDelete(Statement* out) {
  DeleteStmt s;
  if (!ExpectKeyword("from") || !ParseTableName()) return false;
  if (AcceptKeyword("where") && !ParseKeyEquals(&s.where_key)) return false;
  if (s.where_key) CheckExpr(*s.where_key, false, false, nullptr);
  if (!ParseReturning(&s.returning)) return false;
  out->node = std::move(s);
  return true;
}

bool Parser::ParseTruncate(Statement* out) {
  AcceptKeyword("table");
  if (!ParseTableName()) return false;
  out->node = DeleteStmt{.truncate = true};
  return true;
}

bool Parser::ParseCreate(Statement* out) {
  if (!ExpectKeyword("table")) return false;
  bool if_not_exists = false;
  if (AcceptKeyword("if")) {
    if (!ExpectKeyword("not") || !ExpectKeyword("exists")) return false;
    if_not_exists = true;
  }
  std::string name;
  if (!Name(&name) || !ExpectOperator("(")) return false;
  // The column list is taken on trust: the table always has the dialect's shape.
  int depth = 1;
  while (depth > 0) {
    if (AtEnd()) return Fail();
    const Token& t = Take();
    if (t.IsOperator("(")) ++depth;
    if (t.IsOperator(")")) --depth;
  }
  if (name != "kv") {
    MarkInvalid(Invalid("0A000", "switchyard-sim has only the table kv"));
  } else if (!if_not_exists) {
    MarkInvalid(Invalid("42P07", "relation \"kv\" already exists"));
  }
  out->node = CreateTableStmt{};
  return true;
}

bool Parser::ParseCopy(Statement* out) {
  CopyStmt s;
  if (!ParseTableName()) return false;
  if (AcceptOperator("(")) {
    std::vector<std::string> columns;
    do {
      std::string column;
      if (!Name(&column)) return false;
      columns.push_back(column);
    } while (AcceptOperator(","));
    if (!ExpectOperator(")")) return false;
    if (columns == std::vector<std::string>{"v", "k"}) {
      s.key_first = false;
    } else if (columns != std::vector<std::string>{"k", "v"}) {
      MarkInvalid(Invalid("0A000", "switchyard-sim copies the columns (k, v) or (v, k) only"));
    }
  }
  if (AcceptKeyword("from")) {
    if (!ExpectKeyword("stdin")) return false;
  } else if (AcceptKeyword("to")) {
    if (!ExpectKeyword("stdout")) return false;
    s.from = false;
  } else {
    return Fail();
  }
  const bool with = AcceptKeyword("with");
  if (AcceptOperator("(")) {
    do {
      std::string option;
      std::string value;
      if (!Name(&option)) return false;
      if (Peek().kind == Token::Kind::kIdent || Peek().kind == Token::Kind::kString) {
        value = Take().text;
      }
      if (option != "format" || value != "text") {
        MarkInvalid(Invalid("0A000", "switchyard-sim supports only COPY (FORMAT text)"));
      }
    } while (AcceptOperator(","));
    if (!ExpectOperator(")")) return false;
  } else if (with) {
    return Fail();
  }
  out->node = s;
  return true;
}

}  // namespace switchyard::sim::sql
