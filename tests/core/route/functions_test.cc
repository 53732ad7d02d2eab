// Function volatility: rows from pg_proc and the built-in fallback.
#include "core/route/functions.h"

#include <gtest/gtest.h>

#include <string>

namespace switchyard::route {
namespace {

TEST(FunctionsTest, UnknownIsVolatileAndRowsKeepTheWorstOverload) {
  FunctionVolatility functions;
  EXPECT_EQ(functions.Lookup("f"), 'v');
  ASSERT_TRUE(functions.AddRow("f", "i").ok());
  EXPECT_EQ(functions.Lookup("f"), 'i');
  ASSERT_TRUE(functions.AddRow("f", "s").ok());
  EXPECT_EQ(functions.Lookup("f"), 's');
  ASSERT_TRUE(functions.AddRow("f", "i").ok());  // another overload: still stable
  EXPECT_EQ(functions.Lookup("f"), 's');
  ASSERT_TRUE(functions.AddRow("f", "v").ok());
  EXPECT_EQ(functions.Lookup("f"), 'v');
  EXPECT_EQ(functions.Lookup("F"), 'v');  // pg_proc names are case-sensitive
  EXPECT_EQ(functions.size(), 1u);
}

TEST(FunctionsTest, BadRowsAreRejectedAndChangeNothing) {
  FunctionVolatility functions;
  ASSERT_TRUE(functions.AddRow("g", "i").ok());
  EXPECT_FALSE(functions.AddRow("g", "x").ok());
  EXPECT_FALSE(functions.AddRow("g", "").ok());
  EXPECT_FALSE(functions.AddRow("g", "vi").ok());
  EXPECT_FALSE(functions.AddRow("", "i").ok());
  EXPECT_FALSE(functions.AddRow(std::string(FunctionVolatility::kNameBytesMax + 1, 'a'), "i").ok());
  EXPECT_EQ(functions.Lookup("g"), 'i');
  EXPECT_EQ(functions.size(), 1u);
}

TEST(FunctionsTest, TableIsBounded) {
  FunctionVolatility functions;
  for (size_t i = 0; i < FunctionVolatility::kNamesMax; ++i) {
    ASSERT_TRUE(functions.AddRow("f" + std::to_string(i), "i").ok());
  }
  const absl::Status full = functions.AddRow("one_too_many", "i");
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(functions.Lookup("one_too_many"), 'v');
  // A known name can still get worse.
  ASSERT_TRUE(functions.AddRow("f0", "v").ok());
  EXPECT_EQ(functions.Lookup("f0"), 'v');
}

TEST(FunctionsTest, BuiltinMatchesPostgres15) {
  const FunctionVolatility builtin = FunctionVolatility::Builtin();
  // Values as pg_proc has them (worst overload).
  EXPECT_EQ(builtin.Lookup("lower"), 'i');
  EXPECT_EQ(builtin.Lookup("abs"), 'i');
  EXPECT_EQ(builtin.Lookup("count"), 'i');
  EXPECT_EQ(builtin.Lookup("sum"), 'i');
  EXPECT_EQ(builtin.Lookup("array_agg"), 'i');
  EXPECT_EQ(builtin.Lookup("unnest"), 'i');
  EXPECT_EQ(builtin.Lookup("jsonb_extract_path"), 'i');
  EXPECT_EQ(builtin.Lookup("now"), 's');  // the transaction's start: stable
  EXPECT_EQ(builtin.Lookup("to_char"), 's');
  EXPECT_EQ(builtin.Lookup("date_trunc"), 's');
  EXPECT_EQ(builtin.Lookup("extract"), 's');
  EXPECT_EQ(builtin.Lookup("current_setting"), 's');
  EXPECT_EQ(builtin.Lookup("generate_series"), 's');
  EXPECT_EQ(builtin.Lookup("format"), 's');
  EXPECT_EQ(builtin.Lookup("version"), 's');
  EXPECT_EQ(builtin.Lookup("random"), 'v');
  EXPECT_EQ(builtin.Lookup("clock_timestamp"), 'v');
  EXPECT_EQ(builtin.Lookup("nextval"), 'v');
  EXPECT_EQ(builtin.Lookup("set_config"), 'v');
  EXPECT_EQ(builtin.Lookup("pg_advisory_lock"), 'v');
  EXPECT_GT(builtin.size(), 400u);
}

TEST(FunctionsTest, LoadQueryReadsEveryOverloadOfPgProc) {
  const std::string query(FunctionVolatility::kLoadQuery);
  EXPECT_NE(query.find("pg_catalog.pg_proc"), std::string::npos);
  EXPECT_NE(query.find("GROUP BY proname"), std::string::npos);
  EXPECT_NE(query.find("max(provolatile"), std::string::npos);  // 'v' > 's' > 'i'
}

}  // namespace
}  // namespace switchyard::route
