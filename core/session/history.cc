// SessionHistory: the compacted, bounded session-state history and its replay (DESIGN.md 4).
#include "core/session/history.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "core/base/check.h"
#include "core/base/strings.h"

namespace switchyard {
namespace {

using Kind = route::SessionEffect::Kind;
using route::TxnControl;

constexpr std::string_view kRole = "role";
constexpr std::string_view kSessionAuthorization = "session_authorization";
constexpr size_t kOidBytes = sizeof(uint32_t);

// transaction_isolation / _read_only / _deferrable are re-initialised at every transaction start
// from the default_transaction_* settings: a SET of them never outlives its transaction.
bool IsTransactionScoped(std::string_view name) {
  return name == "transaction_isolation" || name == "transaction_read_only" ||
         name == "transaction_deferrable";
}

// RESET ALL leaves the GUC_NO_RESET_ALL parameters alone; of those only `role` is ever recorded.
bool SurvivesResetAll(std::string_view name) { return name == kRole; }

// A string PostgreSQL reads back as exactly `name`, whatever characters it holds.
// A string literal: 'it''s'.
std::string QuoteLiteral(std::string_view value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'') out += '\'';
    out += c;
  }
  out += '\'';
  return out;
}

std::string QuoteIdentifier(std::string_view name) {
  std::string quoted = "\"";
  for (char c : name) {
    quoted.push_back(c);
    if (c == '"') quoted.push_back('"');
  }
  quoted.push_back('"');
  return quoted;
}

bool IsExitStatement(TxnControl txn) {
  return txn == TxnControl::kCommit || txn == TxnControl::kRollback ||
         txn == TxnControl::kRollbackTo || txn == TxnControl::kPrepareTransaction;
}

constexpr uint32_t Bit(Pin pin) { return static_cast<uint32_t>(pin); }

size_t PreparedBytes(std::string_view name, const PreparedStatement& statement) {
  return name.size() + statement.text.size() + statement.param_oids.size() * kOidBytes;
}

}  // namespace

std::string PinNames(uint32_t pins) {
  static constexpr std::pair<Pin, std::string_view> kNames[] = {
      {Pin::kTempTable, "temp_table"},
      {Pin::kAdvisoryLock, "advisory_lock"},
      {Pin::kWithHoldCursor, "with_hold_cursor"},
      {Pin::kSessionAuthorization, "session_authorization"},
      {Pin::kOverflow, "overflow"},
      {Pin::kUntracked, "untracked"},
  };
  std::string names;
  for (const auto& [pin, name] : kNames) {
    if ((pins & Bit(pin)) == 0) continue;
    if (!names.empty()) names.push_back(',');
    names.append(name);
  }
  return names;
}

std::string ReplayPlan::QueryText() const {
  std::string text;
  for (const std::string& statement : statements) {
    if (!text.empty()) text.push_back('\n');
    text.append(statement);
    // A PREPARE copied from the client may end in a -- comment, which would swallow a semicolon
    // on the same line.
    text.append(statement.find("--") == std::string::npos ? ";" : "\n;");
  }
  return text;
}

SessionHistory::SessionHistory(SessionHistoryOptions options) : options_(options) {
  CHECK_GT(options_.entries_max, 0u);
  CHECK_GT(options_.bytes_max, 0u);
  CHECK_GT(options_.replies_max, 0u);
}

// ---------------------------------------------------------------------------------------------
// Client messages.

void SessionHistory::OnQuery(const route::QueryInfo& info) {
  if (!tracking_) return;
  // An unparsable string has no statements we know of: a CommandComplete for it cannot be
  // matched, which stops tracking (the server understood something the classifier did not).
  if (!info.parse_error) {
    for (const route::StatementInfo& statement : info.statements) {
      Enqueue(StatementExpect(statement, /*from_query=*/true));
    }
  }
  Enqueue(Expect{.kind = Expect::Kind::kQueryEnd, .from_query = true});
}

