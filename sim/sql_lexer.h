// Tokens of the simulated nodes' SQL dialect, and the split of a query string into statements
// on semicolons outside literals, quoted identifiers and comments. Private to sim/sql_*.cc.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sim/sql_dialect.h"

namespace switchyard::sim::sql {

struct Token {
  enum class Kind {
    kIdent,        // unquoted: lowercased; text is the name
    kQuotedIdent,  // "Name": case kept
    kString,       // '...' or E'...': text is the value
    kNumber,       // digits, maybe with a point: text as written
    kParam,        // $n: param
    kOperator,     // ( ) , . * = :: || + - ; and any other punctuation, one token each
    kEnd,
  };
  Kind kind = Kind::kEnd;
  std::string text;
  int param = 0;
  size_t begin = 0;  // byte offsets into the source
  size_t end = 0;

  bool IsKeyword(std::string_view word) const { return kind == Kind::kIdent && text == word; }
  bool IsOperator(std::string_view op) const { return kind == Kind::kOperator && text == op; }
};

// One statement's tokens (without the semicolon) and its source text, trimmed.
struct TokenRange {
  std::vector<Token> tokens;
  std::string text;
};

// Tokenizes `sql` and splits it on top-level semicolons. Empty statements are dropped.
// An unterminated literal, identifier or comment is a syntax error.
std::optional<SqlError> Split(std::string_view sql, std::vector<TokenRange>* statements);

// PostgreSQL's "syntax error at or near "x"" / "at end of input".
SqlError SyntaxErrorAt(const Token& token);

}  // namespace switchyard::sim::sql
