// What a replay found, collected while it runs and rendered at its end as text (ending with the
// one summary line `sessions=S messages=M divergences=D errors=E stalls=K`) or as a
// self-contained HTML page. Shared by every replay target.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "replay/compare.h"

namespace switchyard::replay {

// A bounded latency histogram: 16 buckets per power of two (about 6% resolution), any range.
class LatencyHistogram {
 public:
  void Add(int64_t us);
  uint64_t count() const { return count_; }
  // The value below which a fraction `p` (0..1] of the samples lie, µs; 0 when empty.
  int64_t Percentile(double p) const;

 private:
  static constexpr size_t kBuckets = 16 + 44 * 16;
  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0;
};

struct DivergenceRecord {
  uint64_t session = 0;
  std::string origin;  // where the session is in the trace
  size_t unit = 0;     // the captured answer unit, 0-based
  Divergence divergence;
};

struct StallRecord {
  uint64_t session = 0;
  std::string statement;
  int64_t waited_ms = 0;
  std::string outcome;  // "cancelled", "connection closed: ..."
};

struct SessionFailure {
  uint64_t session = 0;
  std::string what;
};

struct FingerprintLatency {
  std::string fingerprint;  // libpg_query's, or "text:" + the statement when it does not parse
  std::string example;      // the first statement seen with it
  LatencyHistogram captured;
  LatencyHistogram replayed;
};

struct ErrorCounts {
  uint64_t captured = 0;  // also in the capture, at the same place
  uint64_t new_errors = 0;
};

class ReplayReport {
 public:
  // Kept in detail; beyond these only counted.
  static constexpr size_t kDivergencesKeptMax = 50;
  static constexpr size_t kStallsKeptMax = 50;
  static constexpr size_t kFailuresKeptMax = 50;
  // Statement fingerprints tracked for latency; later ones are counted under "other".
  static constexpr size_t kFingerprintsMax = 5000;
  // Divergences shown in detail by the text report.
  static constexpr size_t kDivergencesShownMax = 10;

  // Lines printed first (files read, target, options).
  void AddContext(std::string line) { context_.push_back(std::move(line)); }

  void AddSessionReplayed() { ++sessions_; }
  void AddSessionSkipped(const std::string& reason) { ++skipped_[reason]; }
  void AddMessageSent() { ++messages_; }
  void AddUnitCompared() { ++units_compared_; }
  void AddUnitNotCompared(const std::string& reason) { ++units_not_compared_[reason]; }
  void AddDivergence(DivergenceRecord record);
  void AddError(const std::string& sqlstate, bool captured);
  void AddStall(StallRecord record);
  // A session that could not go on (login refused, connection lost): counted as an error with
  // `sqlstate`.
  void AddSessionFailure(SessionFailure failure, const std::string& sqlstate);
  void AddLatency(std::string_view statement, bool captured, int64_t us);
  // Under fault injection (--target sim): an answer unit, or a session's end, that a lost server
  // connection explains (08006/08007, then 25P02 until the transaction ends). Neither a
  // divergence nor an error.
  void AddFaultConsequence(const std::string& what) { ++fault_consequences_[what]; }

  uint64_t sessions() const { return sessions_; }
  uint64_t messages() const { return messages_; }
  uint64_t divergences() const { return divergences_total_; }
  // Errors of the replay that the capture did not have at the same place.
  uint64_t errors() const;
  uint64_t stalls() const { return stalls_total_; }
  uint64_t units_compared() const { return units_compared_; }
  uint64_t fault_consequences() const;
  const std::vector<std::string>& context() const { return context_; }
  const std::map<std::string, uint64_t>& skipped() const { return skipped_; }
  const std::map<std::string, uint64_t>& units_not_compared() const { return units_not_compared_; }
  const std::vector<SessionFailure>& failures() const { return failures_; }
  const std::vector<DivergenceRecord>& divergence_records() const { return divergences_; }
  const std::vector<StallRecord>& stall_records() const { return stalls_; }
  const std::map<std::string, ErrorCounts>& errors_by_sqlstate() const { return errors_; }
  std::array<uint64_t, kDivergenceKinds> divergences_by_kind() const { return by_kind_; }
  // Fingerprints by number of replayed calls, most first.
  std::vector<const FingerprintLatency*> LatencyRows() const;

  // `sessions=S messages=M divergences=D errors=E stalls=K`
  std::string SummaryLine() const;
  std::string Text() const;
  std::string Html() const;  // report_html.cc

 private:
  const std::string& FingerprintOf(std::string_view statement);

  std::vector<std::string> context_;
  uint64_t sessions_ = 0;
  std::map<std::string, uint64_t> skipped_;
  uint64_t messages_ = 0;
  uint64_t units_compared_ = 0;
  std::map<std::string, uint64_t> units_not_compared_;
  std::map<std::string, uint64_t> fault_consequences_;
  uint64_t divergences_total_ = 0;
  std::array<uint64_t, kDivergenceKinds> by_kind_{};
  std::vector<DivergenceRecord> divergences_;
  std::map<std::string, ErrorCounts> errors_;
  uint64_t stalls_total_ = 0;
  std::vector<StallRecord> stalls_;
  uint64_t failures_total_ = 0;
  std::vector<SessionFailure> failures_;
  std::map<std::string, FingerprintLatency> latency_;     // by fingerprint
  std::map<std::string, std::string> fingerprint_cache_;  // statement text -> fingerprint
};

// Milliseconds with three decimals ("12.345").
std::string FormatMs(int64_t us);

}  // namespace switchyard::replay
