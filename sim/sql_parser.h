// The recursive-descent parser behind sql_dialect.h, split over sql_dialect.cc (statements'
// entry and dispatch), sql_parse_dml.cc, sql_parse_session.cc and sql_parse_expr.cc. Private to
// sim/sql_*.cc.
#pragma once

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sim/sql_dialect.h"
#include "sim/sql_lexer.h"

namespace switchyard::sim::sql {

inline SqlError Invalid(std::string sqlstate, std::string message) {
  return SqlError{.sqlstate = std::move(sqlstate), .message = std::move(message)};
}

// Words that end a select item, so they are never taken as a bare alias.
inline bool IsClauseKeyword(const Token& t) {
  static constexpr std::string_view kWords[] = {
      "from",   "where", "order",     "limit", "for",  "offset", "union", "group",
      "having", "into",  "returning", "on",    "then", "else",   "end",   "when"};
  if (t.kind != Token::Kind::kIdent) return false;
  return std::find(std::begin(kWords), std::end(kWords), t.text) != std::end(kWords);
}

// Parses one statement's tokens. Syntax errors stop it; name errors (unknown table, column,
// function, type) are kept and turn the statement into an InvalidStmt.
class Parser {
 public:
  // `text` is the statement's source; Parse moves it into the Statement (values can be
  // kilobytes, so the text is not copied).
  Parser(std::vector<Token> tokens, std::string text, int depth)
      : tokens_(std::move(tokens)), text_owned_(std::move(text)), depth_(depth) {
    Token end;
    end.kind = Token::Kind::kEnd;
    end.begin = end.end = tokens_.empty() ? 0 : tokens_.back().end;
    tokens_.push_back(end);
  }

  std::optional<SqlError> Parse(Statement* out);

 private:
  // ---------------------------------------------------------------- token helpers
  const Token& Peek(size_t ahead = 0) const {
    return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)];
  }
  const Token& Take() {
    const Token& t = Peek();
    if (pos_ + 1 < tokens_.size()) ++pos_;
    return t;
  }
  // Take() for a literal's text, which is moved out (values can be kilobytes): the parser never
  // backs up, so a taken token is not read again.
  std::string TakeText() {
    std::string text = std::move(tokens_[std::min(pos_, tokens_.size() - 1)].text);
    Take();
    return text;
  }
  bool AtEnd() const { return Peek().kind == Token::Kind::kEnd; }
  bool AcceptKeyword(std::string_view word) {
    if (!Peek().IsKeyword(word)) return false;
    Take();
    return true;
  }
  bool AcceptOperator(std::string_view op) {
    if (!Peek().IsOperator(op)) return false;
    Take();
    return true;
  }
  bool ExpectKeyword(std::string_view word) { return AcceptKeyword(word) || Fail(); }
  bool ExpectOperator(std::string_view op) { return AcceptOperator(op) || Fail(); }
  bool Fail() {
    if (!error_) error_ = sql::SyntaxErrorAt(Peek());
    return false;
  }
  bool Fail(SqlError error) {
    if (!error_) error_ = std::move(error);
    return false;
  }
  // Records an analysis error; parsing goes on, so a later syntax error still wins.
  void MarkInvalid(SqlError error) {
    if (!invalid_) invalid_ = std::move(error);
  }
  bool Name(std::string* out);

  // ---------------------------------------------------------------- statements
  bool ParseStatement(Statement* out);

  bool ParseTableName();

  bool ParseSelect(Statement* out);

  void CheckSelect(const SelectStmt& s);

  bool ParseTable(Statement* out);

  bool ParseItems(std::vector<SelectItem>* items);

  // k | kv.k | public.kv.k
  bool ParseKeyColumn();

  bool ParseKeyEquals(std::optional<Expr>* key);

  bool ParseReturning(std::vector<SelectItem>* items);

  bool ParseInsert(Statement* out);

  bool ParseOnConflict(InsertStmt* s);

  // The left side of `SET v = ...`.
  bool ParseAssignV();

  bool ParseUpdate(Statement* out);

  bool ParseDelete(Statement* out);

  bool ParseTruncate(Statement* out);

  bool ParseCreate(Statement* out);

  // ---------------------------------------------------------------- transactions
  bool ParseModes(TransactionStmt* s);

  bool ParseBegin(const std::string& word, Statement* out);

  bool ParseCommit(Statement* out);

  bool ParseRollback(Statement* out);

  bool ParseSavepoint(const std::string& word, Statement* out);

  // ---------------------------------------------------------------- session state
  // A GUC name: identifiers joined by dots (custom options are "prefix.name").
  bool ParseGucName(std::string* name);

  // One value of SET: a literal, a word, or a signed number; several join with ", ".
  bool ParseGucValues(std::optional<std::string>* value);

  bool ParseSet(Statement* out);

  // Multi-word names of RESET and SHOW.
  bool ParseSpecialName(std::string* name);

  bool ParseReset(Statement* out);

  bool ParseShow(Statement* out);

  bool ParseDiscard(Statement* out);

  // ---------------------------------------------------------------- prepared statements
  bool ParsePrepare(Statement* out);

  bool ParseExecute(Statement* out);

  bool ParseDeallocate(Statement* out);

  // ---------------------------------------------------------------- LISTEN / NOTIFY / COPY
  bool ParseAsync(const std::string& word, Statement* out);

  bool ParseCopy(Statement* out);

  // ---------------------------------------------------------------- expressions
  bool ParseTypeName(uint32_t* oid);

  bool ParseExpr(Expr* out, int depth);

  static Expr Binary(Expr::Kind kind, Expr left, Expr right);

  bool ParseAdditive(Expr* out, int depth);

  bool ParseUnary(Expr* out, int depth);

  bool ParsePrimary(Expr* out, int depth);

  // A column, a function call, or a constant keyword.
  bool ParseName(Expr* out, int depth);

  bool ParseCall(const std::string& name, Expr* out, int depth);
  bool ParseCase(Expr* out, int depth);

  // Marks unknown columns, and columns where there is no row; sets *aggregate on count(*).
  void CheckExpr(const Expr& e, bool row, bool excluded, bool* aggregate);

  static bool UsesColumn(const Expr& e);

  std::vector<Token> tokens_;
  std::string text_owned_;  // until Parse moves it into the statement
  std::string_view text_;   // the statement's text, where it lives from Parse on
  int depth_ = 0;
  size_t pos_ = 0;
  int param_count_ = 0;
  std::optional<SqlError> error_;
  std::optional<SqlError> invalid_;
};

}  // namespace switchyard::sim::sql
