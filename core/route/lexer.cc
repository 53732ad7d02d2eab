// Token boundaries of SQL text, following PostgreSQL 15's scan.l rule by rule where it matters:
// a token here ends exactly where PostgreSQL's does, so the text between them can be trusted.
#include "core/route/lexer.h"

#include <algorithm>
#include <array>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/strings.h"

namespace switchyard::route {
namespace {

constexpr size_t kNone = std::string_view::npos;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsIdentStart(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || u >= 0x80;
}

bool IsIdentContinue(char c) { return IsIdentStart(c) || IsDigit(c) || c == '$'; }

bool IsNewline(char c) { return c == '\n' || c == '\r'; }

// How the inside of a quoted literal is read.
enum class QuoteMode : uint8_t {
  kStandard,  // '' is a quote; backslash is ordinary
  kEscape,    // E'...': backslash escapes the next byte, '' is a quote too
  kBits,      // B'...' / X'...': the first quote ends it
};

// The end of a "--" comment that starts at `pos`: the newline, or the end of the text.
size_t LineCommentEnd(std::string_view sql, size_t pos) {
  size_t i = pos + 2;
  while (i < sql.size() && !IsNewline(sql[i])) ++i;
  return i;
}

// Where a literal that closed just before `pos` continues: scan.l's quotecontinue, i.e.
// (horizontal space | comment)* newline (space | comment newline)* quote. Returns the position
// of that next quote, or kNone.
size_t QuoteContinuation(std::string_view sql, size_t pos) {
  size_t i = pos;
  while (i < sql.size()) {
    if (sql[i] == ' ' || sql[i] == '\t' || sql[i] == '\f') {
      ++i;
    } else if (sql.substr(i, 2) == "--") {
      i = LineCommentEnd(sql, i);
    } else {
      break;
    }
  }
  if (i >= sql.size() || !IsNewline(sql[i])) return kNone;
  ++i;
  while (i < sql.size()) {
    if (IsSqlSpace(sql[i])) {
      ++i;
    } else if (sql.substr(i, 2) == "--") {
      i = LineCommentEnd(sql, i);
      if (i >= sql.size()) return kNone;
      ++i;  // the comment's newline
    } else {
      break;
    }
  }
  return i < sql.size() && sql[i] == '\'' ? i : kNone;
}

// The end of a literal whose opening quote is at `quote`, or kNone if it never closes.
size_t QuotedEnd(std::string_view sql, size_t quote, QuoteMode mode) {
  size_t i = quote + 1;
  while (i < sql.size()) {
    const char c = sql[i];
    if (mode == QuoteMode::kEscape && c == '\\') {
      i += 2;
      continue;
    }
    if (c != '\'') {
      ++i;
      continue;
    }
    if (mode != QuoteMode::kBits && i + 1 < sql.size() && sql[i + 1] == '\'') {
      i += 2;
      continue;
    }
    const size_t next = QuoteContinuation(sql, i + 1);
    if (next == kNone) return i + 1;
    i = next + 1;
  }
  return kNone;
}

size_t QuotedIdentifierEnd(std::string_view sql, size_t quote) {
  size_t i = quote + 1;
  while (i < sql.size()) {
    if (sql[i] != '"') {
      ++i;
    } else if (i + 1 < sql.size() && sql[i + 1] == '"') {
      i += 2;
    } else {
      return i + 1;
    }
  }
  return kNone;
}

// Block comments nest; scan.l counts "/*" and "*/" pairs the same way.
size_t BlockCommentEnd(std::string_view sql, size_t pos) {
  size_t depth = 0;
  size_t i = pos;
  while (i + 1 < sql.size()) {
    if (sql[i] == '/' && sql[i + 1] == '*') {
      ++depth;
      i += 2;
    } else if (sql[i] == '*' && sql[i + 1] == '/') {
      --depth;
      i += 2;
      if (depth == 0) return i;
    } else {
      ++i;
    }
  }
  return kNone;
}

Token Make(TokenKind kind, size_t begin, size_t end, size_t size) {
  if (end == kNone) return Token{TokenKind::kUnterminated, begin, size};
  return Token{kind, begin, end};
}

// '$' starts a parameter ($1), a dollar-quoted string, or is a character on its own.
Token DollarToken(std::string_view sql, size_t pos) {
  size_t i = pos + 1;
  if (i < sql.size() && IsDigit(sql[i])) {
    while (i < sql.size() && IsDigit(sql[i])) ++i;
    return Token{TokenKind::kParam, pos, i};
  }
  if (i < sql.size() && IsIdentStart(sql[i])) {
    while (i < sql.size() && (IsIdentStart(sql[i]) || IsDigit(sql[i]))) ++i;
  }
  if (i >= sql.size() || sql[i] != '$') return Token{TokenKind::kOther, pos, pos + 1};
  const std::string_view delimiter = sql.substr(pos, i + 1 - pos);
  const size_t close = sql.find(delimiter, i + 1);
  return Make(TokenKind::kDollarString, pos, close == kNone ? kNone : close + delimiter.size(),
              sql.size());
}

// A name, or the one-letter prefix of a special literal (E'', B'', X'', N'', U&'', U&"").
Token WordToken(std::string_view sql, size_t pos) {
  size_t end = pos + 1;
  while (end < sql.size() && IsIdentContinue(sql[end])) ++end;
  if (end - pos == 1 && end < sql.size()) {
    const char prefix = static_cast<char>(sql[pos] | 0x20);  // lower case
    const char next = sql[end];
    if (next == '\'' && (prefix == 'e' || prefix == 'b' || prefix == 'x' || prefix == 'n')) {
      const QuoteMode mode = prefix == 'e'   ? QuoteMode::kEscape
                             : prefix == 'n' ? QuoteMode::kStandard
                                             : QuoteMode::kBits;
      return Make(TokenKind::kPrefixedString, pos, QuotedEnd(sql, end, mode), sql.size());
    }
    if (prefix == 'u' && next == '&' && end + 1 < sql.size()) {
      if (sql[end + 1] == '\'') {
        return Make(TokenKind::kPrefixedString, pos, QuotedEnd(sql, end + 1, QuoteMode::kStandard),
                    sql.size());
      }
      if (sql[end + 1] == '"') {
        return Make(TokenKind::kQuotedIdentifier, pos, QuotedIdentifierEnd(sql, end + 1),
                    sql.size());
      }
    }
  }
  return Token{TokenKind::kIdentifier, pos, end};
}

}  // namespace

Token NextToken(std::string_view sql, size_t pos) {
  const char c = sql[pos];
  const size_t size = sql.size();
  if (IsSqlSpace(c)) {
    size_t i = pos + 1;
    while (i < size && IsSqlSpace(sql[i])) ++i;
    return Token{TokenKind::kSpace, pos, i};
  }
  if (c == '-' && pos + 1 < size && sql[pos + 1] == '-') {
    return Token{TokenKind::kComment, pos, LineCommentEnd(sql, pos)};
  }
  if (c == '/' && pos + 1 < size && sql[pos + 1] == '*') {
    return Make(TokenKind::kComment, pos, BlockCommentEnd(sql, pos), size);
  }
  if (c == '\'')
    return Make(TokenKind::kString, pos, QuotedEnd(sql, pos, QuoteMode::kStandard), size);
  if (c == '"') return Make(TokenKind::kQuotedIdentifier, pos, QuotedIdentifierEnd(sql, pos), size);
  if (c == '$') return DollarToken(sql, pos);
  if (IsIdentStart(c)) return WordToken(sql, pos);
  if (IsDigit(c)) {
    size_t i = pos + 1;
    while (i < size && IsDigit(sql[i])) ++i;
    return Token{TokenKind::kDigits, pos, i};
  }
  return Token{TokenKind::kOther, pos, pos + 1};
}

bool HasPrimaryHint(std::string_view sql) {
  size_t i = 0;
  auto skip_space = [&] {
    while (i < sql.size() && IsSqlSpace(sql[i])) ++i;
  };
  auto take = [&](std::string_view word) {
    if (!EqualsIgnoreCase(sql.substr(i, word.size()), word)) return false;
    i += word.size();
    return true;
  };
  skip_space();
  if (!take("/*")) return false;
  skip_space();
  if (!take("switchyard")) return false;
  skip_space();
  if (!take(":")) return false;
  skip_space();
  if (!take("primary")) return false;
  skip_space();
  return take("*/");
}

std::string_view TrimStatement(std::string_view text) {
  size_t begin = kNone;
  size_t end = 0;
  for (size_t pos = 0; pos < text.size();) {
    const Token token = NextToken(text, pos);
    pos = token.end;
    if (token.kind == TokenKind::kSpace || token.kind == TokenKind::kComment) continue;
    if (token.kind == TokenKind::kOther && text[token.begin] == ';') continue;
    if (begin == kNone) begin = token.begin;
    end = token.end;
  }
  if (begin == kNone) return text.substr(0, 0);
  return text.substr(begin, end - begin);
}

// ---------------------------------------------------------------------------------------------
// NestingBound.
//
// Each level of the raw parse tree below a statement's fixed skeleton comes from a token:
//   - a parenthesis or bracket (a subquery, call, row, array, grouping);
//   - an operator (+, ||, ::, =, ...) or a keyword operator (NOT, IS, BETWEEN, IN, LIKE, AT,
//     COLLATE, ...), which chain within one expression;
//   - UNION / INTERSECT / EXCEPT, JOIN and CASE, which chain across a whole query level;
//   - a query opening a parenthesis (subquery, CTE body), which adds several levels at once.
// AND and OR do not deepen the tree (the raw parser flattens `a AND b AND c` into one node), and
// binary operators bind tighter than AND, OR and commas, so an operator chain never spans them.
// Per parenthesis level we therefore keep the query-level count (never reset) and the longest
// operator run between commas/AND/OR; a closed level adds its bound to the segment it sits in.
// The result over-estimates (every count is at least the depth it stands for); a statement
// whose bound passes the classifier's limit is not parsed. The weights below are set so that
// one unit costs a similar amount of parser stack whatever the construct (classifier.h).

namespace {

constexpr std::array<std::string_view, 4> kQueryLevelWords = {"union", "intersect", "except",
                                                              "join"};
constexpr std::array<std::string_view, 15> kOperatorWords = {
    "not",     "is",     "isnull", "notnull", "between",  "in",       "like",  "ilike",
    "similar", "escape", "at",     "collate", "overlaps", "operator", "exists"};

bool IsOperatorChar(char c) {
  return std::string_view("+-*/<>=~!@#%^&|`?:").find(c) != std::string_view::npos;
}

bool IsOneOf(std::string_view word, std::string_view const* first, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    if (EqualsIgnoreCase(word, first[i])) return true;
  }
  return false;
}

// A parenthesized query (a subquery, a CTE body) adds about four times the levels of an
// operator: statement, target list entry, sublink and the nodes between them.
constexpr size_t kSubqueryWeight = 4;
constexpr size_t kCaseWeight = 2;
constexpr std::array<std::string_view, 4> kQueryStartWords = {"select", "with", "values", "table"};

struct Level {
  bool fresh = true;   // no token read inside it yet
  size_t query = 0;    // UNION/JOIN/CASE and subqueries at this level
  size_t segment = 0;  // operators since the last comma/AND/OR
  size_t segment_max = 0;
  size_t child_max = 0;  // deepest closed level inside the current segment, or before
  size_t Bound() const { return query + std::max(segment, segment_max) + child_max + 1; }
};

}  // namespace

