// The replay report as one self-contained HTML page: inline style, an inline SVG latency chart,
// no scripts and no external assets, so it can be mailed or attached to a ticket as is.
#include <algorithm>
#include <string>
#include <string_view>

#include "absl/strings/str_format.h"
#include "replay/report.h"

namespace switchyard::replay {
namespace {

constexpr size_t kChartRowsMax = 15;
constexpr int kChartWidth = 760;
constexpr int kChartLabelWidth = 60;
constexpr int kChartRowHeight = 30;
constexpr size_t kLatencyRowsMax = 200;

constexpr std::string_view kStyle =
    "body{font-family:sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
    "th{background:#f0f0f0}code{white-space:pre-wrap;word-break:break-all}"
    ".bad{color:#b00020;font-weight:bold}.good{color:#1b5e20;font-weight:bold}"
    ".summary{font-family:monospace;font-size:1.1em;padding:.5em;background:#f7f7f7}";

std::string Escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

// One bar of the chart: p99 as its length, p50 as a darker inner bar.
std::string Bar(int y, const LatencyHistogram& histogram, double scale, const char* color,
                const char* dark) {
  double p50 = static_cast<double>(histogram.Percentile(0.5)) * scale;
  double p99 = static_cast<double>(histogram.Percentile(0.99)) * scale;
  return absl::StrFormat(
      "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"11\" fill=\"%s\"/>"
      "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"11\" fill=\"%s\"/>"
      "<text x=\"%.1f\" y=\"%d\" font-size=\"10\">%s / %s ms</text>",
      kChartLabelWidth, y, p99, color, kChartLabelWidth, y, p50, dark, kChartLabelWidth + p99 + 4,
      y + 9, FormatMs(histogram.Percentile(0.5)), FormatMs(histogram.Percentile(0.99)));
}

std::string Chart(const std::vector<const FingerprintLatency*>& rows) {
  size_t count = std::min(rows.size(), kChartRowsMax);
  int64_t top_us = 1;
  for (size_t i = 0; i < count; ++i) {
    top_us =
        std::max({top_us, rows[i]->captured.Percentile(0.99), rows[i]->replayed.Percentile(0.99)});
  }
  double scale = (kChartWidth - kChartLabelWidth - 140) / static_cast<double>(top_us);
  int height = static_cast<int>(count) * kChartRowHeight + 30;
  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
      "role=\"img\" aria-label=\"latency per statement fingerprint\">",
      kChartWidth, height);
  svg +=
      "<text x=\"0\" y=\"12\" font-size=\"11\">p50 (dark) and p99 (light), ms: "
      "<tspan fill=\"#555\">captured</tspan> above, "
      "<tspan fill=\"#1565c0\">replayed</tspan> below</text>";
  for (size_t i = 0; i < count; ++i) {
    int y = 24 + static_cast<int>(i) * kChartRowHeight;
    svg += absl::StrFormat("<text x=\"0\" y=\"%d\" font-size=\"11\">#%zu</text>", y + 14, i + 1);
    svg += Bar(y, rows[i]->captured, scale, "#bdbdbd", "#616161");
    svg += Bar(y + 13, rows[i]->replayed, scale, "#90caf9", "#1565c0");
  }
  return svg + "</svg>";
}

std::string Section(std::string_view title) {
  return absl::StrFormat("<h2>%s</h2>\n", Escape(title));
}

std::string Counter(uint64_t value) {
  return absl::StrFormat("<span class=\"%s\">%u</span>", value == 0 ? "good" : "bad", value);
}

std::string Overview(const ReplayReport& report) {
  std::string out;
  for (const std::string& line : report.context()) {
    out += absl::StrFormat("<p>%s</p>\n", Escape(line));
  }
  out += absl::StrFormat("<p class=\"summary\">%s</p>\n", Escape(report.SummaryLine()));
  out += absl::StrFormat(
      "<table><tr><th>sessions replayed</th><td>%u</td></tr><tr><th>messages replayed</th>"
      "<td>%u</td></tr><tr><th>answer units compared</th><td>%u</td></tr>"
      "<tr><th>divergences</th><td>%s</td></tr><tr><th>new errors</th><td>%s</td></tr>"
      "<tr><th>stalls</th><td>%s</td></tr></table>\n",
      report.sessions(), report.messages(), report.units_compared(), Counter(report.divergences()),
      Counter(report.errors()), Counter(report.stalls()));
  for (const auto& [reason, count] : report.skipped()) {
    out += absl::StrFormat("<p>not replayed: %u (%s)</p>\n", count, Escape(reason));
  }
  for (const auto& [reason, count] : report.units_not_compared()) {
    out += absl::StrFormat("<p>answer units not compared: %u (%s)</p>\n", count, Escape(reason));
  }
  return out;
}

std::string Divergences(const ReplayReport& report) {
  std::string out = Section("Divergences");
  out += "<table><tr><th>kind</th><th>count</th></tr>";
  auto by_kind = report.divergences_by_kind();
  for (size_t i = 0; i < kDivergenceKinds; ++i) {
    out += absl::StrFormat("<tr><td>%s</td><td>%u</td></tr>",
                           DivergenceKindName(static_cast<DivergenceKind>(i)), by_kind[i]);
  }
  out += "</table>\n";
  const std::vector<DivergenceRecord>& records = report.divergence_records();
  if (records.empty()) return out;
  out +=
      "<table><tr><th>#</th><th>kind</th><th>session</th><th>statement</th><th>where</th>"
      "<th>captured</th><th>replayed</th></tr>\n";
  for (size_t i = 0; i < records.size(); ++i) {
    const Divergence& d = records[i].divergence;
    out += absl::StrFormat(
        "<tr><td>%zu</td><td>%s</td><td>%u<br><small>%s, answer %zu</small></td>"
        "<td><code>%s</code></td><td>%s</td><td><code>%s</code></td><td><code>%s</code></td>"
        "</tr>\n",
        i + 1, DivergenceKindName(d.kind), records[i].session, Escape(records[i].origin),
        records[i].unit + 1, Escape(d.statement), Escape(d.where), Escape(d.captured),
        Escape(d.replayed));
  }
  return out + "</table>\n";
}

std::string ErrorsAndStalls(const ReplayReport& report) {
  std::string out = Section("Errors by SQLSTATE");
  out += "<table><tr><th>SQLSTATE</th><th>new in the replay</th><th>also captured</th></tr>";
  for (const auto& [sqlstate, counts] : report.errors_by_sqlstate()) {
    out += absl::StrFormat("<tr><td>%s</td><td>%s</td><td>%u</td></tr>", Escape(sqlstate),
                           Counter(counts.new_errors), counts.captured);
  }
  out += "</table>\n" + Section("Stalls");
  out += "<table><tr><th>session</th><th>waited (ms)</th><th>statement</th><th>outcome</th></tr>";
  for (const StallRecord& stall : report.stall_records()) {
    out += absl::StrFormat("<tr><td>%u</td><td>%d</td><td><code>%s</code></td><td>%s</td></tr>",
                           stall.session, stall.waited_ms, Escape(stall.statement),
                           Escape(stall.outcome));
  }
  out += "</table>\n";
  if (report.failures().empty()) return out;
  out += Section("Session failures") + "<ul>";
  for (const SessionFailure& failure : report.failures()) {
    out += absl::StrFormat("<li>session %u: %s</li>", failure.session, Escape(failure.what));
  }
  return out + "</ul>\n";
}

std::string Latency(const ReplayReport& report) {
  std::vector<const FingerprintLatency*> rows = report.LatencyRows();
  std::string out = Section("Latency by statement fingerprint") + Chart(rows);
  out +=
      "\n<table><tr><th>#</th><th>fingerprint</th><th>calls captured / replayed</th>"
      "<th>captured p50 / p99 (ms)</th><th>replayed p50 / p99 (ms)</th><th>statement</th></tr>";
  for (size_t i = 0; i < rows.size() && i < kLatencyRowsMax; ++i) {
    const FingerprintLatency& row = *rows[i];
    out += absl::StrFormat(
        "<tr><td>%zu</td><td><code>%s</code></td><td>%u / %u</td><td>%s / %s</td>"
        "<td>%s / %s</td><td><code>%s</code></td></tr>\n",
        i + 1, Escape(row.fingerprint), row.captured.count(), row.replayed.count(),
        FormatMs(row.captured.Percentile(0.5)), FormatMs(row.captured.Percentile(0.99)),
        FormatMs(row.replayed.Percentile(0.5)), FormatMs(row.replayed.Percentile(0.99)),
        Escape(row.example));
  }
  return out + "</table>\n";
}

}  // namespace

std::string ReplayReport::Html() const {
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">";
  out += absl::StrFormat("<title>switchyard replay report</title><style>%s</style></head><body>\n",
                         kStyle);
  out += "<h1>switchyard replay report</h1>\n";
  out += Overview(*this) + Divergences(*this) + ErrorsAndStalls(*this) + Latency(*this);
  return out + "</body></html>\n";
}

}  // namespace switchyard::replay