void SessionHistory::OnParse(std::string_view name, std::string_view query,
                             std::span<const uint32_t> param_oids) {
  if (!tracking_) return;
  Expect expect{.kind = Expect::Kind::kParse, .name = std::string(name)};
  // The unnamed statement is replaced by the next unnamed Parse: nothing to keep.
  if (!name.empty()) {
    expect.query = std::string(query);
    expect.param_oids.assign(param_oids.begin(), param_oids.end());
  }
  Enqueue(std::move(expect));
}

void SessionHistory::OnExecute(const route::QueryInfo& info) {
  if (!tracking_) return;
  if (info.statements.size() == 1 && !info.parse_error) {
    return Enqueue(StatementExpect(info.statements.front(), /*from_query=*/false));
  }
  // PostgreSQL prepares one statement or none (an empty one answers EmptyQueryResponse).
  Enqueue(Expect{.kind = Expect::Kind::kStatement,
                 .unknown = info.parse_error || !info.statements.empty()});
}

void SessionHistory::OnClose(char kind, std::string_view name) {
  if (!tracking_) return;
  Enqueue(Expect{
      .kind = Expect::Kind::kClose, .close_statement = kind == 'S', .name = std::string(name)});
}

void SessionHistory::OnSync() {
  if (!tracking_) return;
  discard_until_sync_ = false;
  Enqueue(Expect{.kind = Expect::Kind::kSync});
}

void SessionHistory::OnFunctionCall() {
  if (!tracking_) return;
  // A fast-path call (large objects in practice) changes nothing replayable; it ends with a
  // ReadyForQuery like a Query.
  Enqueue(Expect{.kind = Expect::Kind::kQueryEnd, .from_query = true});
}

SessionHistory::Expect SessionHistory::StatementExpect(const route::StatementInfo& statement,
                                                       bool from_query) {
  return Expect{.kind = Expect::Kind::kStatement,
                .from_query = from_query,
                .transaction_local = statement.transaction_local,
                .txn = statement.txn,
                .effects = statement.effects};
}

size_t SessionHistory::Bytes(const Expect& expect) {
  size_t bytes = expect.name.size() + expect.query.size() + expect.param_oids.size() * kOidBytes;
  for (const route::SessionEffect& effect : expect.effects) {
    bytes += effect.name.size() + effect.value.size();
  }
  return bytes;
}

void SessionHistory::Enqueue(Expect expect) {
  if (discard_until_sync_) return;  // the server will skip it unanswered
  queued_bytes_ += Bytes(expect);
  queue_.push_back(std::move(expect));
  if (queue_.size() > options_.replies_max || queued_bytes_ > options_.bytes_max) {
    StopTracking(Pin::kOverflow);
  }
}

bool SessionHistory::FrontIs(Expect::Kind kind) const {
  return !queue_.empty() && queue_.front().kind == kind;
}

SessionHistory::Expect SessionHistory::PopFront() {
  CHECK(!queue_.empty());
  Expect expect = std::move(queue_.front());
  queue_.pop_front();
  CHECK_LE(Bytes(expect), queued_bytes_);
  queued_bytes_ -= Bytes(expect);
  return expect;
}

// ---------------------------------------------------------------------------------------------
// Server replies. A reply that does not match what was sent means the history no longer knows
// the server's state: it stops tracking and the client stays where it is.

void SessionHistory::OnParseComplete() {
  if (!tracking_) return;
  if (!FrontIs(Expect::Kind::kParse)) return StopTracking(Pin::kUntracked);
  Expect parse = PopFront();
  if (parse.name.empty()) return;
  // Not transactional: the statement survives a rollback of the transaction it was made in.
  PutPrepared(parse.name, PreparedStatement{.origin = PreparedStatement::Origin::kProtocol,
                                            .text = std::move(parse.query),
                                            .param_oids = std::move(parse.param_oids)});
  CheckBounds();
}

void SessionHistory::OnCloseComplete() {
  if (!tracking_) return;
  if (!FrontIs(Expect::Kind::kClose)) return StopTracking(Pin::kUntracked);
  Expect close = PopFront();
  if (close.close_statement && !close.name.empty()) ErasePrepared(close.name);
}

void SessionHistory::OnCommandComplete() {
  if (!tracking_) return;
  if (!FrontIs(Expect::Kind::kStatement)) return StopTracking(Pin::kUntracked);
  ApplyStatement(PopFront());
}

