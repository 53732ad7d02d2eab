// Token boundaries, the primary hint, statement trimming and the nesting bound.
#include "core/route/lexer.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace switchyard::route {
namespace {

// The significant tokens of `sql` (no spaces), as (kind, text).
std::vector<std::pair<TokenKind, std::string>> Tokens(std::string_view sql) {
  std::vector<std::pair<TokenKind, std::string>> out;
  for (size_t pos = 0; pos < sql.size();) {
    const Token token = NextToken(sql, pos);
    EXPECT_EQ(token.begin, pos);
    EXPECT_GT(token.end, token.begin);
    pos = token.end;
    if (token.kind != TokenKind::kSpace) {
      out.emplace_back(token.kind, std::string(sql.substr(token.begin, token.end - token.begin)));
    }
  }
  return out;
}

using T = TokenKind;
using Expected = std::vector<std::pair<TokenKind, std::string>>;

TEST(LexerTest, StringsEndWherePostgresEndsThem) {
  EXPECT_EQ(Tokens("'it''s' x"), (Expected{{T::kString, "'it''s'"}, {T::kIdentifier, "x"}}));
  // A backslash is ordinary in a plain literal (standard_conforming_strings on)...
  EXPECT_EQ(Tokens("'a\\' x"), (Expected{{T::kString, "'a\\'"}, {T::kIdentifier, "x"}}));
  // ...and escapes the quote in an E'' literal.
  EXPECT_EQ(Tokens("E'a\\'b' x"),
            (Expected{{T::kPrefixedString, "E'a\\'b'"}, {T::kIdentifier, "x"}}));
  // B'' and X'' end at the first quote: '' is not a quote inside them.
  EXPECT_EQ(Tokens("B'10''01'"), (Expected{{T::kPrefixedString, "B'10'"}, {T::kString, "'01'"}}));
  EXPECT_EQ(Tokens("U&'d\\0061t' N'x'"),
            (Expected{{T::kPrefixedString, "U&'d\\0061t'"}, {T::kPrefixedString, "N'x'"}}));
  // "xe" is a name, so the literal after it is a plain one.
  EXPECT_EQ(Tokens("xe'a\\'"), (Expected{{T::kIdentifier, "xe"}, {T::kString, "'a\\'"}}));
}

TEST(LexerTest, QuoteContinuationNeedsANewline) {
  EXPECT_EQ(Tokens("'a'\n'b'"), (Expected{{T::kString, "'a'\n'b'"}}));
  EXPECT_EQ(Tokens("'a' -- c\n  'b'"), (Expected{{T::kString, "'a' -- c\n  'b'"}}));
  EXPECT_EQ(Tokens("'a' 'b'"), (Expected{{T::kString, "'a'"}, {T::kString, "'b'"}}));
  // A block comment is not allowed between the parts.
  EXPECT_EQ(Tokens("'a' /* */\n'b'"),
            (Expected{{T::kString, "'a'"}, {T::kComment, "/* */"}, {T::kString, "'b'"}}));
  // The continuation of an E'' literal is read with E'' rules.
  EXPECT_EQ(Tokens("E'a'\n'\\'' x"),
            (Expected{{T::kPrefixedString, "E'a'\n'\\''"}, {T::kIdentifier, "x"}}));
}

TEST(LexerTest, CommentsNamesDollarsAndNumbers) {
  EXPECT_EQ(Tokens("/* a /* nested */ still */ x"),
            (Expected{{T::kComment, "/* a /* nested */ still */"}, {T::kIdentifier, "x"}}));
  EXPECT_EQ(Tokens("a--b\nc"),
            (Expected{{T::kIdentifier, "a"}, {T::kComment, "--b"}, {T::kIdentifier, "c"}}));
  EXPECT_EQ(Tokens("\"a\"\"b\" U&\"c\""),
            (Expected{{T::kQuotedIdentifier, "\"a\"\"b\""}, {T::kQuotedIdentifier, "U&\"c\""}}));
  EXPECT_EQ(Tokens("$tag$ a $x$ b $tag$ $1 a$b$ $$$$"),
            (Expected{{T::kDollarString, "$tag$ a $x$ b $tag$"},
                      {T::kParam, "$1"},
                      {T::kIdentifier, "a$b$"},
                      {T::kDollarString, "$$$$"}}));
  EXPECT_EQ(Tokens("t1 12.5e3 .5"), (Expected{{T::kIdentifier, "t1"},
                                              {T::kDigits, "12"},
                                              {T::kOther, "."},
                                              {T::kDigits, "5"},
                                              {T::kIdentifier, "e3"},
                                              {T::kOther, "."},
                                              {T::kDigits, "5"}}));
}

TEST(LexerTest, UnterminatedRunsToTheEnd) {
  EXPECT_EQ(Tokens("SELECT 'abc"),
            (Expected{{T::kIdentifier, "SELECT"}, {T::kUnterminated, "'abc"}}));
  EXPECT_EQ(Tokens("/* /* */"), (Expected{{T::kUnterminated, "/* /* */"}}));
  EXPECT_EQ(Tokens("$a$ x $b$"), (Expected{{T::kUnterminated, "$a$ x $b$"}}));
  EXPECT_EQ(Tokens("\"x"), (Expected{{T::kUnterminated, "\"x"}}));
  EXPECT_EQ(Tokens("E'\\"), (Expected{{T::kUnterminated, "E'\\"}}));
}

TEST(LexerTest, PrimaryHint) {
  EXPECT_TRUE(HasPrimaryHint("/* switchyard: primary */ SELECT 1"));
  EXPECT_TRUE(HasPrimaryHint("\n\t /*switchyard:primary*/"));
  EXPECT_TRUE(HasPrimaryHint("/*  SWITCHYARD  :  Primary  */SELECT 1"));
  EXPECT_FALSE(HasPrimaryHint("/* switchyard: primary"));
  EXPECT_FALSE(HasPrimaryHint("/* switchyard primary */"));
  EXPECT_FALSE(HasPrimaryHint("SELECT /* switchyard: primary */ 1"));
  EXPECT_FALSE(HasPrimaryHint("-- switchyard: primary\n"));
  EXPECT_FALSE(HasPrimaryHint(""));
}

TEST(LexerTest, TrimStatement) {
  EXPECT_EQ(TrimStatement("  /* c */ SET x = 1 ; -- tail\n"), "SET x = 1");
  EXPECT_EQ(TrimStatement("'a -- not a comment' -- comment"), "'a -- not a comment'");
  EXPECT_EQ(TrimStatement("x /* a */ y"), "x /* a */ y");
  EXPECT_EQ(TrimStatement(" ; -- "), "");
  EXPECT_EQ(TrimStatement("'open"), "'open");
}

TEST(LexerTest, NestingBoundGrowsWithDepthNotLength) {
  auto repeat = [](std::string_view piece, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out.append(piece);
    return out;
  };
  EXPECT_LE(NestingBound("SELECT abalance FROM pgbench_accounts WHERE aid = 1"), 3u);
  // Chains deepen the tree.
  EXPECT_GE(NestingBound("SELECT 1" + repeat("+1", 100)), 100u);
  EXPECT_GE(NestingBound("SELECT 1" + repeat(" UNION SELECT 1", 100)), 100u);
  EXPECT_GE(NestingBound("SELECT 1" + repeat("::int", 100)), 100u);
  EXPECT_GE(NestingBound("SELECT " + repeat("abs(", 100) + "1" + repeat(")", 100)), 100u);
  EXPECT_GE(NestingBound("SELECT " + repeat("(SELECT ", 100) + "1" + repeat(")", 100)), 500u);
  // Operators after a closing parenthesis sit above what is inside it.
  EXPECT_GE(NestingBound("SELECT (1" + repeat("+1", 50) + ")" + repeat("+1", 50)), 100u);
  // Lists and AND/OR chains do not.
  EXPECT_LE(NestingBound("SELECT 1 WHERE id IN (" + repeat("1, ", 1000) + "1)"), 5u);
  EXPECT_LE(NestingBound("SELECT 1 WHERE " + repeat("a = 1 AND ", 1000) + "true"), 5u);
  EXPECT_LE(NestingBound("INSERT INTO t VALUES " + repeat("(1, 'a'), ", 1000) + "(1, 'a')"), 5u);
  // Literals and comments hide what looks like structure.
  EXPECT_LE(NestingBound("SELECT '" + repeat("((((", 1000) + "' /* ++++ */"), 3u);
  // Each statement of a string on its own.
  EXPECT_LE(NestingBound(repeat("SELECT 1+1; ", 1000)), 3u);
}

}  // namespace
}  // namespace switchyard::route
