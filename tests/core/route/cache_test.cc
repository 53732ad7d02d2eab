// The normalized cache key and the classification cache: bounds, eviction, invalidation, and
// that a normalized entry is never served where a literal's value matters.
#include "core/route/cache.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "tests/core/route/printers.h"

namespace switchyard::route {
namespace {

using namespace expect;  // NOLINT

// The key with its marker byte shown as '#'.
std::string Key(std::string_view sql) {
  std::string key = NormalizedKey(sql);
  for (char& c : key) {
    if (c == '\x01') c = '#';
  }
  return key;
}

TEST(NormalizedKeyTest, BlanksLiteralsAndKeepsEverythingElse) {
  EXPECT_EQ(Key("SELECT a FROM t WHERE b = 12 AND c = 'x'"),
            "SELECT a FROM t WHERE b = #N AND c = #S");
  EXPECT_EQ(Key("SELECT t1.c2, $1 FROM t1"), "SELECT t1.c2, $1 FROM t1");
  EXPECT_EQ(Key("SELECT 1.5e3"), "SELECT #N.#Ne3");
  EXPECT_EQ(Key("SELECT $$a'b$$, $q$x$q$"), "SELECT #D, #D");
  EXPECT_EQ(Key("SELECT 1 -- c\n/* d */"), "SELECT #N #L\n#C");
  EXPECT_EQ(Key("SELECT \"Col 1\" FROM \"T2\""), "SELECT \"Col 1\" FROM \"T2\"");
  EXPECT_EQ(Key("/* switchyard: primary */ SELECT 1"), "#H#C SELECT #N");
  EXPECT_EQ(Key("SELECT 'a'\n'b' || 'c'"), "SELECT #S || #S");
  // Ten digits may be a bigint (a numeric constant to the parser): kept.
  EXPECT_EQ(Key("SELECT 1234567890"), "SELECT 1234567890");
}

TEST(NormalizedKeyTest, SameKeyOnlyWhenOnlyLiteralValuesDiffer) {
  EXPECT_EQ(NormalizedKey("SELECT * FROM t WHERE a = 'DELETE FROM t; --'"),
            NormalizedKey("SELECT * FROM t WHERE a = 'x'"));
  EXPECT_EQ(NormalizedKey("SELECT 1 /* ; DROP TABLE t */"), NormalizedKey("SELECT 22 /* */"));
  EXPECT_NE(NormalizedKey("SELECT * FROM t1"), NormalizedKey("SELECT * FROM t2"));
  EXPECT_NE(NormalizedKey("SELECT f1(1)"), NormalizedKey("SELECT f2(1)"));
  EXPECT_NE(NormalizedKey("SELECT 1"), NormalizedKey("SELECT 1.5"));
  EXPECT_NE(NormalizedKey("SELECT 'a'\n'b'"), NormalizedKey("SELECT 'a' 'b'"));
  EXPECT_NE(NormalizedKey("SELECT 1 /* c */"), NormalizedKey("SELECT 1 -- c"));
  EXPECT_NE(NormalizedKey("/* switchyard: primary */ SELECT 1"),
            NormalizedKey("/* switchyard: replica */ SELECT 1"));
}

TEST(NormalizedKeyTest, NoKeyWhenItCannotBePromised) {
  EXPECT_EQ(NormalizedKey("SELECT E'\\n'"), "");
  EXPECT_EQ(NormalizedKey("SELECT B'101', X'ff'"), "");
  EXPECT_EQ(NormalizedKey("SELECT U&'d\\0061t'"), "");
  EXPECT_EQ(NormalizedKey("SELECT 'open"), "");
  EXPECT_EQ(NormalizedKey("SELECT 1 /* open"), "");
  EXPECT_EQ(NormalizedKey("SELECT \x01N"), "");
  EXPECT_EQ(NormalizedKey(std::string("SELECT 1\0", 9)), "");
}

class CacheTest : public testing::Test {
 protected:
  const QueryInfo& Get(std::string_view sql) { return cache_.Classify(sql, functions_); }

