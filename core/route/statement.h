// What the proxy needs to know about one SQL statement: where it may run (DESIGN.md section 5)
// and what it does to the session state that follows a client across server connections
// (section 4). The classifier (core/route/classifier.h) produces it; the router and the
// session history (core/session/history.h) consume it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace switchyard::route {

// Transaction control, as far as routing and the session history care.
enum class TxnControl : uint8_t {
  kNone,
  kBegin,              // BEGIN / START TRANSACTION, read-write (or default)
  kBeginReadOnly,      // BEGIN READ ONLY / START TRANSACTION READ ONLY (not SERIALIZABLE)
  kBeginSerializable,  // BEGIN ... ISOLATION LEVEL SERIALIZABLE (any access mode)
  kCommit,             // COMMIT / END / COMMIT PREPARED is not this: that is a plain write
  kRollback,           // ROLLBACK / ABORT
  kSavepoint,
  kRelease,
  kRollbackTo,
  kPrepareTransaction,  // PREPARE TRANSACTION 'x': ends the transaction
  kSetTransaction,      // SET TRANSACTION ... (inside a transaction)
};

// A change to the replayable session state, or a reason the session cannot be replayed.
struct SessionEffect {
  enum class Kind : uint8_t {
    kSet,               // SET [SESSION] name = value; set_config(name, value, false)
    kReset,             // RESET name
    kResetAll,          // RESET ALL
    kDiscardAll,        // DISCARD ALL
    kDiscardPlans,      // DISCARD PLANS
    kDiscardTemp,       // DISCARD TEMP
    kDiscardSequences,  // DISCARD SEQUENCES
    kPrepare,           // PREPARE name [(types)] AS ...: `name`, and `text` is the whole statement
    kDeallocate,        // DEALLOCATE [PREPARE] name
    kDeallocateAll,     // DEALLOCATE [PREPARE] ALL
    kListen,            // LISTEN channel (`name`)
    kUnlisten,          // UNLISTEN channel
    kUnlistenAll,       // UNLISTEN *
    // State that cannot be replayed: the client is pinned to the server connection holding it.
    kPinTempTable,            // CREATE TEMP TABLE/VIEW/SEQUENCE, or CREATE TABLE pg_temp.x
    kPinAdvisoryLock,         // pg_advisory_lock / pg_try_advisory_lock (session-level, any arity)
    kPinWithHoldCursor,       // DECLARE ... WITH HOLD
    kPinSessionAuthorization  // SET SESSION AUTHORIZATION (RESET SESSION AUTHORIZATION too)
  };
  Kind kind = Kind::kSet;
  // kSet/kReset: the parameter name, lower-cased (quoted identifiers kept as written).
  // kPrepare/kDeallocate: the statement name. kListen/kUnlisten: the channel.
  std::string name;
  // kSet: the value as SQL text that re-creates it in `SET name TO <value>` (e.g. "'UTC'",
  // "public, \"My Schema\"", "DEFAULT"). kPrepare: the whole PREPARE statement's text.
  std::string value;
  friend bool operator==(const SessionEffect&, const SessionEffect&) = default;
};

// One top-level statement's classification.
struct StatementInfo {
  // May run on a replica (DESIGN.md section 5, "What read-only means"). False when unknown.
  bool read_only = false;
  TxnControl txn = TxnControl::kNone;
  // kSavepoint / kRelease / kRollbackTo: the savepoint's name (lower-cased unless quoted).
  std::string savepoint;
  // SET LOCAL / SET TRANSACTION / set_config(..., true): no lasting effect.
  bool transaction_local = false;
  // CREATE/ALTER/DROP FUNCTION or PROCEDURE, ALTER FUNCTION ... RENAME, DROP SCHEMA, DROP
  // EXTENSION, CREATE EXTENSION: anything that may change pg_proc volatility.
  bool invalidates_functions = false;
  // FETCH / MOVE / CLOSE of a cursor: it must go where the cursor is. `cursor` is its name
  // ("" for CLOSE ALL).
  bool cursor_operation = false;
  std::string cursor;
  // DECLARE name CURSOR (without HOLD): a cursor that lives until its transaction ends.
  bool declares_cursor = false;
  // Changes to the session state, in the order the statement makes them.
  std::vector<SessionEffect> effects;
  friend bool operator==(const StatementInfo&, const StatementInfo&) = default;
};

// A whole Query string (or one Parse's text): one entry per top-level statement, in order, so
// the session history can match each CommandComplete to its statement.
struct QueryInfo {
  // Every statement may run on a replica (and there is at least one).
  bool read_only = false;
  // Could not be parsed: routed to the primary, no effects assumed (PostgreSQL will report the
  // syntax error itself).
  bool parse_error = false;
  // A leading `/* switchyard: primary */` comment.
  bool primary_hint = false;
  std::vector<StatementInfo> statements;
  friend bool operator==(const QueryInfo&, const QueryInfo&) = default;
};

}  // namespace switchyard::route
