// Comparing one unit's answers: each kind of divergence, in terms a user can act on.
#include "replay/compare.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/replay/replay_test_util.h"

namespace switchyard::replay {
namespace {

using testing::Columns;
using testing::Error;
using testing::Row;
using testing::Tag;
using testing::Z;

using Unit = std::vector<std::string>;

Unit Select(std::vector<std::vector<std::optional<std::string>>> rows) {
  Unit unit = {Columns({"id", "name"})};
  for (auto& row : rows) unit.push_back(Row(std::move(row)));
  unit.push_back(Tag("SELECT " + std::to_string(rows.size())));
  unit.push_back(Z());
  return unit;
}

const std::vector<std::string> kStatements = {"SELECT * FROM reference ORDER BY id"};

TEST(CompareTest, EqualAnswersDoNotDiverge) {
  Unit unit = Select({{"1", "a"}, {"2", "b"}});
  UnitComparison comparison = CompareUnits(unit, unit, kStatements);
  EXPECT_FALSE(comparison.divergence.has_value());
  EXPECT_TRUE(comparison.errors.empty());
}

TEST(CompareTest, ARowValueNamesTheStatementAndBothRows) {
  UnitComparison comparison =
      CompareUnits(Select({{"1", "a"}, {"2", "b"}, {"3", "c"}}),
                   Select({{"1", "a"}, {"2", "B"}, {"3", "c"}}), kStatements);
  ASSERT_TRUE(comparison.divergence.has_value());
  const Divergence& d = *comparison.divergence;
  EXPECT_EQ(d.kind, DivergenceKind::kRowValues);
  EXPECT_EQ(d.statement, kStatements[0]);
  EXPECT_EQ(d.where, "row 2 of 3");
  EXPECT_EQ(d.captured, "('2', 'b')");
  EXPECT_EQ(d.replayed, "('2', 'B')");
}

TEST(CompareTest, ARowCountShowsTheFirstDifferingRow) {
  UnitComparison comparison =
      CompareUnits(Select({{"1", "a"}, {"2", "b"}}), Select({{"1", "a"}}), kStatements);
  ASSERT_TRUE(comparison.divergence.has_value());
  EXPECT_EQ(comparison.divergence->kind, DivergenceKind::kRowCount);
  EXPECT_EQ(comparison.divergence->captured, "('2', 'b')");
  EXPECT_EQ(comparison.divergence->replayed, "(no row)");
  EXPECT_NE(comparison.divergence->where.find("2 rows captured, 1 replayed"), std::string::npos);
}

TEST(CompareTest, NullsAreNotEmptyStrings) {
  UnitComparison comparison =
      CompareUnits(Select({{"1", std::nullopt}}), Select({{"1", ""}}), kStatements);
  ASSERT_TRUE(comparison.divergence.has_value());
  EXPECT_EQ(comparison.divergence->captured, "('1', NULL)");
  EXPECT_EQ(comparison.divergence->replayed, "('1', '')");
}

TEST(CompareTest, CommandTags) {
  UnitComparison comparison =
      CompareUnits({Tag("UPDATE 3"), Z()}, {Tag("UPDATE 2"), Z()}, {"UPDATE items SET x = 1"});
  ASSERT_TRUE(comparison.divergence.has_value());
  EXPECT_EQ(comparison.divergence->kind, DivergenceKind::kCommandTag);
  EXPECT_EQ(comparison.divergence->captured, "UPDATE 3");
  EXPECT_EQ(comparison.divergence->replayed, "UPDATE 2");
}

TEST(CompareTest, ErrorVersusSuccessAndSqlstates) {
  UnitComparison comparison =
      CompareUnits({Tag("INSERT 0 1"), Z()}, {Error("23505", "duplicate key"), Z()}, {"INSERT"});
  ASSERT_TRUE(comparison.divergence.has_value());
  EXPECT_EQ(comparison.divergence->kind, DivergenceKind::kErrorStatus);
  EXPECT_EQ(comparison.divergence->captured, "success: INSERT 0 1");
  EXPECT_EQ(comparison.divergence->replayed, "ERROR 23505: duplicate key");
  ASSERT_EQ(comparison.errors.size(), 1u);
  EXPECT_EQ(comparison.errors[0].sqlstate, "23505");
  EXPECT_FALSE(comparison.errors[0].captured);

  comparison = CompareUnits({Error("22012", "division by zero"), Z()},
                            {Error("22003", "out of range"), Z()}, {"SELECT 1/0"});
  ASSERT_TRUE(comparison.divergence.has_value());
  EXPECT_EQ(comparison.divergence->kind, DivergenceKind::kSqlstate);
  EXPECT_FALSE(comparison.errors.at(0).captured);
}

TEST(CompareTest, AnErrorAlsoCapturedIsNoDivergence) {
  Unit unit = {Error("22012", "division by zero"), Z()};
  UnitComparison comparison = CompareUnits(unit, unit, {"SELECT 1/0"});
  EXPECT_FALSE(comparison.divergence.has_value());
  ASSERT_EQ(comparison.errors.size(), 1u);
  EXPECT_TRUE(comparison.errors[0].captured);
}

TEST(CompareTest, MultiStatementResultsAreComparedInOrder) {
  Unit captured = {Tag("BEGIN"), Tag("UPDATE 2"), Tag("COMMIT"), Z()};
  Unit replayed = {Tag("BEGIN"), Error("40001", "could not serialize"), Z('E')};
  UnitComparison comparison =
      CompareUnits(captured, replayed, {"BEGIN", "UPDATE items SET a = 1", "COMMIT"});
  ASSERT_TRUE(comparison.divergence.has_value());
  EXPECT_EQ(comparison.divergence->kind, DivergenceKind::kErrorStatus);
  EXPECT_EQ(comparison.divergence->statement, "UPDATE items SET a = 1");
  EXPECT_NE(comparison.divergence->where.find("result 2 of 3"), std::string::npos);
}

TEST(CompareTest, AnErrorWhereTheCaptureEnteredCopy) {
  Unit captured = {pg::CopyResponse{.type = 'G'}.Encode()};
  Unit replayed = {Error("42P01", "relation \"items\" does not exist"), Z()};
  UnitComparison comparison = CompareUnits(captured, replayed, {"COPY items FROM STDIN"});
  ASSERT_TRUE(comparison.divergence.has_value());
  EXPECT_EQ(comparison.divergence->kind, DivergenceKind::kErrorStatus);
  EXPECT_EQ(comparison.divergence->statement, "COPY items FROM STDIN");
  EXPECT_NE(comparison.divergence->captured.find("CopyInResponse"), std::string::npos);
}

TEST(CompareTest, OtherDifferencesAreShape) {
  UnitComparison comparison = CompareUnits({Tag("SET"), Z('I')}, {Tag("SET"), Z('T')}, {"SET"});
  ASSERT_TRUE(comparison.divergence.has_value());
  EXPECT_EQ(comparison.divergence->kind, DivergenceKind::kShape);
  EXPECT_EQ(comparison.divergence->captured, "ReadyForQuery 'I'");
  EXPECT_EQ(comparison.divergence->replayed, "ReadyForQuery 'T'");

  comparison =
      CompareUnits(Select({{"1", "a"}}),
                   {Columns({"id", "label"}), Row({"1", "a"}), Tag("SELECT 1"), Z()}, kStatements);
  ASSERT_TRUE(comparison.divergence.has_value());
  EXPECT_EQ(comparison.divergence->kind, DivergenceKind::kShape);
  EXPECT_NE(comparison.divergence->replayed.find("label"), std::string::npos);
}

TEST(CompareTest, FormatRowEscapesAndShortens) {
  EXPECT_EQ(FormatRow(Row({"it's", "a\nb"})), "('it''s', 'a\\x0ab')");
  std::string long_value(100, 'x');
  EXPECT_NE(FormatRow(Row({long_value})).find("...(100 bytes)"), std::string::npos);
}

}  // namespace
}  // namespace switchyard::replay
