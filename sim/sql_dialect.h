// The SQL the simulated PostgreSQL nodes understand: a small dialect over one table
// `kv (k text primary key, v text)`, plus the session, transaction, LISTEN/NOTIFY, COPY and
// prepared-statement commands a proxy deals with. Every statement is valid PostgreSQL, so the
// same text runs on a real server (docs/sim-sql-dialect.md lists it all). Parsing is pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace switchyard::sim {

// PostgreSQL type oids the dialect produces.
inline constexpr uint32_t kBoolOid = 16;
inline constexpr uint32_t kNameOid = 19;
inline constexpr uint32_t kInt8Oid = 20;
inline constexpr uint32_t kInt4Oid = 23;
inline constexpr uint32_t kTextOid = 25;
inline constexpr uint32_t kFloat8Oid = 701;
inline constexpr uint32_t kNumericOid = 1700;
inline constexpr uint32_t kVoidOid = 2278;
inline constexpr uint32_t kPgLsnOid = 3220;
// The oid the simulated `kv` table has (the first oid of user objects in a fresh cluster).
inline constexpr uint32_t kKvTableOid = 16384;

// Bounds on what one statement may hold, so a hostile query cannot grow memory without limit.
inline constexpr size_t kStatementBytesMax = size_t{1} << 20;
inline constexpr size_t kStatementsPerQueryMax = 1000;
inline constexpr int kParamNumberMax = 65535;
inline constexpr int kExpressionDepthMax = 64;
inline constexpr size_t kIdentifierBytesMax = 63;  // NAMEDATALEN - 1: longer names truncate

// A SQL error raised while parsing or running a statement: SQLSTATE, message, optional detail
// and hint. Carried in absl::Status payloads would lose the SQLSTATE; this keeps it.
struct SqlError {
  std::string sqlstate;
  std::string message;
  std::string detail;
  std::string hint;
};

// ---------------------------------------------------------------- expressions

struct Expr {
  enum class Kind {
    kNull,
    kString,    // text: the literal's value
    kNumber,    // text: the digits as written (integer or decimal)
    kBool,      // text: "t" or "f"
    kParam,     // param: 1-based
    kColumn,    // text: "k" or "v"; qualifier: "" | "kv" | "excluded"
    kFunction,  // text: the lowercased name; args
    kStar,      // count(*)'s argument
    kConcat,    // args[0] || args[1]
    kAdd,       // args[0] + args[1]
    kSubtract,  // args[0] - args[1]
    kNegate,    // - args[0]
    kCast,      // args[0]::text (text is the canonical type name)
    kCase,      // CASE WHEN args[0] THEN args[1] [WHEN ...] [ELSE args[last]] END
  };
  Kind kind = Kind::kNull;
  std::string text;
  std::string qualifier;
  int param = 0;
  std::vector<Expr> args;
  bool has_else = false;  // kCase
};

struct SelectItem {
  Expr expr;
  bool star = false;  // `*`: k, v
  std::string alias;  // "" unless AS was given
};

// How a SELECT or DML waits for row locks held by other transactions.
enum class LockWait { kWait, kNoWait, kSkipLocked };

// ---------------------------------------------------------------- statements