size_t NestingBound(std::string_view sql) {
  std::vector<Level> levels(1);
  size_t bound = 0;
  for (size_t pos = 0; pos < sql.size();) {
    const Token token = NextToken(sql, pos);
    pos = token.end;
    if (token.kind == TokenKind::kSpace || token.kind == TokenKind::kComment) continue;
    Level& level = levels.back();
    const bool fresh = std::exchange(level.fresh, false);
    if (token.kind == TokenKind::kIdentifier) {
      const std::string_view word = sql.substr(token.begin, token.end - token.begin);
      if (fresh && levels.size() > 1 &&
          IsOneOf(word, kQueryStartWords.data(), kQueryStartWords.size())) {
        level.query += kSubqueryWeight;
      } else if (EqualsIgnoreCase(word, "case")) {
        level.query += kCaseWeight;
      } else if (IsOneOf(word, kQueryLevelWords.data(), kQueryLevelWords.size())) {
        ++level.query;
      } else if (IsOneOf(word, kOperatorWords.data(), kOperatorWords.size())) {
        ++level.segment;
      } else if (EqualsIgnoreCase(word, "and") || EqualsIgnoreCase(word, "or")) {
        level.segment_max = std::max(level.segment_max, level.segment);
        level.segment = 0;
      }
      continue;
    }
    if (token.kind != TokenKind::kOther) continue;
    const char c = sql[token.begin];
    if (c == '(' || c == '[') {
      levels.emplace_back();
    } else if ((c == ')' || c == ']') && levels.size() > 1) {
      const size_t inner = levels.back().Bound();
      levels.pop_back();
      levels.back().child_max = std::max(levels.back().child_max, inner);
    } else if (c == ',') {
      level.segment_max = std::max(level.segment_max, level.segment);
      level.segment = 0;
    } else if (c == ';' && levels.size() == 1) {
      bound = std::max(bound, level.Bound());
      level = Level{};
    } else if (IsOperatorChar(c)) {
      ++level.segment;
    }
  }
  // Unclosed levels are a syntax error, but their depth still counts.
  while (levels.size() > 1) {
    const size_t inner = levels.back().Bound();
    levels.pop_back();
    levels.back().child_max = std::max(levels.back().child_max, inner);
  }
  return std::max(bound, levels.back().Bound());
}

}  // namespace switchyard::route
