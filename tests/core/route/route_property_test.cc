// Properties: the tokenizer covers any text exactly; the normalized key ignores literal values;
// and a cached classification is always the one Classify would give.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <string>
#include <vector>

#include "core/route/cache.h"
#include "core/route/classifier.h"
#include "core/route/lexer.h"
#include "tests/core/route/printers.h"

namespace switchyard::route {
namespace {

// Text made of the characters that matter to the tokenizer.
rc::Gen<std::string> TrickyText() {
  return rc::gen::container<std::string>(rc::gen::elementOf(std::string("'\"$-/*\n eE&Uu1a;\\(.")));
}

RC_GTEST_PROP(RoutePropertyTest, TokensCoverTheTextExactly, ()) {
  const std::string text = *TrickyText();
  std::string rebuilt;
  for (size_t pos = 0; pos < text.size();) {
    const Token token = NextToken(text, pos);
    RC_ASSERT(token.begin == pos);
    RC_ASSERT(token.end > token.begin);
    RC_ASSERT(token.end <= text.size());
    rebuilt.append(text, token.begin, token.end - token.begin);
    pos = token.end;
  }
  RC_ASSERT(rebuilt == text);
}

// A statement template: numbers are filled in by the property.
rc::Gen<std::vector<std::string>> Template() {
  using Pieces = std::vector<std::string>;
  return rc::gen::element(
      Pieces{"SELECT abalance FROM pgbench_accounts WHERE aid = ", ";"},
      Pieces{"UPDATE pgbench_tellers SET tbalance = tbalance + ", " WHERE tid = ", ";"},
      Pieces{"INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (", ", ", ", ", ", ",
             ", CURRENT_TIMESTAMP);"},
      Pieces{"SELECT * FROM t1 WHERE c2 IN (", ", ", ") LIMIT ", " -- page ", "\n"},
      Pieces{"SELECT '", "' || x, $1 FROM t3 WHERE y > ", ".", "e5"});
}

std::string Fill(const std::vector<std::string>& pieces, const std::vector<int>& numbers) {
  std::string out = pieces[0];
  for (size_t i = 1; i < pieces.size(); ++i) {
    out += std::to_string(numbers[i - 1]) + pieces[i];
  }
  return out;
}

RC_GTEST_PROP(RoutePropertyTest, NormalizedKeyIgnoresNumericValues, ()) {
  const std::vector<std::string> pieces = *Template();
  const auto number = rc::gen::inRange(0, 999999999);
  const auto numbers = rc::gen::container<std::vector<int>>(pieces.size() - 1, number);
  const std::string a = Fill(pieces, *numbers);
  const std::string b = Fill(pieces, *numbers);
  RC_ASSERT(!NormalizedKey(a).empty());
  RC_ASSERT(NormalizedKey(a) == NormalizedKey(b));
}

// Simple statements of several shapes, with literals chosen to collide or not.
rc::Gen<std::string> SimpleStatement() {
  const auto table = rc::gen::element<std::string>("t", "u", "pg_locks", "pgbench_accounts");
  const auto function = rc::gen::element<std::string>("lower", "now", "random", "pg_backend_pid",
                                                      "nextval", "pg_advisory_lock", "set_config",
                                                      "current_setting", "unknown_fn");
  const auto literal = rc::gen::oneOf(
      rc::gen::map(rc::gen::inRange(0, 1000), [](int n) { return std::to_string(n); }),
      rc::gen::element<std::string>("'x'", "'DELETE FROM t'", "'transaction_read_only'",
                                    "'search_path'", "'a.b'", "false", "true", "NULL"));
  const auto shape = rc::gen::inRange(0, 6);
  return rc::gen::apply(
      [](int shape, std::string table, std::string function, std::string a, std::string b,
         std::string c) {
        switch (shape) {
          case 0:
            return "SELECT * FROM " + table + " WHERE id = " + a;
          case 1:
            return "SELECT " + function + "(" + a + ", " + b + ", " + c + ")";
          case 2:
            return "SELECT " + function + "(" + a + ") FROM " + table + " FOR UPDATE";
          case 3:
            return "UPDATE " + table + " SET x = " + function + "(" + a + ") WHERE y = " + b;
          case 4:
            return "SET my.setting = " + a;
          default:
            return "/* switchyard: primary */ SELECT " + a + " FROM " + table;
        }
      },
      shape, table, function, literal, literal, literal);
}

RC_GTEST_PROP(RoutePropertyTest, CachedClassificationEqualsClassify, ()) {
  const FunctionVolatility functions = FunctionVolatility::Builtin();
  ClassificationCache cache(ClassificationCacheOptions{.entries_max = 8});
  const auto statements = *rc::gen::container<std::vector<std::string>>(SimpleStatement());
  for (const std::string& sql : statements) {
    const QueryInfo fresh = Classify(sql, functions);
    const QueryInfo& cached = cache.Classify(sql, functions);
    RC_ASSERT(cached == fresh);
  }
  RC_TAG(cache.stats().normalized_hits > 0 ? "normalized hits" : "no normalized hit");
}

}  // namespace
}  // namespace switchyard::route