void SessionHistory::OnEmptyQueryResponse() {
  if (!tracking_) return;
  // An empty Query string has no statements: its EmptyQueryResponse precedes its QueryEnd.
  if (FrontIs(Expect::Kind::kQueryEnd)) return;
  if (!FrontIs(Expect::Kind::kStatement)) return StopTracking(Pin::kUntracked);
  const Expect& front = queue_.front();
  if (front.unknown || !front.effects.empty() || front.txn != TxnControl::kNone) {
    return StopTracking(Pin::kUntracked);
  }
  PopFront();
}

void SessionHistory::OnErrorResponse() {
  if (!tracking_) return;
  // Every message before the failed one has had its reply, so the failed one is at the front,
  // or it is a Bind/Describe that has no entry and the front is what follows it.
  const bool from_query = !queue_.empty() && queue_.front().from_query;
  ApplyError(FrontIs(Expect::Kind::kStatement) ? queue_.front().txn : TxnControl::kNone);
  if (!tracking_) return;
  if (from_query) {
    // The rest of the Query string is not run; its ReadyForQuery still comes.
    while (!queue_.empty() && queue_.front().kind != Expect::Kind::kQueryEnd) PopFront();
    if (queue_.empty()) StopTracking(Pin::kUntracked);
    return;
  }
  // Everything up to the next Sync is skipped, Query messages included.
  while (!queue_.empty() && queue_.front().kind != Expect::Kind::kSync) PopFront();
  if (queue_.empty()) discard_until_sync_ = true;
}

void SessionHistory::OnReadyForQuery(char status) {
  if (!tracking_) return;
  if (!FrontIs(Expect::Kind::kSync) && !FrontIs(Expect::Kind::kQueryEnd)) {
    return StopTracking(Pin::kUntracked);
  }
  PopFront();
  if (block_ == Block::kImplicit) {
    Commit();
    block_ = Block::kIdle;
    if (!tracking_) return;
  }
  const char expected = block_ == Block::kIdle ? 'I' : block_ == Block::kExplicit ? 'T' : 'E';
  // E.g. COMMIT AND CHAIN, or a procedure that ended the transaction: we cannot tell what the
  // transaction kept.
  if (status != expected) StopTracking(Pin::kUntracked);
  if (block_ == Block::kIdle && tracking_) {
    for (const auto& [name, value] : reported_) {
      if (settings_.contains(name)) PutSetting(name, QuoteLiteral(value));
    }
    reported_.clear();
  }
  CheckBounds();
}

