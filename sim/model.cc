// The reference model: committed history re-executed from the WAL, and per-session state.
#include "sim/model.h"

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "core/base/strings.h"
#include "core/protocol/framing.h"
#include "core/protocol/messages.h"

namespace switchyard::sim {
namespace {

bool ConsumePrefix(std::string_view* text, std::string_view prefix) {
  if (text->substr(0, prefix.size()) != prefix) return false;
  text->remove_prefix(prefix.size());
  return true;
}

// Reads a quoted literal the workload wrote ('...' without embedded quotes) off the front.
bool ConsumeLiteral(std::string_view& text, std::string* out) {
  if (!ConsumePrefix(&text, "'")) return false;
  const size_t end = text.find('\'');
  if (end == std::string_view::npos) return false;
  *out = std::string(text.substr(0, end));
  text.remove_prefix(end + 1);
  return true;
}

std::string DescribeState(const RowState& state) {
  return state ? Cat("'", *state, "'") : std::string("absent");
}

}  // namespace

std::string_view OpName(Op op) {
  switch (op) {
    case Op::kRead:
      return "read";
    case Op::kScan:
      return "scan";
    case Op::kInsert:
      return "insert";
    case Op::kUpdate:
      return "update";
    case Op::kDelete:
      return "delete";
    case Op::kBegin:
      return "begin";
    case Op::kCommit:
      return "commit";
    case Op::kRollback:
      return "rollback";
    case Op::kSet:
      return "set";
    case Op::kSetLocal:
      return "set_local";
    case Op::kShow:
      return "show";
    case Op::kSleep:
      return "sleep";
    case Op::kLockingRead:
      return "locking_read";
    case Op::kBatch:
      return "batch";
  }
  return "?";
}

std::string_view LossName(Loss loss) {
  switch (loss) {
    case Loss::kNone:
      return "none";
    case Loss::kNotRun:
      return "not_run";
    case Loss::kInFlight:
      return "in_flight";
    case Loss::kCommit:
      return "commit";
  }
  return "?";
}

bool Request::BatchWrites() const {
  return std::any_of(statements.begin(), statements.end(),
                     [](const Request& statement) { return statement.IsWrite(); });
}

Loss Answer::LossKind() const {
  // The server may have failed the statement already when the connection was lost.
  if (errors.empty() || errors.size() > 2) return Loss::kNone;
  const ErrorInfo& error = errors.back();
  if (error.fatal) return Loss::kNone;
  if (error.sqlstate == "08007") return Loss::kCommit;
  if (error.sqlstate != "08006") return Loss::kNone;
  // The proxy's own answers name it: a statement it never handed to a server.
  return error.message.starts_with("switchyard") ? Loss::kNotRun : Loss::kInFlight;
}

std::optional<char> Answer::Note(const pg::Frame& frame) {
  auto note_malformed = [&](std::string_view why) {
    if (malformed.empty()) malformed = std::string(why);
  };
  const bool completed = !tags.empty() || !errors.empty() || empty_queries > 0;
  switch (frame.type) {
    case 'T':
      if (described || completed) note_malformed("a RowDescription out of place");
      described = true;
      break;
    case 'D': {
      if (!described || completed) note_malformed("a DataRow out of place");
      if (rows.size() >= kRowsMax) {
        note_malformed("more rows than the table holds");
        break;
      }
      auto row = pg::DataRow::Decode(frame.payload);
      if (!row.ok()) {
        note_malformed("an undecodable DataRow");
        break;
      }
      rows.push_back(std::move(row->values));
      break;
    }
    case 'C': {
      if (completed) note_malformed("a second completion");
      auto complete = pg::CommandComplete::Decode(frame.payload);
      tags.push_back(complete.ok() ? complete->tag : "?");
      break;
    }
    case 'I':
      if (completed) note_malformed("a second completion");
      ++empty_queries;
      break;
    case 'Z': {
      auto ready = pg::ReadyForQuery::Decode(frame.payload);
      return ready.ok() ? ready->status : '?';
    }
    default:
      note_malformed(Cat("message '", std::string(1, frame.type), "' in a query's answer"));
  }
  return std::nullopt;
}

int64_t Answer::Affected() const {
  if (tags.empty()) return -1;
  std::string_view tag = tags.back();
  if (!ConsumePrefix(&tag, "INSERT 0 ") && !ConsumePrefix(&tag, "UPDATE ") &&
      !ConsumePrefix(&tag, "DELETE ")) {
    return -1;
  }
  int64_t n = 0;
  return absl::SimpleAtoi(absl::string_view(tag.data(), tag.size()), &n) ? n : -1;
}

// ---------------------------------------------------------------- write statements

std::string InsertSql(std::string_view key, std::string_view value) {
  return Cat("INSERT INTO kv VALUES ('", key, "', '", value, "')");
}
std::string UpdateSql(std::string_view key, std::string_view value) {
  return Cat("UPDATE kv SET v = '", value, "' WHERE k = '", key, "'");
}
std::string DeleteSql(std::string_view key) { return Cat("DELETE FROM kv WHERE k = '", key, "'"); }

std::optional<WriteStatement> ParseWriteStatement(std::string_view sql) {
  WriteStatement out;
  std::string_view text = sql;
  if (ConsumePrefix(&text, "INSERT INTO kv VALUES (")) {
    out.op = Op::kInsert;
    if (!ConsumeLiteral(text, &out.key) || !ConsumePrefix(&text, ", ") ||
        !ConsumeLiteral(text, &out.value) || text != ")") {
      return std::nullopt;
    }
    return out;
  }
  if (ConsumePrefix(&text, "UPDATE kv SET v = ")) {
    out.op = Op::kUpdate;
    if (!ConsumeLiteral(text, &out.value) || !ConsumePrefix(&text, " WHERE k = ") ||
        !ConsumeLiteral(text, &out.key) || !text.empty()) {
      return std::nullopt;
    }
    return out;
  }
  if (ConsumePrefix(&text, "DELETE FROM kv WHERE k = ")) {
    out.op = Op::kDelete;
    if (!ConsumeLiteral(text, &out.key) || !text.empty()) return std::nullopt;
    return out;
  }
  return std::nullopt;
}

std::string JoinStatements(const std::vector<std::string>& statements) {
  return absl::StrJoin(statements, "\n");
}

// ---------------------------------------------------------------- KvHistory

void KvHistory::Ingest(const KvStore& store) {
  const uint64_t total = store.records_total();
  const uint64_t first_kept = total - store.wal().size();
  // The longest prefix of the current line that `store` shares: normally all of it (a store
  // only appends), less after a promotion.
  size_t common = std::min<uint64_t>(line_.size(), total);
  while (common > 0 && common - 1 >= first_kept) {
    const Record& mine = records_[line_[common - 1]];
    const WalRecord& theirs = store.wal()[common - 1 - first_kept];
    if (mine.end_lsn == theirs.end_lsn && mine.timeline == theirs.timeline) break;
    --common;
  }
  if (common < line_.size()) Fork(common);
  while (line_.size() < total) {
    const uint64_t index = line_.size();
    if (index < first_kept) {
      problems_.push_back(Cat("WAL record ", index, " was recycled before the model read it"));
      line_.push_back(records_.size());
      records_.emplace_back();
      continue;
    }
    std::string problem = ReExecute(store.wal()[index - first_kept]);
    if (!problem.empty()) problems_.push_back(std::move(problem));
  }
}

std::vector<std::string> KvHistory::TakeProblems() {
  std::vector<std::string> problems = std::move(problems_);
  problems_.clear();
  return problems;
}

void KvHistory::Fork(size_t keep) {
  ++forks_;
  std::map<std::string, RowState> restore;
  for (size_t i = keep; i < line_.size(); ++i) {
    Record& record = records_[line_[i]];
    record.lost = true;
    for (const auto& [key, state] : record.changes) restore.emplace(key, RowState());
  }
  // A row's state on the line of `keep` records is what the last of them to change it left.
  for (auto& [key, state] : restore) {
    for (size_t i = keep; i > 0; --i) {
      const auto& changes = records_[line_[i - 1]].changes;
      if (auto it = changes.find(key); it != changes.end()) {
        state = it->second;
        break;
      }
    }
  }
  line_.resize(keep);
  Record fork;
  fork.fork = true;
  fork.changes = std::move(restore);
  Append(std::move(fork));
}

std::string KvHistory::ReExecute(const WalRecord& wal) {
  const uint64_t index = records_.size();
  std::string problem;
  std::map<std::string, RowState> touched;
  for (const std::string& sql : wal.statements) {
    std::optional<WriteStatement> write = ParseWriteStatement(sql);
    if (!write) {
      problem = Cat("WAL record ", index, " holds a statement no client sent: ", sql);
      break;
    }
    auto it = touched.find(write->key);
    const RowState before = it != touched.end() ? it->second : ValueAt(write->key, index);
    const bool must_exist = write->op != Op::kInsert;
    if (before.has_value() != must_exist) {
      problem = Cat("WAL record ", index, " applied `", sql, "` to a row that was ",
                    DescribeState(before));
      break;
    }
    touched[write->key] = write->op == Op::kDelete ? RowState() : RowState(std::move(write->value));
  }
  Record record{.statements = wal.statements,
                .origin_session = wal.origin_session,
                .end_lsn = wal.end_lsn,
                .timeline = wal.timeline};
  for (const RowChange& change : wal.changes) {
    record.changes[change.key] = change.deleted ? RowState() : change.value;
  }
  if (problem.empty() && record.changes != touched) {
    problem = Cat("WAL record ", index,
                  " changed rows its statements do not explain: ", JoinStatements(wal.statements));
  }
  // The node's own changes are the truth from here on, so one wrong record is reported once.
  line_.push_back(index);
  Append(std::move(record));
  return problem;
}

void KvHistory::Append(Record record) {
  const uint64_t position = records_.size() + 1;
  for (const auto& [key, state] : record.changes) {
    if (state) {
      table_[key] = *state;
    } else {
      table_.erase(key);
    }
    versions_[key].push_back(Version{position, state});
  }
  if (!record.statements.empty()) {
    by_statements_[JoinStatements(record.statements)].push_back(records_.size());
  }
  if (!record.fork) by_lsn_[{record.timeline, record.end_lsn}] = records_.size();
  records_.push_back(std::move(record));
}

uint64_t KvHistory::PositionOfLsn(const KvStore& store, uint64_t lsn) const {
  const std::vector<WalRecord>& wal = store.wal();
  auto it = std::upper_bound(wal.begin(), wal.end(), lsn, [](uint64_t l, const WalRecord& record) {
    return l < record.end_lsn;
  });
  while (it != wal.begin()) {
    --it;
    auto found = by_lsn_.find({it->timeline, it->end_lsn});
    if (found != by_lsn_.end()) return found->second + 1;
  }
  return 0;
}

uint64_t KvHistory::PositionOfLsn(uint64_t lsn) const {
  // End LSNs grow along the line.
  auto after = std::upper_bound(line_.begin(), line_.end(), lsn, [&](uint64_t l, uint64_t index) {
    return l < records_[index].end_lsn;
  });
  if (after == line_.begin()) return 0;
  return *std::prev(after) + 1;
}

RowState KvHistory::ValueAt(std::string_view key, uint64_t position) const {
  auto it = versions_.find(key);
  if (it == versions_.end()) return std::nullopt;
  const std::vector<Version>& versions = it->second;
  auto after =
      std::upper_bound(versions.begin(), versions.end(), position,
                       [](uint64_t p, const Version& version) { return p < version.position; });
  if (after == versions.begin()) return std::nullopt;
  return std::prev(after)->state;
}

bool KvHistory::Saw(std::string_view key, uint64_t from, uint64_t to, const RowState& state) const {
  if (ValueAt(key, from) == state) return true;
  auto it = versions_.find(key);
  if (it == versions_.end()) return false;
  for (const Version& version : it->second) {
    if (version.position > from && version.position <= to && version.state == state) return true;
  }
  return false;
}

bool KvHistory::SawPresence(std::string_view key, uint64_t from, uint64_t to, bool present) const {
  if (ValueAt(key, from).has_value() == present) return true;
  auto it = versions_.find(key);
  if (it == versions_.end()) return false;
  for (const Version& version : it->second) {
    if (version.position > from && version.position <= to && version.state.has_value() == present) {
      return true;
    }
  }
  return false;
}

std::map<std::string, std::string> KvHistory::TableAt(uint64_t position) const {
  std::map<std::string, std::string> table;
  for (const auto& [key, versions] : versions_) {
    if (RowState state = ValueAt(key, position)) table.emplace(key, std::move(*state));
  }
  return table;
}

bool KvHistory::SawTable(uint64_t from, uint64_t to,
                         const std::map<std::string, std::string>& table,
                         const std::map<std::string, RowState>& overlay) const {
  auto matches = [&](std::map<std::string, std::string> state) {
    for (const auto& [key, row] : overlay) {
      if (row) {
        state[key] = *row;
      } else {
        state.erase(key);
      }
    }
    return state == table;
  };
  // Walk forward from `from`, applying the changes of each position in order.
  std::map<std::string, std::string> state = TableAt(from);
  if (matches(state)) return true;
  std::map<uint64_t, std::vector<std::pair<std::string, RowState>>> steps;
  for (const auto& [key, versions] : versions_) {
    for (const Version& version : versions) {
      if (version.position > from && version.position <= to) {
        steps[version.position].emplace_back(key, version.state);
      }
    }
  }
  for (const auto& [position, changes] : steps) {
    for (const auto& [key, row] : changes) {
      if (row) {
        state[key] = *row;
      } else {
        state.erase(key);
      }
    }
    if (matches(state)) return true;
  }
  return false;
}

std::optional<uint64_t> KvHistory::FindRecord(const std::vector<std::string>& statements,
                                              uint64_t from, uint64_t to) const {
  auto it = by_statements_.find(JoinStatements(statements));
  if (it == by_statements_.end()) return std::nullopt;
  for (uint64_t index : it->second) {
    if (index >= from && index < to) return index;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------- SessionModel

std::string SessionModel::Show(std::string_view name) const {
  const std::string key(name);
  if (auto it = local_.find(key); it != local_.end()) return it->second;
  if (auto it = session_.find(key); it != session_.end()) return it->second;
  if (auto it = defaults_.find(key); it != defaults_.end()) return it->second;
  return "";
}

char SessionModel::StatusAfter(const Request& request, const Answer& answer) const {
  switch (answer.LossKind()) {
    case Loss::kNone:
      break;
    case Loss::kNotRun:
      // It never ran; inside a transaction the proxy now answers as for an aborted one.
      return status_ == 'I' ? 'I' : 'E';
    case Loss::kInFlight:
      // The transaction (or the one BEGIN opened) died with its connection; an autocommit
      // statement ended either way. A batch is always one implicit transaction.
      return status_ != 'I' || request.op == Op::kBegin ? 'E' : 'I';
    case Loss::kCommit:
      return 'I';
  }
  if (answer.error() != nullptr) return status_ == 'I' ? 'I' : 'E';
  switch (request.op) {
    case Op::kBegin:
      return status_ == 'I' ? 'T' : status_;
    case Op::kCommit:
    case Op::kRollback:
      return 'I';
    default:
      return status_;
  }
}

void SessionModel::Apply(const Request& request, const Answer& answer) {
  const Loss loss = answer.LossKind();
  if (loss == Loss::kCommit) {
    // Whatever the server did, the connection that had the transaction's SETs is gone, and
    // the proxy records a SET only once it sees its transaction commit: they are not replayed.
    return EndTransaction(false);
  }
  if (loss == Loss::kInFlight && status_ == 'I' && request.op == Op::kBegin) {
    status_ = 'E';
    session_at_begin_ = session_;
    return;
  }
  if (answer.error() != nullptr) {
    if (status_ == 'T') status_ = 'E';
    return;
  }
  switch (request.op) {
    case Op::kBegin:
      if (status_ == 'I') {
        status_ = 'T';
        session_at_begin_ = session_;
      }
      return;
    case Op::kCommit:
      return EndTransaction(status_ == 'T');
    case Op::kRollback:
      return EndTransaction(false);
    case Op::kSet:
      session_[request.guc] = request.value;
      local_.erase(request.guc);
      return;
    case Op::kSetLocal:
      if (status_ != 'I') local_[request.guc] = request.value;
      return;
    case Op::kInsert:
    case Op::kUpdate:
    case Op::kDelete:
      if (status_ == 'T' && answer.Affected() > 0) {
        own_writes_[request.key] = request.op == Op::kDelete ? RowState() : RowState(request.value);
        tx_statements_.push_back(request.sql);
      }
      return;
    default:
      return;
  }
}

void SessionModel::EndTransaction(bool commit) {
  if (status_ == 'I') return;
  if (!commit) session_ = session_at_begin_;
  local_.clear();
  own_writes_.clear();
  tx_statements_.clear();
  session_at_begin_.clear();
  status_ = 'I';
}

}  // namespace switchyard::sim
