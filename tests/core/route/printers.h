// Readable GoogleTest output for classifications, and builders for expected ones.
#pragma once

#include <initializer_list>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "core/route/statement.h"

namespace switchyard::route {

inline const char* KindName(SessionEffect::Kind kind) {
  using Kind = SessionEffect::Kind;
  switch (kind) {
    case Kind::kSet:
      return "Set";
    case Kind::kReset:
      return "Reset";
    case Kind::kResetAll:
      return "ResetAll";
    case Kind::kDiscardAll:
      return "DiscardAll";
    case Kind::kDiscardPlans:
      return "DiscardPlans";
    case Kind::kDiscardTemp:
      return "DiscardTemp";
    case Kind::kDiscardSequences:
      return "DiscardSequences";
    case Kind::kPrepare:
      return "Prepare";
    case Kind::kDeallocate:
      return "Deallocate";
    case Kind::kDeallocateAll:
      return "DeallocateAll";
    case Kind::kListen:
      return "Listen";
    case Kind::kUnlisten:
      return "Unlisten";
    case Kind::kUnlistenAll:
      return "UnlistenAll";
    case Kind::kPinTempTable:
      return "PinTempTable";
    case Kind::kPinAdvisoryLock:
      return "PinAdvisoryLock";
    case Kind::kPinWithHoldCursor:
      return "PinWithHoldCursor";
    case Kind::kPinSessionAuthorization:
      return "PinSessionAuthorization";
  }
  return "?";
}

inline void PrintTo(const SessionEffect& effect, std::ostream* os) {
  *os << KindName(effect.kind);
  if (!effect.name.empty() || !effect.value.empty()) {
    *os << "(" << effect.name << (effect.value.empty() ? "" : " = ") << effect.value << ")";
  }
}

inline void PrintTo(const StatementInfo& info, std::ostream* os) {
  *os << "{" << (info.read_only ? "read-only" : "write") << " txn=" << static_cast<int>(info.txn);
  if (!info.savepoint.empty()) *os << " savepoint=" << info.savepoint;
  if (info.transaction_local) *os << " transaction_local";
  if (info.invalidates_functions) *os << " invalidates_functions";
  if (info.cursor_operation) *os << " cursor_operation(" << info.cursor << ")";
  if (info.declares_cursor) *os << " declares_cursor";
  for (const SessionEffect& effect : info.effects) {
    *os << " ";
    PrintTo(effect, os);
  }
  *os << "}";
}

inline void PrintTo(const QueryInfo& info, std::ostream* os) {
  *os << "QueryInfo{" << (info.read_only ? "read-only" : "write");
  if (info.parse_error) *os << " parse_error";
  if (info.primary_hint) *os << " primary_hint";
  for (const StatementInfo& statement : info.statements) {
    *os << " ";
    PrintTo(statement, os);
  }
  *os << "}";
}

namespace expect {

inline StatementInfo Read() { return StatementInfo{.read_only = true}; }
inline StatementInfo Write() { return StatementInfo{}; }

inline StatementInfo Txn(TxnControl txn, bool read_only = true) {
  return StatementInfo{.read_only = read_only, .txn = txn};
}

inline StatementInfo Savepoint(TxnControl txn, std::string name) {
  return StatementInfo{.read_only = true, .txn = txn, .savepoint = std::move(name)};
}

inline StatementInfo With(StatementInfo info, std::initializer_list<SessionEffect> effects) {
  info.effects.insert(info.effects.end(), effects.begin(), effects.end());
  return info;
}

inline StatementInfo Local(StatementInfo info) {
  info.transaction_local = true;
  return info;
}

inline StatementInfo Invalidates(StatementInfo info) {
  info.invalidates_functions = true;
  return info;
}

inline StatementInfo Cursor(std::string name) {
  return StatementInfo{.cursor_operation = true, .cursor = std::move(name)};
}

inline SessionEffect Effect(SessionEffect::Kind kind, std::string name = {},
                            std::string value = {}) {
  return SessionEffect{.kind = kind, .name = std::move(name), .value = std::move(value)};
}

inline SessionEffect Set(std::string name, std::string value) {
  return Effect(SessionEffect::Kind::kSet, std::move(name), std::move(value));
}

// The QueryInfo of these statements: read-only when there are some and all are.
inline QueryInfo Query(std::vector<StatementInfo> statements) {
  QueryInfo info;
  info.read_only = !statements.empty();
  for (const StatementInfo& statement : statements) info.read_only &= statement.read_only;
  info.statements = std::move(statements);
  return info;
}

inline QueryInfo Hinted(QueryInfo info) {
  info.primary_hint = true;
  return info;
}

inline QueryInfo ParseError() { return QueryInfo{.parse_error = true}; }

}  // namespace expect
}  // namespace switchyard::route
