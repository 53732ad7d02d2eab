// What `switchyard trace stats` reports about a capture: its header, its sessions, its messages by
// type and direction, and its statements grouped by normalized text (libpg_query's fingerprint)
// with their latency percentiles, as the client saw them.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/trace/record.h"

namespace switchyard::app {

// Bounds, so a long or hostile capture cannot make the tool's memory grow without limit beyond
// one latency sample per statement.
inline constexpr size_t kStatementGroupsMax = 100000;       // then "(other statements)"
inline constexpr size_t kStatementTextSizeMax = 1 << 20;    // longer text is not parsed
inline constexpr size_t kFingerprintCacheSizeMax = 100000;  // distinct texts remembered
inline constexpr size_t kPendingPerSessionMax = 4096;       // pipelined Query/Sync awaiting RFQ
inline constexpr size_t kNamesPerSessionMax = 10000;        // prepared statements, portals

// One group of statements sharing a fingerprint. Latencies are in µs, percentiles by the
// nearest-rank method over the statements that got their ReadyForQuery.
struct StatementSummary {
  std::string fingerprint;  // hex, "-" when the text does not parse as SQL
  std::string text;         // normalized (literals replaced by $n), else the text as captured
  uint64_t count = 0;       // statements that completed
  uint64_t errors = 0;      // of those, how many got an ErrorResponse
  int64_t p50_us = 0;
  int64_t p90_us = 0;
  int64_t p99_us = 0;
  int64_t max_us = 0;
  int64_t total_us = 0;
};

// The nearest-rank percentile (`per_mille` of 1000) of sorted values; 0 for none.
int64_t PercentileNearestRank(const std::vector<int64_t>& sorted, int per_mille);

// Accumulates the statistics one record at a time, in file order.
class TraceStatistics {
 public:
  TraceStatistics() = default;
  TraceStatistics(const TraceStatistics&) = delete;
  TraceStatistics& operator=(const TraceStatistics&) = delete;

  void AddFile(std::string_view name, const trace::TraceHeader& header);
  void EndFile(uint64_t records);
  void Add(const trace::Record& record);

  // Statements by count (most first), then by total latency, then by text.
  std::vector<StatementSummary> Statements() const;
  void Print(std::ostream& out) const;

 private:
  // A Query, or an extended-protocol batch ended by Sync, waiting for its ReadyForQuery.
  struct Pending {
    int64_t start_us = 0;
    std::vector<std::string> texts;  // the statements it runs
    bool extended = false;
    bool failed = false;
    // An extended batch that entered COPY FROM STDIN: the server ignored its Sync, so the Sync
    // the client sends after CopyDone/CopyFail belongs to it rather than beginning a new batch.
    bool awaits_copy_sync = false;
  };
  struct Session {
    std::map<std::string, std::string> statements;  // prepared statement name -> text
    std::map<std::string, std::string> portals;     // portal name -> text
    std::vector<std::string> executed;              // texts Executed since the last Sync
    std::vector<std::string> parsed;                // texts Parsed since the last Sync
    std::deque<Pending> pending;
    bool copy_in = false;       // between CopyInResponse and the client's CopyDone/CopyFail
    bool batch_failed = false;  // an ErrorResponse answered the batch before its Sync came
  };
  struct SessionInfo {
    std::string user;  // "" until a session-open or a snapshot says
    std::string database;
    bool opened = false;         // its session-open is in the capture
    bool from_snapshot = false;  // a snapshot introduced it (capture began mid-session)
    bool closed = false;
  };
  struct Group {
    std::string fingerprint;
    std::string text;
    std::vector<int64_t> latencies_us;
    uint64_t errors = 0;
  };
  struct FileInfo {
    std::string name;
    trace::TraceHeader header;
    uint64_t records = 0;
  };
  struct MessageCount {
    uint64_t count = 0;
    uint64_t bytes = 0;
  };

  void AddSessionRecord(const trace::Record& record);
  void AddClientMessage(Session& session, int64_t time_us, std::string_view raw);
  void AddServerMessage(Session& session, int64_t time_us, std::string_view raw);
  void AddSync(Session& session, int64_t time_us);
  void Complete(Session& session, int64_t time_us);
  void Abandon(Session& session);
  void Remember(std::map<std::string, std::string>& names, const std::string& name,
                std::string text);
  Group& GroupFor(const std::string& text);
  void PrintHeader(std::ostream& out) const;
  void PrintSessions(std::ostream& out) const;
  void PrintMessages(std::ostream& out) const;
  void PrintStatements(std::ostream& out) const;

  std::vector<FileInfo> files_;
  uint64_t records_ = 0;
  int64_t time_first_us_ = -1;
  int64_t time_last_us_ = 0;
  std::map<trace::RecordKind, uint64_t> kinds_;
  uint64_t dropped_ = 0;  // the sum of the records-dropped counts
  std::map<std::pair<trace::Direction, std::string>, MessageCount> messages_;

  // Every session id seen, with who it was and how it appeared; and the protocol state of the
  // ones not yet closed.
  std::map<uint64_t, SessionInfo> sessions_;
  std::map<uint64_t, Session> live_;

  // Statements.
  std::map<std::string, Group> groups_;              // by fingerprint (or raw text)
  std::map<std::string, std::string> fingerprints_;  // text -> group key, a bounded cache
  uint64_t statements_unfinished_ = 0;               // never got their ReadyForQuery
};

}  // namespace switchyard::app
