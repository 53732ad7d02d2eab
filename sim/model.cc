// The reference model: committed history re-executed from the WAL, and per-session state.
#include "sim/model.h"

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "core/base/strings.h"

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
  }
  return "?";
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

std::vector<std::string> KvHistory::Ingest(const KvStore& store) {
  std::vector<std::string> problems;
  const uint64_t total = store.records_total();
  const uint64_t first_kept = total - store.wal().size();
  while (records_.size() < total) {
    const uint64_t index = records_.size();
    if (index < first_kept) {
      problems.push_back(Cat("WAL record ", index, " was recycled before the model read it"));
      records_.emplace_back();
      continue;
    }
    std::string problem = ReExecute(store.wal()[index - first_kept], index);
    if (!problem.empty()) problems.push_back(std::move(problem));
  }
  return problems;
}

std::string KvHistory::ReExecute(const WalRecord& wal, uint64_t index) {
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
  Record record{wal.statements, wal.origin_session};
  std::map<std::string, RowState> changes;
  for (const RowChange& change : wal.changes) {
    changes[change.key] = change.deleted ? RowState() : change.value;
  }
  if (problem.empty() && changes != touched) {
    problem = Cat("WAL record ", index,
                  " changed rows its statements do not explain: ", JoinStatements(wal.statements));
  }
  // The node's own changes are the truth from here on, so one wrong record is reported once.
  const uint64_t position = index + 1;
  for (auto& [key, state] : changes) {
    if (state) {
      table_[key] = *state;
    } else {
      table_.erase(key);
    }
    versions_[key].push_back(Version{position, state});
  }
  by_statements_[JoinStatements(record.statements)].push_back(index);
  records_.push_back(std::move(record));
  return problem;
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