struct SelectStmt {
  std::vector<SelectItem> items;
  bool from_kv = false;
  std::optional<Expr> where_key;  // WHERE k = <expr>
  bool order_desc = false;
  std::optional<Expr> limit;
  bool for_update = false;  // FOR UPDATE / FOR NO KEY UPDATE / FOR SHARE / FOR KEY SHARE
  LockWait lock_wait = LockWait::kWait;
};
struct InsertStmt {
  enum class OnConflict { kError, kNothing, kUpdate };
  bool key_first = true;                // column order (k, v) or (v, k)
  std::vector<std::vector<Expr>> rows;  // each: {k, v} in table order
  OnConflict on_conflict = OnConflict::kError;
  std::optional<Expr> update_value;  // DO UPDATE SET v = <expr>
  std::vector<SelectItem> returning;
};
struct UpdateStmt {
  Expr value;                     // SET v = <expr>
  std::optional<Expr> where_key;  // absent: every row
  std::vector<SelectItem> returning;
};
struct DeleteStmt {
  bool truncate = false;  // TRUNCATE kv: every row, tag "TRUNCATE TABLE"
  std::optional<Expr> where_key;
  std::vector<SelectItem> returning;
};
struct CreateTableStmt {};
struct TransactionStmt {
  enum class Kind {
    kBegin,
    kCommit,
    kRollback,
    kSavepoint,
    kRelease,
    kRollbackTo,
    kSetTransaction
  };
  Kind kind = Kind::kBegin;
  std::optional<bool> read_only;  // READ ONLY / READ WRITE
  std::string isolation;          // "" or the ISOLATION LEVEL given, lowercased
  std::string savepoint;
  std::string tag;  // what CommandComplete says: "BEGIN", "START TRANSACTION", "COMMIT", ...
};
struct SetStmt {
  enum class Kind { kSet, kReset, kResetAll, kShow };
  Kind kind = Kind::kSet;
  bool local = false;
  std::string name;                  // lowercased
  std::optional<std::string> value;  // nullopt: DEFAULT
};
struct DiscardStmt {
  std::string what;  // "ALL", "PLANS", "SEQUENCES", "TEMP"
};
struct Statement;
struct PrepareStmt {
  std::string name;
  std::vector<uint32_t> param_types;
  std::shared_ptr<const Statement> body;  // immutable once parsed
};
struct ExecuteStmt {
  std::string name;
  std::vector<Expr> args;
};
struct DeallocateStmt {
  std::string name;  // "" with all
  bool all = false;
};
struct ListenStmt {
  std::string channel;
};
struct UnlistenStmt {
  std::string channel;  // "" with all
  bool all = false;
};
struct NotifyStmt {
  std::string channel;
  std::string payload;
};
struct CopyStmt {
  bool from = true;  // FROM STDIN, else TO STDOUT
  bool key_first = true;
};
// A statement that parsed but names something the dialect does not have (an unknown table,
// column or function): like PostgreSQL's analysis errors it fails when it runs, not before.
struct InvalidStmt {
  SqlError error;
};
struct EmptyStmt {};

struct Statement {
  std::string text;  // the statement's own source text, trimmed
  std::variant<EmptyStmt, SelectStmt, InsertStmt, UpdateStmt, DeleteStmt, CreateTableStmt,
               TransactionStmt, SetStmt, DiscardStmt, PrepareStmt, ExecuteStmt, DeallocateStmt,
               ListenStmt, UnlistenStmt, NotifyStmt, CopyStmt, InvalidStmt>
      node;
  int param_count = 0;  // highest $n used

  // The CommandComplete tag's verb, e.g. "SELECT", "INSERT", "SET".
  std::string_view Verb() const;
  // For a statement that needs a read-write transaction on a primary, the name PostgreSQL's
  // 25006 error gives it ("INSERT", "COPY FROM", "SELECT FOR UPDATE", ...); nullopt otherwise.
  std::optional<std::string_view> WriteCommandName() const;
  // May run in an aborted transaction (ROLLBACK, COMMIT, ROLLBACK TO).
  bool IsTransactionExit() const;
};

// What parsing a query string gave: its statements, or the syntax error that rejects all of it.
struct ParsedQuery {
  std::vector<Statement> statements;
  std::optional<SqlError> error;
};

// Splits `sql` on semicolons outside literals, identifiers and comments, and parses every piece.
// Empty pieces are dropped, so "" and ";" give no statements. A syntax error anywhere fails the
// whole string, as PostgreSQL's raw parser does.
ParsedQuery ParseQuery(std::string_view sql);
// Parses what a Parse message carries: at most one statement (none for an empty query).
ParsedQuery ParseOne(std::string_view sql);

// A function the dialect knows: its argument count range and result type.
struct FunctionInfo {
  std::string_view name;
  int args_min = 0;
  int args_max = 0;
  uint32_t result_oid = 0;
  bool keyword = false;  // written without parentheses: current_user, session_user, user
};
const FunctionInfo* FindFunction(std::string_view name);

// Canonical type name for a cast target or PREPARE parameter type, and its oid.
std::optional<uint32_t> TypeOidByName(std::string_view name);
std::string_view TypeName(uint32_t oid);

}  // namespace switchyard::sim
