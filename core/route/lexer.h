// Token boundaries of SQL text as PostgreSQL 15's lexer draws them, without parsing: enough to
// skip comments, string literals and quoted names, which the classifier, its cache key and the
// pre-parse safety check all need.
//
// Like libpg_query, it assumes standard_conforming_strings = on (the default since 9.1): in a
// plain '...' literal a backslash is an ordinary character.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace switchyard::route {

enum class TokenKind : uint8_t {
  kSpace,             // a run of " \t\n\r\f"
  kComment,           // "--" to the end of the line, or a /* */ block (they nest)
  kString,            // '...' with '' inside, and its continuations across a newline
  kPrefixedString,    // E'...', B'...', X'...', N'...', U&'...' (prefix included)
  kDollarString,      // $tag$...$tag$ or $$...$$
  kQuotedIdentifier,  // "..." or U&"..."
  kIdentifier,        // a keyword or a name: [A-Za-z_\x80-\xff][A-Za-z_\x80-\xff0-9$]*
  kDigits,            // a run of digits that is not part of a name (a number or part of one)
  kParam,             // $1
  kOther,             // one character of anything else: operators, punctuation
  kUnterminated,      // a literal, quoted name or comment that never ends: runs to the end
};

struct Token {
  TokenKind kind;
  size_t begin;  // first byte
  size_t end;    // one past the last byte
};

// The token starting at `pos`, which must be inside `sql`.
Token NextToken(std::string_view sql, size_t pos);

// The text starts, after white space, with the hint `/* switchyard: primary */` (white space
// inside the comment is free, letters are case-insensitive).
bool HasPrimaryHint(std::string_view sql);

// `text` without the white space, comments and semicolons at either end.
std::string_view TrimStatement(std::string_view text);

// An upper bound on how deeply the parse tree of `sql` can nest, in grammar steps, from the
// tokens alone (section "NestingBound" in lexer.cc). libpg_query and protobuf-c recurse once per
// level of the tree, so text over a limit must not reach them: a chain of 30,000 `+1` overflows
// an 8 MiB stack.
size_t NestingBound(std::string_view sql);

inline bool IsSqlSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

}  // namespace switchyard::route
