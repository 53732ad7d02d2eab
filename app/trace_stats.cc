// `switchyard trace stats`: counts records, sessions and messages, and times statements from the
// client's side of the proxy. A statement starts with the client's Query, or with the Sync that
// ends its extended-protocol batch, and ends with the ReadyForQuery the proxy sends back; the
// queue of such requests per session is matched against ReadyForQuery in order, which is how
// PostgreSQL answers them, pipelined or not.
#include "app/trace_stats.h"

#include <pg_query.h>

#include <algorithm>
#include <ctime>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "app/trace_render.h"
#include "core/protocol/framing.h"
#include "core/protocol/messages.h"

namespace switchyard::app {
namespace {

using trace::Direction;
using trace::Record;

// A statement's text is kept only this long in a group and in the fingerprint cache's keys: the
// report cuts it shorter anyway.
constexpr size_t kGroupTextSizeMax = 1024;
constexpr size_t kCachedTextSizeMax = 4096;
// Users and databases listed before "... and N more".
constexpr size_t kNamesListedMax = 20;
constexpr std::string_view kOtherStatements = "(other statements)";

// The fingerprint and normalized text of one SQL text, or nothing when libpg_query cannot parse
// it. Both calls parse the text; a statement is fingerprinted once per distinct text (cached).
struct Normalized {
  std::string fingerprint;
  std::string text;
};

std::optional<Normalized> Normalize(const std::string& sql) {
  PgQueryFingerprintResult fingerprint = pg_query_fingerprint(sql.c_str());
  std::optional<Normalized> result;
  if (fingerprint.error == nullptr && fingerprint.fingerprint_str != nullptr) {
    result = Normalized{.fingerprint = fingerprint.fingerprint_str, .text = sql};
  }
  pg_query_free_fingerprint_result(fingerprint);
  if (!result.has_value()) return std::nullopt;
  PgQueryNormalizeResult normalized = pg_query_normalize(sql.c_str());
  if (normalized.error == nullptr && normalized.normalized_query != nullptr) {
    result->text = normalized.normalized_query;
  }
  pg_query_free_normalize_result(normalized);
  return result;
}

// A typed message's payload, or nothing for an untyped startup-family packet.
std::optional<std::string_view> Payload(std::string_view raw) {
  if (raw.size() < pg::kHeaderSize || raw[0] == '\0') return std::nullopt;
  return raw.substr(pg::kHeaderSize);
}

std::string Seconds(int64_t time_us) {
  return absl::StrFormat("%d.%06d", time_us / 1000000, time_us % 1000000);
}

std::string Milliseconds(int64_t time_us) {
  return absl::StrFormat("%d.%03d", time_us / 1000, time_us % 1000);
}

// "2023-11-14 22:13:20.123456 UTC" from µs since the epoch.
std::string WallClock(int64_t unix_us) {
  int64_t seconds = unix_us / 1000000;
  int64_t micros = unix_us % 1000000;
  if (micros < 0) {
    micros += 1000000;
    seconds -= 1;
  }
  const std::time_t time = static_cast<std::time_t>(seconds);
  std::tm utc{};
  if (gmtime_r(&time, &utc) == nullptr) return absl::StrFormat("%d us since the epoch", unix_us);
  char text[64];
  std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S", &utc);
  return absl::StrFormat("%s.%06d UTC", text, micros);
}

std::string Settings(const trace::KeyValues& settings) {
  if (settings.empty()) return "(none)";
  std::string out;
  for (const auto& [name, value] : settings) {
    if (!out.empty()) out += " ";
    out += name + "=" + QuoteText(value);
  }
  return out;
}

// `"alice" 3, "bob" 1`: names by count (most first), then by name.
std::string CountedNames(const std::map<std::string, uint64_t>& counts) {
  std::vector<std::pair<std::string, uint64_t>> sorted(counts.begin(), counts.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  std::string out;
  for (size_t i = 0; i < sorted.size() && i < kNamesListedMax; ++i) {
    if (!out.empty()) out += ", ";
    out += absl::StrFormat("%s %u", QuoteText(sorted[i].first), sorted[i].second);
  }
  if (sorted.size() > kNamesListedMax) {
    out += absl::StrFormat(", ... and %zu more", sorted.size() - kNamesListedMax);
  }
  return out.empty() ? "(none)" : out;
}

}  // namespace

int64_t PercentileNearestRank(const std::vector<int64_t>& sorted, int per_mille) {
  if (sorted.empty()) return 0;
  // The smallest value with at least per_mille/1000 of the values at or below it.
  const size_t rank = (static_cast<size_t>(per_mille) * sorted.size() + 999) / 1000;
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

void TraceStatistics::AddFile(std::string_view name, const trace::TraceHeader& header) {
  files_.push_back(FileInfo{.name = std::string(name), .header = header, .records = 0});
}

void TraceStatistics::EndFile(uint64_t records) {
  if (!files_.empty()) files_.back().records = records;
}

void TraceStatistics::Add(const Record& record) {
  ++records_;
  if (time_first_us_ < 0) time_first_us_ = record.time_us;
  time_last_us_ = std::max(time_last_us_, record.time_us);
  ++kinds_[record.kind()];
  if (const auto* dropped = std::get_if<trace::RecordsDropped>(&record.body)) {
    dropped_ += dropped->count;
  }
  if (const auto* message = std::get_if<trace::Message>(&record.body)) {
    MessageCount& count =
        messages_[{record.direction, std::string(MessageName(record.direction, message->bytes))}];
    ++count.count;
    count.bytes += message->bytes.size();
  }
  if (record.session != 0) AddSessionRecord(record);
}

void TraceStatistics::AddSessionRecord(const Record& record) {
  SessionInfo& info = sessions_[record.session];
  Session& session = live_[record.session];
  switch (record.kind()) {
    case trace::RecordKind::kSessionOpen: {
      const auto& open = std::get<trace::SessionOpen>(record.body);
      info.user = open.user;
      info.database = open.database;
      info.opened = true;
      break;
    }
    case trace::RecordKind::kSnapshot: {
      const auto& snapshot = std::get<trace::Snapshot>(record.body);
      info.user = snapshot.session.user;
      info.database = snapshot.session.database;
      if (!info.opened) info.from_snapshot = true;
      for (const trace::PreparedStatement& prepared : snapshot.prepared_statements) {
        if (prepared.source != trace::PreparedStatement::Source::kProtocol) continue;
        Remember(session.statements, prepared.name, prepared.query);
      }
      break;
    }
    case trace::RecordKind::kSessionClose:
      info.closed = true;
      Abandon(session);
      live_.erase(record.session);
      break;
    case trace::RecordKind::kMessage: {
      const std::string& raw = std::get<trace::Message>(record.body).bytes;
      // The client's view: what it sent and what the proxy answered.
      if (record.direction == Direction::kClientToProxy) {
        AddClientMessage(session, record.time_us, raw);
      } else if (record.direction == Direction::kProxyToClient) {
        AddServerMessage(session, record.time_us, raw);
      }
      break;
    }
    default:
      break;
  }
}

void TraceStatistics::Remember(std::map<std::string, std::string>& names, const std::string& name,
                               std::string text) {
  if (names.size() >= kNamesPerSessionMax && !names.contains(name)) return;
  names[name] = std::move(text);
}

void TraceStatistics::AddClientMessage(Session& session, int64_t time_us, std::string_view raw) {
  const std::optional<std::string_view> payload = Payload(raw);
  if (!payload.has_value()) return;
  switch (raw[0]) {
    case pg::Query::kType:
      if (auto query = pg::Query::Decode(*payload); query.ok()) {
        if (session.pending.size() >= kPendingPerSessionMax) Abandon(session);
        session.pending.push_back(Pending{.start_us = time_us, .texts = {std::move(query->sql)}});
      }
      break;
    case pg::Parse::kType:
      if (auto parse = pg::Parse::Decode(*payload); parse.ok()) {
        session.parsed.push_back(parse->query);
        Remember(session.statements, parse->name, std::move(parse->query));
      }
      break;
    case pg::Bind::kType:
      if (auto bind = pg::Bind::Decode(*payload); bind.ok()) {
        auto found = session.statements.find(bind->statement);
        Remember(session.portals, bind->portal,
                 found != session.statements.end()
                     ? found->second
                     : absl::StrFormat("<prepared statement %s: text not in the capture>",
                                       QuoteText(bind->statement)));
      }
      break;
    case pg::Execute::kType:
      if (auto execute = pg::Execute::Decode(*payload); execute.ok()) {
        auto found = session.portals.find(execute->portal);
        if (found != session.portals.end()) session.executed.push_back(found->second);
      }
      break;
    case pg::Close::kType:
      if (auto close = pg::Close::Decode(*payload); close.ok()) {
        (close->kind == 'P' ? session.portals : session.statements).erase(close->name);
      }
      break;
    case pg::Sync::kType:
      AddSync(session, time_us);
      break;
    case pg::CopyDone::kType:
    case pg::CopyFail::kType:
      session.copy_in = false;
      break;
    default:
      break;
  }
}

void TraceStatistics::AddSync(Session& session, int64_t time_us) {
  // The server ignores Sync in COPY FROM STDIN; the Sync after the copy ends belongs to the batch
  // that began it.
  if (session.copy_in) return;
  if (!session.pending.empty() && session.pending.front().awaits_copy_sync) {
    session.pending.front().awaits_copy_sync = false;
    return;
  }
  if (session.pending.size() >= kPendingPerSessionMax) Abandon(session);
  // A batch that only prepares statements is timed as those statements.
  Pending pending{
      .start_us = time_us,
      .texts = session.executed.empty() ? std::move(session.parsed) : std::move(session.executed),
      .extended = true,
      .failed = session.batch_failed};
  session.pending.push_back(std::move(pending));
  session.executed.clear();
  session.parsed.clear();
  session.batch_failed = false;
}

void TraceStatistics::AddServerMessage(Session& session, int64_t time_us, std::string_view raw) {
  if (!Payload(raw).has_value()) return;
  switch (raw[0]) {
    case 'E':  // ErrorResponse: it answers the oldest request still waiting
      if (!session.pending.empty()) {
        session.pending.front().failed = true;
      } else if (!session.executed.empty() || !session.parsed.empty()) {
        session.batch_failed = true;  // a batch answered before its Sync (after a Flush)
      }
      break;
    case 'G':  // CopyInResponse
      session.copy_in = true;
      if (!session.pending.empty() && session.pending.front().extended) {
        session.pending.front().awaits_copy_sync = true;
      }
      break;
    case pg::ReadyForQuery::kType:
      Complete(session, time_us);
      break;
    default:
      break;
  }
}

void TraceStatistics::Complete(Session& session, int64_t time_us) {
  // The ReadyForQuery that ends authentication answers no request.
  if (session.pending.empty()) return;
  Pending pending = std::move(session.pending.front());
  session.pending.pop_front();
  session.copy_in = false;
  for (const std::string& text : pending.texts) {
    Group& group = GroupFor(text);
    group.latencies_us.push_back(time_us - pending.start_us);
    if (pending.failed) ++group.errors;
  }
}

void TraceStatistics::Abandon(Session& session) {
  for (const Pending& pending : session.pending) statements_unfinished_ += pending.texts.size();
  session.pending.clear();
}

TraceStatistics::Group& TraceStatistics::GroupFor(const std::string& text) {
  auto cached = fingerprints_.find(text);
  std::string key;
  if (cached != fingerprints_.end()) {
    key = cached->second;
  } else {
    std::optional<Normalized> normalized;
    if (text.size() <= kStatementTextSizeMax) normalized = Normalize(text);
    // Text libpg_query cannot parse is grouped as it is, exactly.
    key = normalized.has_value() ? "f:" + normalized->fingerprint : "t:" + text;
    if (!groups_.contains(key) && groups_.size() >= kStatementGroupsMax) {
      key = std::string(kOtherStatements);
      normalized = Normalized{.fingerprint = "-", .text = key};
    }
    if (!groups_.contains(key)) {
      Group& group = groups_[key];
      group.fingerprint = normalized.has_value() ? normalized->fingerprint : "-";
      group.text = (normalized.has_value() ? normalized->text : text).substr(0, kGroupTextSizeMax);
    }
    if (text.size() <= kCachedTextSizeMax && fingerprints_.size() < kFingerprintCacheSizeMax) {
      fingerprints_[text] = key;
    }
  }
  return groups_.at(key);
}

std::vector<StatementSummary> TraceStatistics::Statements() const {
  std::vector<StatementSummary> summaries;
  for (const auto& [key, group] : groups_) {
    std::vector<int64_t> sorted = group.latencies_us;
    std::sort(sorted.begin(), sorted.end());
    StatementSummary summary{.fingerprint = group.fingerprint,
                             .text = group.text,
                             .count = sorted.size(),
                             .errors = group.errors};
    summary.p50_us = PercentileNearestRank(sorted, 500);
    summary.p90_us = PercentileNearestRank(sorted, 900);
    summary.p99_us = PercentileNearestRank(sorted, 990);
    summary.max_us = sorted.empty() ? 0 : sorted.back();
    for (int64_t latency : sorted) summary.total_us += latency;
    summaries.push_back(std::move(summary));
  }
  std::sort(summaries.begin(), summaries.end(), [](const auto& a, const auto& b) {
    if (a.count != b.count) return a.count > b.count;
    if (a.total_us != b.total_us) return a.total_us > b.total_us;
    return a.text < b.text;
  });
  return summaries;
}

void TraceStatistics::Print(std::ostream& out) const {
  PrintHeader(out);
  PrintSessions(out);
  PrintMessages(out);
  PrintStatements(out);
}

void TraceStatistics::PrintHeader(std::ostream& out) const {
  out << "capture\n";
  if (files_.empty()) {
    out << "  (no file header was read)\n";
    return;
  }
  const trace::TraceHeader& header = files_.front().header;
  out << absl::StrFormat("  start       %s\n", WallClock(header.capture_start_unix_us));
  out << absl::StrFormat("  proxy       %s\n", QuoteText(header.proxy_id));
  out << absl::StrFormat("  version     %u\n", header.version);
  out << absl::StrFormat("  settings    %s\n", Settings(header.settings));
  out << absl::StrFormat("  files       %zu\n", files_.size());
  for (const FileInfo& file : files_) {
    out << absl::StrFormat("    %s  %u records", file.name, file.records);
    // Files of one rotated capture share their header; say so when these do not.
    if (file.header.capture_start_unix_us != header.capture_start_unix_us ||
        file.header.proxy_id != header.proxy_id) {
      out << absl::StrFormat("  (a different capture: start %s, proxy %s)",
                             WallClock(file.header.capture_start_unix_us),
                             QuoteText(file.header.proxy_id));
    }
    out << "\n";
  }
  const auto kind_count = [this](trace::RecordKind kind) {
    auto found = kinds_.find(kind);
    return found == kinds_.end() ? uint64_t{0} : found->second;
  };
  out << absl::StrFormat("  records     %u, from %s s to %s s\n", records_,
                         Seconds(std::max<int64_t>(time_first_us_, 0)), Seconds(time_last_us_));
  out << absl::StrFormat("  events      %u markers, %u cancels, %u snapshots, %u records dropped\n",
                         kind_count(trace::RecordKind::kMarker),
                         kind_count(trace::RecordKind::kCancel),
                         kind_count(trace::RecordKind::kSnapshot), dropped_);
}

void TraceStatistics::PrintSessions(std::ostream& out) const {
  uint64_t opened = 0;
  uint64_t from_snapshot = 0;
  uint64_t closed = 0;
  std::map<std::string, uint64_t> users;
  std::map<std::string, uint64_t> databases;
  for (const auto& [id, info] : sessions_) {
    opened += info.opened ? 1 : 0;
    from_snapshot += info.from_snapshot ? 1 : 0;
    closed += info.closed ? 1 : 0;
    // A session whose beginning is outside the capture has no known user or database.
    if (info.opened || info.from_snapshot) {
      ++users[info.user];
      ++databases[info.database];
    }
  }
  out << "sessions\n";
  out << absl::StrFormat("  total       %u (%u opened, %u from snapshots, %u closed)\n",
                         sessions_.size(), opened, from_snapshot, closed);
  out << absl::StrFormat("  users       %s\n", CountedNames(users));
  out << absl::StrFormat("  databases   %s\n", CountedNames(databases));
}

void TraceStatistics::PrintMessages(std::ostream& out) const {
  out << "messages\n";
  out << absl::StrFormat("  %-14s %-24s %10s %14s\n", "direction", "type", "count", "bytes");
  std::vector<std::pair<std::pair<Direction, std::string>, MessageCount>> sorted(messages_.begin(),
                                                                                 messages_.end());
  // By direction, then the most frequent first.
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    if (a.first.first != b.first.first) return a.first.first < b.first.first;
    return a.second.count > b.second.count;
  });
  for (const auto& [key, count] : sorted) {
    out << absl::StrFormat("  %-14s %-24s %10u %14u\n", trace::DirectionName(key.first), key.second,
                           count.count, count.bytes);
  }
}

void TraceStatistics::PrintStatements(std::ostream& out) const {
  out << "statements (latency in ms, from the client's Query or Sync to the ReadyForQuery "
         "answering it)\n";
  out << absl::StrFormat("  %8s %7s %10s %10s %10s %10s  %-16s  %s\n", "count", "errors", "p50",
                         "p90", "p99", "max", "fingerprint", "statement");
  for (const StatementSummary& summary : Statements()) {
    out << absl::StrFormat(
        "  %8u %7u %10s %10s %10s %10s  %-16s  %s\n", summary.count, summary.errors,
        Milliseconds(summary.p50_us), Milliseconds(summary.p90_us), Milliseconds(summary.p99_us),
        Milliseconds(summary.max_us), summary.fingerprint, QuoteText(summary.text));
  }
  uint64_t unfinished = statements_unfinished_;
  for (const auto& [id, session] : live_) {
    for (const Pending& pending : session.pending) unfinished += pending.texts.size();
  }
  if (unfinished > 0) {
    out << absl::StrFormat(
        "  %u statement(s) got no ReadyForQuery before the session or the "
        "capture ended\n",
        unfinished);
  }
}

}  // namespace switchyard::app
