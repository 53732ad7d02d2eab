// The statement classifier: SQL text in, route::QueryInfo out (statement.h), using libpg_query's
// parser (PostgreSQL 15's grammar).
//
// Read-only (DESIGN.md section 5) means: SELECT, VALUES, TABLE, SHOW or EXPLAIN; no FOR
// UPDATE/SHARE/NO KEY UPDATE/KEY SHARE and no data-modifying statement anywhere (CTEs
// included), no SELECT INTO; every function called anywhere in the tree is IMMUTABLE or STABLE
// per FunctionVolatility (unknown means volatile; nextval/setval are always volatile); nothing
// node-local (see IsNodeLocalFunction / IsNodeLocalRelation in classifier.cc: pg_backend_pid,
// pg_is_in_recovery, the LSN, WAL, txid and snapshot functions, pg_stat_*, pg_locks,
// pg_settings, currval/lastval, `SHOW transaction_read_only | in_hot_standby | ALL`, ...).
//
// Choices the statement.h contract leaves open:
//   - Transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE, ROLLBACK TO, PREPARE
//     TRANSACTION) is read_only: it changes no data; the router decides from `txn`. COMMIT
//     PREPARED / ROLLBACK PREPARED are not read_only and have txn kNone.
//   - SET, RESET, SET TRANSACTION, PREPARE, EXECUTE, DEALLOCATE, DISCARD, LISTEN, UNLISTEN,
//     NOTIFY, FETCH, MOVE, CLOSE and every other statement are not read_only.
//   - EXPLAIN without ANALYZE executes nothing and is read_only whatever it explains;
//     EXPLAIN ANALYZE is classified as the statement it runs (its effects included).
//   - DECLARE CURSOR is as read_only as its query.
//   - SET transaction_isolation / transaction_read_only / transaction_deferrable = ... act like
//     SET TRANSACTION: txn kSetTransaction, transaction_local.
//   - SET SESSION CHARACTERISTICS AS TRANSACTION ... gives kSet of default_transaction_isolation
//     ('read committed', ...), default_transaction_read_only and default_transaction_deferrable
//     ('on' / 'off').
//   - SET x FROM CURRENT sets x to the value it has: no effect.
//   - SET TIME ZONE INTERVAL '...' [qualifier] gives the value 'interval ''...''', which the
//     timezone parameter accepts; the qualifier (HOUR TO MINUTE, ...) is lost.
//   - set_config(name, value, is_local) counts when its arguments are constants: kSet (or kReset
//     for a NULL value), or nothing with transaction_local when is_local is true. With
//     non-constant arguments no effect can be recorded: the statement is simply not read-only.
//     A statement with both a local and a session-level set_config is not transaction_local.
//   - A temporary object is one made with TEMP/TEMPORARY or in a pg_temp* schema: CREATE TABLE,
//     VIEW, SEQUENCE, TYPE, FUNCTION, CREATE TABLE AS, SELECT INTO.
//   - DO and DROP OWNED invalidate functions (they may create or drop some).
//   - Effects from functions (set_config, session advisory locks) are recorded for statements
//     that run their expressions (SELECT, INSERT, UPDATE, DELETE, MERGE, CALL, COPY (query),
//     EXECUTE, CREATE TABLE AS, DECLARE, EXPLAIN ANALYZE), in source order, not for a
//     definition such as CREATE VIEW.
//   - Text whose parse tree could nest too deeply to parse safely (lexer.h, NestingBound), text
//     over kClassifyBytesMax and text with a NUL byte count as parse errors.
//
// Limitations (a replica refuses writes with SQLSTATE 25006 anyway, and the router then retries
// on the primary): operators are not checked (built-in ones are immutable or stable; a volatile
// user-defined operator is missed), nor are functions called through views, rules, triggers,
// column defaults or attribute notation (t.f for f(t)), nor what a procedure or DO block does to
// the session.
#pragma once

#include <cstddef>
#include <string_view>

#include "core/route/functions.h"
#include "core/route/statement.h"

namespace switchyard::route {

inline constexpr size_t kClassifyBytesMax = size_t{16} << 20;
// NestingBound (lexer.h) above which text is not handed to libpg_query. The parse, its protobuf
// encoding and decoding take at most about 1.9 KiB of stack per unit of the bound (measured over
// chains of operators, casts, CASE, JOIN, UNION, calls, rows, arrays, subqueries and CTEs), so
// about 1 MiB at this bound; worker threads have 8 MiB. classifier_test runs the deepest
// constructs at the bound on a 2 MiB stack. A real query needs far less: 250 `||` in a row,
// 100 nested subqueries or 500 JOINs are each still under it.
inline constexpr size_t kNestingBoundMax = 500;

// A classification with what the cache needs to know about it.
struct Classification {
  QueryInfo info;
  // The result read the value of a literal (a SET value, a set_config or current_setting
  // argument, an EXPLAIN option, a PREPARE body): text differing only in literals may classify
  // differently.
  bool depends_on_literals = false;
};

Classification ClassifyDetailed(std::string_view sql, const FunctionVolatility& functions);

inline QueryInfo Classify(std::string_view sql, const FunctionVolatility& functions) {
  return ClassifyDetailed(sql, functions).info;
}

}  // namespace switchyard::route