  FunctionVolatility functions_ = FunctionVolatility::Builtin();
  ClassificationCache cache_;
};

TEST_F(CacheTest, PgbenchLiteralsShareOneEntry) {
  EXPECT_EQ(Get("SELECT abalance FROM pgbench_accounts WHERE aid = 123;"), Query({Read()}));
  EXPECT_EQ(Get("SELECT abalance FROM pgbench_accounts WHERE aid = 98765;"), Query({Read()}));
  EXPECT_EQ(Get("UPDATE pgbench_accounts SET abalance = abalance + 17 WHERE aid = 5;"),
            Query({Write()}));
  EXPECT_EQ(Get("UPDATE pgbench_accounts SET abalance = abalance + 4412 WHERE aid = 77;"),
            Query({Write()}));
  EXPECT_EQ(cache_.stats().misses, 2u);
  EXPECT_EQ(cache_.stats().normalized_hits, 2u);
  EXPECT_EQ(cache_.size(), 2u);
  // A minus sign is an operator to the lexer, so it is part of the key: one more entry.
  EXPECT_EQ(Get("UPDATE pgbench_accounts SET abalance = abalance + -3 WHERE aid = 8;"),
            Query({Write()}));
  EXPECT_EQ(Get("UPDATE pgbench_accounts SET abalance = abalance + -4999 WHERE aid = 9;"),
            Query({Write()}));
  EXPECT_EQ(cache_.stats().misses, 3u);
  EXPECT_EQ(cache_.size(), 3u);
}

TEST_F(CacheTest, LiteralDependentResultsAreNeverSharedAcrossLiterals) {
  EXPECT_EQ(Get("SELECT set_config('x.y', '1', false)"),
            Query({With(Write(), {Set("x.y", "'1'")})}));
  EXPECT_EQ(Get("SELECT set_config('x.y', '2', false)"),
            Query({With(Write(), {Set("x.y", "'2'")})}));
  EXPECT_EQ(Get("SELECT set_config('x.y', '2', true)"), Query({Local(Write())}));
  EXPECT_EQ(Get("SET a.b = 1"), Query({With(Write(), {Set("a.b", "1")})}));
  EXPECT_EQ(Get("SET a.b = 2"), Query({With(Write(), {Set("a.b", "2")})}));
  EXPECT_EQ(Get("PREPARE p AS SELECT 1"),
            Query({With(Write(),
                        {Effect(SessionEffect::Kind::kPrepare, "p", "PREPARE p AS SELECT 1")})}));
  EXPECT_EQ(Get("PREPARE p AS SELECT 2"),
            Query({With(Write(),
                        {Effect(SessionEffect::Kind::kPrepare, "p", "PREPARE p AS SELECT 2")})}));
  // Read-only for one setting name, node-local for another.
  EXPECT_EQ(Get("SELECT current_setting('search_path')"), Query({Read()}));
  EXPECT_EQ(Get("SELECT current_setting('transaction_read_only')"), Query({Write()}));
  EXPECT_EQ(Get("EXPLAIN (ANALYZE 'off') DELETE FROM t"), Query({Read()}));
  EXPECT_EQ(Get("EXPLAIN (ANALYZE 'on') DELETE FROM t"), Query({Write()}));
  EXPECT_EQ(cache_.stats().normalized_hits, 0u);
}

TEST_F(CacheTest, HintAndStructureArePartsOfTheKey) {
  EXPECT_EQ(Get("SELECT 1"), Query({Read()}));
  EXPECT_EQ(Get("/* switchyard: primary */ SELECT 2"), Hinted(Query({Read()})));
  EXPECT_EQ(Get("SELECT 3"), Query({Read()}));
  EXPECT_EQ(Get("SELECT 3 FOR UPDATE"), Query({Write()}));
  EXPECT_EQ(Get("SELECT 'x; DELETE FROM t'"), Query({Read()}));
  EXPECT_EQ(Get("SELECT 'y'; DELETE FROM t"), Query({Read(), Write()}));
  EXPECT_EQ(Get("SELEKT 4"), ParseError());
  EXPECT_EQ(Get("SELEKT 5"), ParseError());
}

TEST(ClassificationCacheTest, LeastRecentlyUsedIsEvicted) {
  const FunctionVolatility functions = FunctionVolatility::Builtin();
  ClassificationCache cache(ClassificationCacheOptions{.entries_max = 3});
  // SETs are cached by exact text only: one entry each.
  cache.Classify("SET a.a = 1", functions);
  cache.Classify("SET b.b = 1", functions);
  cache.Classify("SET c.c = 1", functions);
  cache.Classify("SET a.a = 1", functions);  // a is now the most recent
  cache.Classify("SET d.d = 1", functions);  // evicts b
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.stats().evictions, 1u);
  const uint64_t misses = cache.stats().misses;
  cache.Classify("SET a.a = 1", functions);
  cache.Classify("SET c.c = 1", functions);
  cache.Classify("SET d.d = 1", functions);
  EXPECT_EQ(cache.stats().misses, misses);
  cache.Classify("SET b.b = 1", functions);
  EXPECT_EQ(cache.stats().misses, misses + 1);
  EXPECT_EQ(cache.size(), 3u);
}

TEST(ClassificationCacheTest, BytesAndStatementSizeAreBounded) {
  const FunctionVolatility functions = FunctionVolatility::Builtin();
  ClassificationCache cache(ClassificationCacheOptions{
      .entries_max = 100, .statement_bytes_max = 200, .bytes_max = 2000});
  for (int i = 0; i < 50; ++i) {
    cache.Classify("SET a" + std::to_string(i) + ".b = '" + std::string(60, 'x') + "'", functions);
    EXPECT_LE(cache.bytes(), 2000u);
  }
  EXPECT_LT(cache.size(), 50u);
  EXPECT_GT(cache.stats().evictions, 0u);
  const std::string long_select = "SELECT 1 AS " + std::string(300, 'a');
  EXPECT_EQ(cache.Classify(long_select, functions), Query({Read()}));
  EXPECT_EQ(cache.stats().uncached, 1u);
}

TEST(ClassificationCacheTest, InvalidateDropsWhatOldVolatilitySaid) {
  FunctionVolatility functions;
  ClassificationCache cache;
  EXPECT_FALSE(cache.Classify("SELECT my_fn(1)", functions).read_only);  // unknown: volatile
  ASSERT_TRUE(functions.AddRow("my_fn", "s").ok());
  // Until invalidated the cache answers from before (the caller must invalidate).
  EXPECT_FALSE(cache.Classify("SELECT my_fn(2)", functions).read_only);
  cache.Invalidate();
  EXPECT_TRUE(cache.Classify("SELECT my_fn(3)", functions).read_only);
  EXPECT_EQ(cache.size(), 1u);  // the stale entry was replaced, not kept beside
}

// Not a pass/fail check: the numbers go to the log for the benchmarks' reader.
TEST(ClassificationCacheTest, PerformanceLog) {
  const FunctionVolatility functions = FunctionVolatility::Builtin();
  constexpr int kRounds = 2000;
  const std::string sql = "SELECT abalance FROM pgbench_accounts WHERE aid = 123;";
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  bool read_only = true;
  for (int i = 0; i < kRounds; ++i) read_only &= Classify(sql, functions).read_only;
  const Clock::time_point classified = Clock::now();
  ClassificationCache cache;
  for (int i = 0; i < kRounds; ++i) {
    const std::string text =
        "SELECT abalance FROM pgbench_accounts WHERE aid = " + std::to_string(i) + ";";
    read_only &= cache.Classify(text, functions).read_only;
  }
  const Clock::time_point normalized = Clock::now();
  for (int i = 0; i < kRounds; ++i) read_only &= cache.Classify(sql, functions).read_only;
  const Clock::time_point cached = Clock::now();
  EXPECT_TRUE(read_only);
  auto us = [](Clock::duration d) {
    return std::chrono::duration<double, std::micro>(d).count() / kRounds;
  };
  std::printf(
      "route_performance classify_us=%.2f cached_normalized_us=%.3f cached_repeat_us=%.3f\n",
      us(classified - start), us(normalized - classified), us(cached - normalized));
}

}  // namespace
}  // namespace switchyard::route