void SessionHistory::OnParameterStatus(std::string_view name, std::string_view value) {
  constexpr size_t kReportedMax = 64;
  if (!tracking_) return;
  std::string lowered(name);
  for (char& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (reported_.size() >= kReportedMax && !reported_.contains(lowered)) return;
  reported_[lowered] = std::string(value);
}

void SessionHistory::OnServerLost() {
  reported_.clear();
  if (!tracking_) return;
  while (!queue_.empty()) PopFront();
  discard_until_sync_ = false;
  // Uncommitted changes died with the connection, even those whose CommandComplete the client
  // saw: without the ReadyForQuery nobody knows whether the transaction committed.
  Rollback();
  block_ = Block::kIdle;
}

// ---------------------------------------------------------------------------------------------
// The transaction model.

void SessionHistory::ApplyStatement(const Expect& statement) {
  if (statement.unknown) return StopTracking(Pin::kUntracked);
  // In a failed transaction PostgreSQL refuses everything but these.
  if (block_ == Block::kFailed && !IsExitStatement(statement.txn)) {
    return StopTracking(Pin::kUntracked);
  }
  if (block_ == Block::kIdle) block_ = Block::kImplicit;
  for (const route::SessionEffect& effect : statement.effects) {
    ApplyEffect(effect, statement.transaction_local);
    if (!tracking_) return;
  }
  ApplyTxnControl(statement.txn);
  CheckBounds();
}

void SessionHistory::ApplyEffect(const route::SessionEffect& effect, bool transaction_local) {
  switch (effect.kind) {
    case Kind::kSet:
      // SET LOCAL / set_config(..., true) ends with its transaction whatever happens.
      if (!transaction_local) RecordSet(effect.name, effect.value);
      return;
    case Kind::kReset:
      if (!transaction_local) RecordReset(effect.name);
      return;
    case Kind::kResetAll:
      return PushChange(Change{.kind = Change::Kind::kResetAll});
    case Kind::kDiscardAll:
      return DiscardAll();
    case Kind::kDiscardPlans:
    case Kind::kDiscardSequences:
      return;
    case Kind::kDiscardTemp:
      // Dropping the temp tables rolls back with the transaction.
      return PushChange(Change{.kind = Change::Kind::kUnpinTemp});
    case Kind::kPrepare:
      // PostgreSQL requires a name; without one we cannot replay what the server made.
      if (effect.name.empty()) return StopTracking(Pin::kUntracked);
      // Not transactional, like a protocol Parse.
      return PutPrepared(effect.name, PreparedStatement{.text = effect.value});
    case Kind::kDeallocate:
      return ErasePrepared(effect.name);
    case Kind::kDeallocateAll:
      return ClearPrepared();
    case Kind::kListen:
      return PushChange(Change{.kind = Change::Kind::kListen, .name = effect.name});
    case Kind::kUnlisten:
      return PushChange(Change{.kind = Change::Kind::kUnlisten, .name = effect.name});
    case Kind::kUnlistenAll:
      return PushChange(Change{.kind = Change::Kind::kUnlistenAll});
    // Pins hold from the statement's success on, even if its transaction rolls back later:
    // conservative, and for temp tables deliberately so (a rolled-back CREATE TEMP leaves no
    // table, but after an unnamed ROLLBACK TO we could not always tell).
    case Kind::kPinTempTable:
      temp_pinned_in_transaction_ = true;
      pins_ |= Bit(Pin::kTempTable);
      return;
    case Kind::kPinAdvisoryLock:
      pins_ |= Bit(Pin::kAdvisoryLock);
      return;
    case Kind::kPinWithHoldCursor:
      pins_ |= Bit(Pin::kWithHoldCursor);
      return;
    case Kind::kPinSessionAuthorization:
      pins_ |= Bit(Pin::kSessionAuthorization);
      return;
  }
  CHECK(false) << "unknown session effect " << static_cast<int>(effect.kind);
}

bool SessionHistory::Recordable(const std::string& name) {
  if (name.empty()) {
    StopTracking(Pin::kUntracked);
    return false;
  }
  // SET SESSION AUTHORIZATION spelled as a parameter.
  if (name == kSessionAuthorization) pins_ |= Bit(Pin::kSessionAuthorization);
  return name != kSessionAuthorization && !IsTransactionScoped(name);
}

void SessionHistory::RecordSet(const std::string& name, const std::string& value) {
  if (!Recordable(name)) return;
  // SET name TO DEFAULT is RESET name.
  const bool reset = EqualsIgnoreCase(value, "DEFAULT");
  PushChange(Change{.kind = reset ? Change::Kind::kReset : Change::Kind::kSet,
                    .name = name,
                    .value = reset ? "" : value});
}

void SessionHistory::RecordReset(const std::string& name) {
  if (Recordable(name)) PushChange(Change{.kind = Change::Kind::kReset, .name = name});
}

// DISCARD ALL = CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; DEALLOCATE ALL;
// UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD PLANS; DISCARD TEMP; DISCARD SEQUENCES.
// PostgreSQL runs it only outside any transaction block and commits it at once, so the
// transactional parts are committed here too (a later error in the same Sync batch cannot undo it).
void SessionHistory::DiscardAll() {
  ClearPrepared();
  pins_ &= ~(Bit(Pin::kAdvisoryLock) | Bit(Pin::kWithHoldCursor) | Bit(Pin::kSessionAuthorization));
  PushChange(Change{.kind = Change::Kind::kDiscardAll});
  if (block_ == Block::kImplicit) {
    Commit();
    block_ = Block::kIdle;
  }
}

void SessionHistory::ApplyTxnControl(TxnControl txn) {
  switch (txn) {
    case TxnControl::kNone:
    case TxnControl::kSetTransaction:
      return;
    case TxnControl::kBegin:
    case TxnControl::kBeginReadOnly:
    case TxnControl::kBeginSerializable:
      // Inside a string or batch, BEGIN turns what ran before it into part of the block.
      if (block_ == Block::kImplicit) block_ = Block::kExplicit;
      return;
    case TxnControl::kCommit:
    case TxnControl::kPrepareTransaction:  // "acts the same as COMMIT as far as GUC is concerned"
      // COMMIT of a failed transaction answers ROLLBACK.
      if (block_ == Block::kFailed) {
        Rollback();
      } else {
        Commit();
      }
      block_ = Block::kIdle;
      return;
    case TxnControl::kRollback:
      Rollback();
      block_ = Block::kIdle;
      return;
    case TxnControl::kSavepoint:
      // Outside a block PostgreSQL refuses savepoints; a success means we lost track.
      if (block_ != Block::kExplicit) return StopTracking(Pin::kUntracked);
      savepoints_.push_back(changes_.size());
      return;
    case TxnControl::kRelease:
      if (block_ != Block::kExplicit) return StopTracking(Pin::kUntracked);
      return Release();
    case TxnControl::kRollbackTo:
      if (block_ != Block::kExplicit && block_ != Block::kFailed) {
        return StopTracking(Pin::kUntracked);
      }
      block_ = Block::kExplicit;
      return RollbackTo();
  }
  CHECK(false) << "unknown transaction control " << static_cast<int>(txn);
}

void SessionHistory::Release() {
  // Our stack holds every savepoint PostgreSQL still has: an empty one means it had none.
  if (savepoints_.empty()) return StopTracking(Pin::kUntracked);
  // RELEASE ends its target and every later savepoint, so the newest one we hold is gone for
  // sure; older ones may be too (the target is unknown), but keeping them only costs precision.
  savepoints_.pop_back();
}

void SessionHistory::RollbackTo() {
  if (savepoints_.empty()) return StopTracking(Pin::kUntracked);
  // Every candidate target undoes the same changes when all of them were set at the same point
  // (always so with one savepoint open). The target stays open after ROLLBACK TO.
  if (savepoints_.front() == savepoints_.back()) {
    TruncateChanges(savepoints_.front());
    return;
  }
  uncertain_ = true;
}

void SessionHistory::ApplyError(TxnControl failed) {
  switch (block_) {
    case Block::kIdle:
    case Block::kImplicit:
      // The implicit transaction of the string or batch rolls back.
      Rollback();
      block_ = Block::kIdle;
      return;
    case Block::kExplicit:
      // A COMMIT (or PREPARE TRANSACTION) that fails ends the transaction; anything else aborts
      // it and leaves it open.
      if (failed == TxnControl::kCommit || failed == TxnControl::kPrepareTransaction) {
        Rollback();
        block_ = Block::kIdle;
      } else {
        block_ = Block::kFailed;
      }
      return;
    case Block::kFailed:
      return;
  }
}

void SessionHistory::Commit() {
  if (uncertain_) return StopTracking(Pin::kUntracked);
  for (const Change& change : changes_) ApplyCommitted(change);
  TruncateChanges(0);
  savepoints_.clear();
  temp_pinned_in_transaction_ = false;
}

void SessionHistory::Rollback() {
  TruncateChanges(0);
  savepoints_.clear();
  uncertain_ = false;
  temp_pinned_in_transaction_ = false;
}

void SessionHistory::ApplyCommitted(const Change& change) {
  switch (change.kind) {
    case Change::Kind::kSet:
      return PutSetting(change.name, change.value);
    case Change::Kind::kReset:
      return EraseSetting(change.name);
    case Change::Kind::kResetAll: {
      std::vector<std::string> names;
      for (const auto& [name, setting] : settings_) {
        if (!SurvivesResetAll(name)) names.push_back(name);
      }
      for (const std::string& name : names) EraseSetting(name);
      return;
    }
    case Change::Kind::kDiscardAll:
      // SET SESSION AUTHORIZATION DEFAULT resets the role too.
      while (!settings_.empty()) EraseSetting(settings_.begin()->first);
      ClearListens();
      if (!temp_pinned_in_transaction_) pins_ &= ~Bit(Pin::kTempTable);
      return;
    case Change::Kind::kListen:
      return PutListen(change.name);
    case Change::Kind::kUnlisten:
      return EraseListen(change.name);
    case Change::Kind::kUnlistenAll:
      return ClearListens();
    case Change::Kind::kUnpinTemp:
      // A temp table made in the same transaction (before or after the DISCARD TEMP: without
      // savepoint names we do not order them) keeps the pin.
      if (!temp_pinned_in_transaction_) pins_ &= ~Bit(Pin::kTempTable);
      return;
  }
}

void SessionHistory::StopTracking(Pin reason) {
  pins_ |= Bit(reason);
  tracking_ = false;
  while (!queue_.empty()) PopFront();
  discard_until_sync_ = false;
  TruncateChanges(0);
  savepoints_.clear();
  uncertain_ = false;
  temp_pinned_in_transaction_ = false;
  block_ = Block::kIdle;
}

void SessionHistory::CheckBounds() {
  if (!tracking_) return;
  if (entries() > options_.entries_max || bytes_ > options_.bytes_max) {
    StopTracking(Pin::kOverflow);
  }
}

size_t SessionHistory::entries() const {
  return settings_.size() + prepared_.size() + listens_.size() + changes_.size() +
         savepoints_.size();
}

// ---------------------------------------------------------------------------------------------
// State mutation, with the byte count kept in step.

void SessionHistory::PushChange(Change change) {
  bytes_ += change.name.size() + change.value.size();
  changes_.push_back(std::move(change));
}

void SessionHistory::TruncateChanges(size_t size) {
  CHECK_LE(size, changes_.size());
  while (changes_.size() > size) {
    const Change& last = changes_.back();
    bytes_ -= last.name.size() + last.value.size();
    changes_.pop_back();
  }
}

void SessionHistory::PutSetting(const std::string& name, const std::string& value) {
  auto it = settings_.find(name);
  if (it != settings_.end()) {
    if (it->second.value == value) return;  // keeps its place in the replay order
    bytes_ -= name.size() + it->second.value.size();
    settings_.erase(it);
  }
  ++version_;
  settings_.emplace(name, Setting{.value = value, .seq = version_});
  bytes_ += name.size() + value.size();
}

void SessionHistory::EraseSetting(std::string_view name) {
  auto it = settings_.find(name);
  if (it == settings_.end()) return;
  bytes_ -= it->first.size() + it->second.value.size();
  settings_.erase(it);
  ++version_;
}

void SessionHistory::PutPrepared(const std::string& name, PreparedStatement statement) {
  // PostgreSQL refuses a name in use, so this replaces only after a reply we failed to match.
  ErasePrepared(name);
  ++version_;
  statement.seq = version_;
  bytes_ += PreparedBytes(name, statement);
  prepared_.emplace(name, std::move(statement));
}

void SessionHistory::ErasePrepared(std::string_view name) {
  auto it = prepared_.find(name);
  if (it == prepared_.end()) return;
  bytes_ -= PreparedBytes(it->first, it->second);
  prepared_.erase(it);
  ++version_;
}

void SessionHistory::ForgetPrepared(std::string_view name, AppliedState* server) {
  const bool was_current = server->version_ == version_;
  ErasePrepared(name);
  if (auto it = server->prepared_.find(name); it != server->prepared_.end()) {
    server->prepared_.erase(it);
  }
  if (was_current) server->version_ = version_;
}

void SessionHistory::ClearPrepared() {
  while (!prepared_.empty()) ErasePrepared(prepared_.begin()->first);
}

void SessionHistory::PutListen(const std::string& channel) {
  if (listens_.insert(channel).second) bytes_ += channel.size();
}

void SessionHistory::EraseListen(std::string_view channel) {
  auto it = listens_.find(channel);
  if (it == listens_.end()) return;
  bytes_ -= it->size();
  listens_.erase(it);
}

void SessionHistory::ClearListens() {
  while (!listens_.empty()) EraseListen(*listens_.begin());
}

// ---------------------------------------------------------------------------------------------
// Queries.

std::optional<std::string> SessionHistory::Value(std::string_view name) const {
  // The open transaction's changes, newest first, then the committed state.
  for (auto it = changes_.rbegin(); it != changes_.rend(); ++it) {
    switch (it->kind) {
      case Change::Kind::kSet:
        if (it->name == name) return it->value;
        break;
      case Change::Kind::kReset:
        if (it->name == name) return std::nullopt;
        break;
      case Change::Kind::kResetAll:
        if (!SurvivesResetAll(name)) return std::nullopt;
        break;
      case Change::Kind::kDiscardAll:
        return std::nullopt;
      default:
        break;
    }
  }
  auto it = settings_.find(name);
  if (it == settings_.end()) return std::nullopt;
  return it->second.value;
}

const PreparedStatement* SessionHistory::Prepared(std::string_view name) const {
  auto it = prepared_.find(name);
  return it == prepared_.end() ? nullptr : &it->second;
}

// ---------------------------------------------------------------------------------------------
// Replay.

bool SessionHistory::NeedsReplay(const AppliedState& server, ListenReplay listens) const {
  if (server.version_ != version_) return true;
  return listens == ListenReplay::kInclude && server.listens_ != listens_;
}

ReplayPlan SessionHistory::Plan(const AppliedState& server, ListenReplay listens) const {
  ReplayPlan plan;
  if (!NeedsReplay(server, listens)) {
    plan.after = server;
    return plan;
  }
  PlanSettings(server, &plan.statements);
  PlanPrepared(server, &plan);
  if (listens == ListenReplay::kInclude) PlanListens(server, &plan.statements);
  plan.after = Current();
  if (listens == ListenReplay::kExclude) plan.after.listens_ = server.listens_;
  return plan;
}

void SessionHistory::PlanSettings(const AppliedState& server,
                                  std::vector<std::string>* statements) const {
  using SettingRef = const std::pair<const std::string, Setting>*;
  std::vector<SettingRef> needed;
  for (const auto& entry : settings_) {
    auto it = server.settings_.find(entry.first);
    if (it == server.settings_.end() || it->second != entry.second.value) needed.push_back(&entry);
  }
  if (needed.empty() && server.settings_.size() == settings_.size()) return;
  // A SET the client made before its SET role ran with the login role's privileges; replayed
  // under another role it could fail. So a server whose role differs from the client's, or that
  // is missing any such setting, drops its role first; SET role then comes back in its place.
  auto server_role = server.settings_.find(kRole);
  auto client_role = settings_.find(kRole);
  bool reset_role = false;
  if (server_role != server.settings_.end()) {
    if (client_role == settings_.end() || client_role->second.value != server_role->second) {
      reset_role = true;
    } else {
      for (SettingRef entry : needed) {
        if (entry->second.seq < client_role->second.seq) reset_role = true;
      }
      if (reset_role) needed.push_back(&*client_role);
    }
  }
  if (reset_role) statements->push_back("RESET role");
  for (const auto& [name, value] : server.settings_) {
    if (name == kRole && reset_role) continue;
    if (!settings_.contains(name)) statements->push_back(Cat("RESET ", name));
  }
  std::sort(needed.begin(), needed.end(),
            [](SettingRef a, SettingRef b) { return a->second.seq < b->second.seq; });
  for (SettingRef entry : needed) {
    statements->push_back(Cat("SET ", entry->first, " TO ", entry->second.value));
  }
}

void SessionHistory::PlanPrepared(const AppliedState& server, ReplayPlan* plan) const {
  if (prepared_.empty() && !server.prepared_.empty()) {
    plan->statements.push_back("DEALLOCATE ALL");
  } else {
    // Gone from the client, or replaced by a new statement under the same name.
    for (const auto& [name, seq] : server.prepared_) {
      auto it = prepared_.find(name);
      if (it == prepared_.end() || it->second.seq != seq) {
        plan->statements.push_back(Cat("DEALLOCATE ", QuoteIdentifier(name)));
      }
    }
  }
  using PreparedRef = const std::pair<const std::string, PreparedStatement>*;
  std::vector<PreparedRef> needed;
  for (const auto& entry : prepared_) {
    auto it = server.prepared_.find(entry.first);
    if (it == server.prepared_.end() || it->second != entry.second.seq) needed.push_back(&entry);
  }
  std::sort(needed.begin(), needed.end(),
            [](PreparedRef a, PreparedRef b) { return a->second.seq < b->second.seq; });
  for (PreparedRef entry : needed) {
    const PreparedStatement& statement = entry->second;
    if (statement.origin == PreparedStatement::Origin::kSql) {
      plan->statements.push_back(statement.text);
    } else {
      plan->parses.push_back(ParseRequest{
          .name = entry->first, .query = statement.text, .param_oids = statement.param_oids});
    }
  }
}

void SessionHistory::PlanListens(const AppliedState& server,
                                 std::vector<std::string>* statements) const {
  if (listens_.empty() && !server.listens_.empty()) {
    statements->push_back("UNLISTEN *");
    return;
  }
  for (const std::string& channel : server.listens_) {
    if (!listens_.contains(channel))
      statements->push_back(Cat("UNLISTEN ", QuoteIdentifier(channel)));
  }
  for (const std::string& channel : listens_) {
    if (!server.listens_.contains(channel)) {
      statements->push_back(Cat("LISTEN ", QuoteIdentifier(channel)));
    }
  }
}

AppliedState SessionHistory::Current() const {
  AppliedState state;
  MarkApplied(&state);
  return state;
}

void SessionHistory::MarkApplied(AppliedState* server) const {
  if (server->version_ != version_) {
    server->version_ = version_;
    server->settings_.clear();
    for (const auto& [name, setting] : settings_) server->settings_.emplace(name, setting.value);
    server->prepared_.clear();
    for (const auto& [name, statement] : prepared_) server->prepared_.emplace(name, statement.seq);
  }
  if (server->listens_ != listens_) server->listens_ = listens_;
}

// ---------------------------------------------------------------------------------------------
// Invariants.

size_t SessionHistory::RecountBytes() const {
  size_t bytes = 0;
  for (const auto& [name, setting] : settings_) bytes += name.size() + setting.value.size();
  for (const auto& [name, statement] : prepared_) bytes += PreparedBytes(name, statement);
  for (const std::string& channel : listens_) bytes += channel.size();
  for (const Change& change : changes_) bytes += change.name.size() + change.value.size();
  return bytes;
}

void SessionHistory::CheckInvariants() const {
  CHECK_EQ(bytes_, RecountBytes());
  CHECK_EQ(pins_ & ~kPinAll, 0u);
  size_t queued = 0;
  for (const Expect& expect : queue_) queued += Bytes(expect);
  CHECK_EQ(queued, queued_bytes_);
  if (!tracking_) {
    CHECK(pinned_by(Pin::kOverflow) || pinned_by(Pin::kUntracked));
    CHECK(queue_.empty());
    CHECK(block_ == Block::kIdle);
  } else {
    CHECK_LE(entries(), options_.entries_max);
    CHECK_LE(bytes_, options_.bytes_max);
    CHECK_LE(queue_.size(), options_.replies_max);
  }
  // Everything transactional is settled outside a transaction.
  if (block_ == Block::kIdle) {
    CHECK(changes_.empty());
    CHECK(savepoints_.empty());
    CHECK(!uncertain_);
    CHECK(!temp_pinned_in_transaction_);
  }
  if (block_ == Block::kImplicit) CHECK(savepoints_.empty());
  if (discard_until_sync_) CHECK(queue_.empty());
  for (size_t i = 0; i < savepoints_.size(); ++i) {
    CHECK_LE(savepoints_[i], changes_.size());
    if (i > 0) CHECK_LE(savepoints_[i - 1], savepoints_[i]);
  }
  for (const auto& [name, setting] : settings_) {
    CHECK(!IsTransactionScoped(name)) << name;
    CHECK(name != kSessionAuthorization);
    CHECK(!EqualsIgnoreCase(setting.value, "DEFAULT")) << name;
    CHECK_LE(setting.seq, version_);
  }
  for (const auto& [name, statement] : prepared_) {
    CHECK(!name.empty());
    CHECK_LE(statement.seq, version_);
    if (statement.origin == PreparedStatement::Origin::kSql) CHECK(statement.param_oids.empty());
  }
}

}  // namespace switchyard
