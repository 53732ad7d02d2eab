// The normalization rules: what legitimately differs between servers is taken out, nothing else.
#include "replay/normalize.h"

#include <gtest/gtest.h>

#include "tests/replay/replay_test_util.h"

namespace switchyard::replay {
namespace {

using testing::Columns;
using testing::Row;

TEST(NormalizeTest, BackendKeysParameterValuesAndPidsAreIgnored) {
  Normalizer a;
  Normalizer b;
  EXPECT_EQ(a.Normalize(testing::Key(1, 2)), b.Normalize(testing::Key(3, 4)));
  EXPECT_EQ(a.Normalize(pg::ParameterStatus{.name = "TimeZone", .value = "UTC"}.Encode()),
            b.Normalize(pg::ParameterStatus{.name = "TimeZone", .value = "Europe/Paris"}.Encode()));
  EXPECT_NE(a.Normalize(pg::ParameterStatus{.name = "TimeZone", .value = "UTC"}.Encode()),
            b.Normalize(pg::ParameterStatus{.name = "DateStyle", .value = "UTC"}.Encode()));
  pg::NotificationResponse first{.pid = 10, .channel = "jobs", .payload = "1"};
  pg::NotificationResponse second{.pid = 20, .channel = "jobs", .payload = "1"};
  EXPECT_EQ(a.Normalize(first.Encode()), b.Normalize(second.Encode()));
  second.payload = "2";
  EXPECT_NE(a.Normalize(first.Encode()), b.Normalize(second.Encode()));
}

TEST(NormalizeTest, ErrorsKeepSeveritySqlstateAndMessageWithoutNumbers) {
  pg::ErrorFields captured;
  captured.fields = {{'S', "ERROR"}, {'V', "ERROR"},
                     {'C', "42P01"}, {'M', "relation with OID 16401 does not exist"},
                     {'F', "a.c"},   {'L', "12"}};
  pg::ErrorFields replayed = captured;
  replayed.fields[3].second = "relation with OID 24577 does not exist";
  replayed.fields[5].second = "99";
  Normalizer normalizer;
  EXPECT_EQ(normalizer.Normalize(captured.Encode()), normalizer.Normalize(replayed.Encode()));
  replayed.fields[2].second = "42P02";
  EXPECT_NE(normalizer.Normalize(captured.Encode()), normalizer.Normalize(replayed.Encode()));
  replayed = captured;
  replayed.fields[3].second = "relation with OID 1 is gone";
  EXPECT_NE(normalizer.Normalize(captured.Encode()), normalizer.Normalize(replayed.Encode()));
}

TEST(NormalizeTest, RowDescriptionsIgnoreTableAndUserTypeOids) {
  Normalizer normalizer;
  EXPECT_EQ(normalizer.Normalize(Columns({"id"}, 16400)),
            normalizer.Normalize(Columns({"id"}, 24600)));
  pg::RowDescription user_type;
  user_type.fields.push_back(pg::RowDescription::Field{.name = "mood", .type_oid = 16500});
  pg::RowDescription other = user_type;
  other.fields[0].type_oid = 24700;
  EXPECT_EQ(normalizer.Normalize(user_type.Encode()), normalizer.Normalize(other.Encode()));
  other.fields[0].type_oid = 23;  // a built-in type is the same everywhere: int4 is not text
  pg::RowDescription builtin = other;
  builtin.fields[0].type_oid = 25;
  EXPECT_NE(normalizer.Normalize(other.Encode()), normalizer.Normalize(builtin.Encode()));
  pg::ParameterDescription parameters{.type_oids = {23, 16999}};
  pg::ParameterDescription masked{.type_oids = {23, 0}};
  EXPECT_EQ(normalizer.Normalize(parameters.Encode()), masked.Encode());
}

TEST(NormalizeTest, ExplainAnalyzeTimingsAreMasked) {
  EXPECT_EQ(MaskExplainTimings("Seq Scan on items  (cost=0.00..22.70 rows=1270 width=36) "
                               "(actual time=0.011..0.013 rows=4 loops=1)"),
            "Seq Scan on items  (cost=0.00..22.70 rows=1270 width=36) "
            "(actual time=# rows=4 loops=1)");
  EXPECT_EQ(MaskExplainTimings("Planning Time: 0.052 ms\nExecution Time: 12.5 ms"),
            "Planning Time: # ms\nExecution Time: # ms");
  EXPECT_EQ(MaskExplainTimings("  Timing: Generation 1.2 ms, Inlining 0.000 ms"),
            "  Timing: Generation #.# ms, Inlining #.# ms");
  EXPECT_EQ(MaskExplainTimings("\"Actual Total Time\": 0.123,\n\"Actual Rows\": 4"),
            "\"Actual Total Time\": #,\n\"Actual Rows\": 4");
  // Row counts and costs are not timings: they stay.
  EXPECT_EQ(MaskExplainTimings("rows=4 loops=1"), "rows=4 loops=1");
}

TEST(NormalizeTest, OnlyQueryPlanColumnsAreMasked) {
  Normalizer captured;
  Normalizer replayed;
  captured.Normalize(Columns({"QUERY PLAN"}));
  replayed.Normalize(Columns({"QUERY PLAN"}));
  EXPECT_EQ(captured.Normalize(Row({"Execution Time: 1.000 ms"})),
            replayed.Normalize(Row({"Execution Time: 9.999 ms"})));
  captured.Normalize(Columns({"note"}));
  replayed.Normalize(Columns({"note"}));
  EXPECT_NE(captured.Normalize(Row({"Execution Time: 1.000 ms"})),
            replayed.Normalize(Row({"Execution Time: 9.999 ms"})));
}

TEST(NormalizeTest, MaskDigitsReplacesRuns) {
  EXPECT_EQ(MaskDigits("pid 12345 at 7"), "pid # at #");
  EXPECT_EQ(MaskDigits("none"), "none");
}

}  // namespace
}  // namespace switchyard::replay
