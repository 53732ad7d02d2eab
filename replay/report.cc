// Collecting a replay's findings and the text report (see report.h).
#include "replay/report.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <utility>

#include "absl/strings/str_format.h"
#include "replay/statements.h"

namespace switchyard::replay {
namespace {

constexpr size_t kStatementShownMax = 160;
constexpr size_t kLatencyRowsShownMax = 20;
constexpr size_t kFingerprintCacheMax = 100'000;

std::string Shorten(std::string_view text, size_t size_max) {
  std::string out;
  for (char c : text.substr(0, size_max)) out.push_back(c == '\n' || c == '\t' ? ' ' : c);
  if (text.size() > size_max) out += "...";
  return out;
}

// Histogram bucket of a value: the value itself below 16, else its power of two and the four
// bits after the leading one.
size_t BucketOf(uint64_t us) {
  if (us < 16) return us;
  int exponent = std::bit_width(us) - 1;  // >= 4
  uint64_t mantissa = (us >> (exponent - 4)) & 15;
  return 16 + static_cast<size_t>(exponent - 4) * 16 + mantissa;
}

// The middle of a bucket's range.
int64_t BucketValue(size_t bucket) {
  if (bucket < 16) return static_cast<int64_t>(bucket);
  size_t exponent = (bucket - 16) / 16 + 4;
  uint64_t mantissa = (bucket - 16) % 16;
  uint64_t low = (16 + mantissa) << (exponent - 4);
  uint64_t width = uint64_t{1} << (exponent - 4);
  return static_cast<int64_t>(low + width / 2);
}

}  // namespace

void LatencyHistogram::Add(int64_t us) {
  size_t bucket = BucketOf(static_cast<uint64_t>(std::max<int64_t>(us, 0)));
  ++buckets_[std::min(bucket, kBuckets - 1)];
  ++count_;
}

int64_t LatencyHistogram::Percentile(double p) const {
  if (count_ == 0) return 0;
  uint64_t rank = static_cast<uint64_t>(std::ceil(p * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += buckets_[i];
    if (seen >= rank) return BucketValue(i);
  }
  return BucketValue(kBuckets - 1);
}

std::string FormatMs(int64_t us) {
  return absl::StrFormat("%d.%03d", us / 1000, std::abs(us % 1000));
}

void ReplayReport::AddDivergence(DivergenceRecord record) {
  ++divergences_total_;
  ++by_kind_[static_cast<size_t>(record.divergence.kind)];
  if (divergences_.size() < kDivergencesKeptMax) divergences_.push_back(std::move(record));
}

void ReplayReport::AddError(const std::string& sqlstate, bool captured) {
  ErrorCounts& counts = errors_[sqlstate.empty() ? "?????" : sqlstate];
  ++(captured ? counts.captured : counts.new_errors);
}

void ReplayReport::AddStall(StallRecord record) {
  ++stalls_total_;
  if (stalls_.size() < kStallsKeptMax) stalls_.push_back(std::move(record));
}

void ReplayReport::AddSessionFailure(SessionFailure failure, const std::string& sqlstate) {
  ++failures_total_;
  AddError(sqlstate, false);
  if (failures_.size() < kFailuresKeptMax) failures_.push_back(std::move(failure));
}

const std::string& ReplayReport::FingerprintOf(std::string_view statement) {
  if (fingerprint_cache_.size() >= kFingerprintCacheMax) fingerprint_cache_.clear();
  auto [it, inserted] = fingerprint_cache_.try_emplace(std::string(statement));
  if (inserted) {
    it->second = Fingerprint(statement);
    if (it->second.empty()) it->second = "text:" + Shorten(statement, kStatementShownMax);
  }
  return it->second;
}

void ReplayReport::AddLatency(std::string_view statement, bool captured, int64_t us) {
  std::string fingerprint = FingerprintOf(statement);
  if (latency_.size() >= kFingerprintsMax && latency_.count(fingerprint) == 0) {
    fingerprint = "other";
  }
  FingerprintLatency& row = latency_[fingerprint];
  if (row.fingerprint.empty()) {
    row.fingerprint = fingerprint;
    row.example = fingerprint == "other" ? "(statements beyond the tracked fingerprints)"
                                         : std::string(statement);
  }
  (captured ? row.captured : row.replayed).Add(us);
}

uint64_t ReplayReport::errors() const {
  uint64_t total = 0;
  for (const auto& [sqlstate, counts] : errors_) total += counts.new_errors;
  return total;
}

std::vector<const FingerprintLatency*> ReplayReport::LatencyRows() const {
  std::vector<const FingerprintLatency*> rows;
  for (const auto& [fingerprint, row] : latency_) rows.push_back(&row);
  std::stable_sort(rows.begin(), rows.end(), [](const auto* a, const auto* b) {
    if (a->replayed.count() != b->replayed.count())
      return a->replayed.count() > b->replayed.count();
    return a->captured.count() > b->captured.count();
  });
  return rows;
}

std::string ReplayReport::SummaryLine() const {
  return absl::StrFormat("sessions=%u messages=%u divergences=%u errors=%u stalls=%u", sessions_,
                         messages_, divergences_total_, errors(), stalls_total_);
}

uint64_t ReplayReport::fault_consequences() const {
  uint64_t total = 0;
  for (const auto& [what, count] : fault_consequences_) total += count;
  return total;
}

std::string ReplayReport::Text() const {
  std::string out;
  for (const std::string& line : context_) out += line + "\n";
  out += absl::StrFormat("sessions replayed: %u\n", sessions_);
  for (const auto& [reason, count] : skipped_) {
    out += absl::StrFormat("  not replayed: %u (%s)\n", count, reason);
  }
  out += absl::StrFormat("messages replayed: %u\n", messages_);
  out += absl::StrFormat("answer units compared: %u\n", units_compared_);
  for (const auto& [reason, count] : units_not_compared_) {
    out += absl::StrFormat("  not compared: %u (%s)\n", count, reason);
  }
  if (!fault_consequences_.empty()) {
    out += absl::StrFormat("explained by injected faults: %u\n", fault_consequences());
    for (const auto& [what, count] : fault_consequences_) {
      out += absl::StrFormat("  %u %s\n", count, what);
    }
  }
  out += absl::StrFormat("divergences: %u", divergences_total_);
  std::string kinds;
  for (size_t i = 0; i < kDivergenceKinds; ++i) {
    if (by_kind_[i] == 0) continue;
    kinds += absl::StrFormat("%s%s %u", kinds.empty() ? "" : ", ",
                             DivergenceKindName(static_cast<DivergenceKind>(i)), by_kind_[i]);
  }
  out += kinds.empty() ? "\n" : absl::StrFormat(" (%s)\n", kinds);
  for (size_t i = 0; i < divergences_.size() && i < kDivergencesShownMax; ++i) {
    const DivergenceRecord& record = divergences_[i];
    const Divergence& d = record.divergence;
    out +=
        absl::StrFormat("  #%zu %s in session %u (%s), answer %zu\n", i + 1,
                        DivergenceKindName(d.kind), record.session, record.origin, record.unit + 1);
    out += absl::StrFormat("     statement: %s\n", d.statement.empty()
                                                       ? "(unknown)"
                                                       : Shorten(d.statement, kStatementShownMax));
    if (!d.where.empty()) out += absl::StrFormat("     where:     %s\n", d.where);
    out += absl::StrFormat("     captured:  %s\n", d.captured);
    out += absl::StrFormat("     replayed:  %s\n", d.replayed);
  }
  out += absl::StrFormat("errors by SQLSTATE:%s\n", errors_.empty() ? " none" : "");
  for (const auto& [sqlstate, counts] : errors_) {
    out += absl::StrFormat("  %s  new %u, also captured %u\n", sqlstate, counts.new_errors,
                           counts.captured);
  }
  out += absl::StrFormat("stalls: %u\n", stalls_total_);
  for (const StallRecord& stall : stalls_) {
    out += absl::StrFormat(
        "  session %u: no answer for %d ms to: %s; %s\n", stall.session, stall.waited_ms,
        stall.statement.empty() ? "(unknown)" : Shorten(stall.statement, kStatementShownMax),
        stall.outcome);
  }
  if (failures_total_ > 0) {
    out += absl::StrFormat("session failures: %u\n", failures_total_);
    for (const SessionFailure& failure : failures_) {
      out += absl::StrFormat("  session %u: %s\n", failure.session, failure.what);
    }
  }
  std::vector<const FingerprintLatency*> rows = LatencyRows();
  out += "latency by statement fingerprint (ms; captured p50/p99 vs replayed p50/p99):\n";
  for (size_t i = 0; i < rows.size() && i < kLatencyRowsShownMax; ++i) {
    const FingerprintLatency& row = *rows[i];
    out += absl::StrFormat(
        "  %-16s calls %u/%u  captured %s/%s  replayed %s/%s  %s\n", row.fingerprint.substr(0, 16),
        row.captured.count(), row.replayed.count(), FormatMs(row.captured.Percentile(0.5)),
        FormatMs(row.captured.Percentile(0.99)), FormatMs(row.replayed.Percentile(0.5)),
        FormatMs(row.replayed.Percentile(0.99)), Shorten(row.example, 80));
  }
  if (rows.size() > kLatencyRowsShownMax) {
    out += absl::StrFormat("  ... %zu more fingerprints\n", rows.size() - kLatencyRowsShownMax);
  }
  out += SummaryLine() + "\n";
  return out;
}

}  // namespace switchyard::replay
