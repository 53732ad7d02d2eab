// The report: percentiles, counting, the text report's last line, and the HTML page.
#include "replay/report.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace switchyard::replay {
namespace {

TEST(LatencyHistogramTest, PercentilesAreWithinTheBucketResolution) {
  LatencyHistogram histogram;
  EXPECT_EQ(histogram.Percentile(0.5), 0);
  for (int64_t us = 1; us <= 1000; ++us) histogram.Add(us * 1000);  // 1 ms .. 1 s
  EXPECT_EQ(histogram.count(), 1000u);
  EXPECT_NEAR(histogram.Percentile(0.5), 500'000, 500'000 * 0.07);
  EXPECT_NEAR(histogram.Percentile(0.99), 990'000, 990'000 * 0.07);
  LatencyHistogram small;
  small.Add(3);
  EXPECT_EQ(small.Percentile(0.99), 3);
}

RC_GTEST_PROP(LatencyHistogramProperty, PercentileIsCloseToTheExactOne,
              (std::vector<uint32_t> samples)) {
  RC_PRE(!samples.empty());
  LatencyHistogram histogram;
  for (uint32_t sample : samples) histogram.Add(sample);
  std::sort(samples.begin(), samples.end());
  size_t rank = (samples.size() + 1) / 2;  // ceil(0.5 n)
  double exact = samples[rank - 1];
  double approximate = static_cast<double>(histogram.Percentile(0.5));
  RC_ASSERT(std::abs(approximate - exact) <= std::max(1.0, exact * 0.07));
}

ReplayReport SampleReport() {
  ReplayReport report;
  report.AddContext("trace: 1 file(s)");
  report.AddSessionReplayed();
  report.AddMessageSent();
  report.AddMessageSent();
  report.AddUnitCompared();
  report.AddDivergence(
      DivergenceRecord{.session = 7,
                       .origin = "a.syt record 3",
                       .unit = 0,
                       .divergence = Divergence{.kind = DivergenceKind::kRowValues,
                                                .statement = "SELECT * FROM t WHERE note = '<b>'",
                                                .where = "row 2 of 3",
                                                .captured = "('2', 'b')",
                                                .replayed = "('2', 'B')"}});
  report.AddError("22012", true);
  report.AddError("23505", false);
  report.AddLatency("SELECT * FROM t WHERE id = 1", true, 1000);
  report.AddLatency("SELECT * FROM t WHERE id = 2", false, 3000);
  return report;
}

TEST(ReplayReportTest, CountsOnlyErrorsTheCaptureDidNotHave) {
  ReplayReport report = SampleReport();
  EXPECT_EQ(report.errors(), 1u);
  EXPECT_EQ(report.errors_by_sqlstate().at("22012").captured, 1u);
  EXPECT_EQ(report.SummaryLine(), "sessions=1 messages=2 divergences=1 errors=1 stalls=0");
}

TEST(ReplayReportTest, LatencyIsGroupedByFingerprint) {
  ReplayReport report = SampleReport();
  std::vector<const FingerprintLatency*> rows = report.LatencyRows();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]->captured.count(), 1u);
  EXPECT_EQ(rows[0]->replayed.count(), 1u);
  EXPECT_EQ(rows[0]->example, "SELECT * FROM t WHERE id = 1");
}

TEST(ReplayReportTest, TextEndsWithExactlyOneSummaryLine) {
  std::string text = SampleReport().Text();
  std::string summary = "sessions=1 messages=2 divergences=1 errors=1 stalls=0\n";
  ASSERT_GE(text.size(), summary.size());
  EXPECT_EQ(text.substr(text.size() - summary.size()), summary);
  EXPECT_EQ(text.find("sessions="), text.size() - summary.size());
  EXPECT_NE(text.find("row-values in session 7"), std::string::npos);
  EXPECT_NE(text.find("captured:  ('2', 'b')"), std::string::npos);
  EXPECT_NE(text.find("replayed:  ('2', 'B')"), std::string::npos);
}

TEST(ReplayReportTest, HtmlIsSelfContainedAndEscaped) {
  std::string html = SampleReport().Html();
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("note = &#39;&lt;b&gt;&#39;"), std::string::npos);
  EXPECT_EQ(html.find("<b>'"), std::string::npos);
  // No external assets: the only URL is the SVG namespace.
  EXPECT_EQ(html.find("src="), std::string::npos);
  EXPECT_EQ(html.find("href="), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
}

}  // namespace
}  // namespace switchyard::replay
