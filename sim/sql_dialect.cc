// Recursive-descent parser of the simulated nodes' SQL dialect (see sql_dialect.h). Statements it
// cannot parse are syntax errors (42601) for the whole query string; statements that parse but
// name an unknown table, column, function or type become InvalidStmt and fail when they run.
#include "sim/sql_dialect.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"
#include "sim/sql_lexer.h"
#include "sim/sql_parser.h"
#include "sim/text.h"

namespace switchyard::sim {
namespace {

using sql::Token;
using sql::TokenRange;

constexpr FunctionInfo kFunctions[] = {
    {"coalesce", 1, 100, kTextOid},  // typed as its first argument
    {"count", 1, 1, kInt8Oid},
    {"current_database", 0, 0, kNameOid},
    {"current_setting", 1, 2, kTextOid},
    {"current_user", 0, 0, kNameOid, true},
    {"pg_backend_pid", 0, 0, kInt4Oid},
    {"pg_cancel_backend", 1, 1, kBoolOid},
    {"pg_current_wal_flush_lsn", 0, 0, kPgLsnOid},
    {"pg_current_wal_insert_lsn", 0, 0, kPgLsnOid},
    {"pg_current_wal_lsn", 0, 0, kPgLsnOid},
    {"pg_is_in_recovery", 0, 0, kBoolOid},
    {"pg_last_wal_receive_lsn", 0, 0, kPgLsnOid},
    {"pg_last_wal_replay_lsn", 0, 0, kPgLsnOid},
    {"pg_notify", 2, 2, kVoidOid},
    {"pg_sleep", 1, 1, kVoidOid},
    {"pg_terminate_backend", 1, 2, kBoolOid},
    {"pg_wal_lsn_diff", 2, 2, kNumericOid},
    {"pg_walfile_name", 1, 1, kTextOid},
    {"session_user", 0, 0, kNameOid, true},
    {"set_config", 3, 3, kTextOid},
    {"version", 0, 0, kTextOid},
};

struct TypeEntry {
  std::string_view name;
  uint32_t oid;
};
constexpr TypeEntry kTypes[] = {
    {"bool", kBoolOid},
    {"boolean", kBoolOid},
    {"name", kNameOid},
    {"int8", kInt8Oid},
    {"bigint", kInt8Oid},
    {"int4", kInt4Oid},
    {"int", kInt4Oid},
    {"integer", kInt4Oid},
    {"text", kTextOid},
    {"varchar", kTextOid},
    {"character varying", kTextOid},
    {"float8", kFloat8Oid},
    {"double precision", kFloat8Oid},
    {"numeric", kNumericOid},
    {"decimal", kNumericOid},
    {"void", kVoidOid},
    {"pg_lsn", kPgLsnOid},
};

}  // namespace
}  // namespace switchyard::sim

namespace switchyard::sim::sql {

std::optional<SqlError> Parser::Parse(Statement* out) {
  out->text = std::move(text_owned_);
  text_ = out->text;  // which nothing changes while the statement is parsed
  if (!ParseStatement(out)) return error_;
  if (!AtEnd()) {
    Fail();
    return error_;
  }
  out->param_count = param_count_;
  if (invalid_) out->node = InvalidStmt{*invalid_};
  return std::nullopt;
}

bool Parser::Name(std::string* out) {
  const Token& t = Peek();
  if (t.kind != Token::Kind::kIdent && t.kind != Token::Kind::kQuotedIdent) return Fail();
  *out = Take().text;
  return true;
}

// ---------------------------------------------------------------- statements
bool Parser::ParseStatement(Statement* out) {
  const Token& first = Peek();
  if (first.kind != Token::Kind::kIdent) return Fail();
  const std::string word = Take().text;
  if (word == "select") return ParseSelect(out);
  if (word == "table") return ParseTable(out);
  if (word == "insert") return ParseInsert(out);
  if (word == "update") return ParseUpdate(out);
  if (word == "delete") return ParseDelete(out);
  if (word == "truncate") return ParseTruncate(out);
  if (word == "create") return ParseCreate(out);
  if (word == "begin" || word == "start") return ParseBegin(word, out);
  if (word == "commit" || word == "end") return ParseCommit(out);
  if (word == "rollback" || word == "abort") return ParseRollback(out);
  if (word == "savepoint" || word == "release") return ParseSavepoint(word, out);
  if (word == "set") return ParseSet(out);
  if (word == "reset") return ParseReset(out);
  if (word == "show") return ParseShow(out);
  if (word == "discard") return ParseDiscard(out);
  if (word == "prepare") return ParsePrepare(out);
  if (word == "execute") return ParseExecute(out);
  if (word == "deallocate") return ParseDeallocate(out);
  if (word == "listen" || word == "unlisten" || word == "notify") return ParseAsync(word, out);
  if (word == "copy") return ParseCopy(out);
  pos_ = 0;
  return Fail();
}

bool Parser::ParseTableName() {
  std::string name;
  if (!Name(&name)) return false;
  if (name == "public" && AcceptOperator(".")) {
    if (!Name(&name)) return false;
  }
  if (name != "kv") {
    MarkInvalid(Invalid("42P01", absl::StrFormat("relation \"%s\" does not exist", name)));
  }
  return true;
}

}  // namespace switchyard::sim::sql

namespace switchyard::sim {
namespace {

ParsedQuery ParseRanges(std::vector<TokenRange>& ranges) {
  ParsedQuery parsed;
  for (TokenRange& range : ranges) {
    Statement statement;
    sql::Parser parser(std::move(range.tokens), std::move(range.text), 0);  // parsed once
    if (std::optional<SqlError> error = parser.Parse(&statement)) {
      parsed.statements.clear();
      parsed.error = std::move(error);
      return parsed;
    }
    parsed.statements.push_back(std::move(statement));
  }
  return parsed;
}

}  // namespace

ParsedQuery ParseQuery(std::string_view sql) {
  ParsedQuery parsed;
  if (sql.size() > kStatementBytesMax) {
    parsed.error = SqlError{.sqlstate = "54000", .message = "query string is too long"};
    return parsed;
  }
  std::vector<TokenRange> ranges;
  if (std::optional<SqlError> error = sql::Split(sql, &ranges)) {
    parsed.error = std::move(error);
    return parsed;
  }
  return ParseRanges(ranges);
}

ParsedQuery ParseOne(std::string_view sql) {
  ParsedQuery parsed = ParseQuery(sql);
  if (!parsed.error && parsed.statements.size() > 1) {
    parsed.statements.clear();
    parsed.error = SqlError{.sqlstate = "42601",
                            .message = "cannot insert multiple commands into a prepared statement"};
  }
  return parsed;
}

const FunctionInfo* FindFunction(std::string_view name) {
  for (const FunctionInfo& info : kFunctions) {
    if (info.name == name) return &info;
  }
  return nullptr;
}

std::optional<uint32_t> TypeOidByName(std::string_view name) {
  for (const TypeEntry& entry : kTypes) {
    if (entry.name == name) return entry.oid;
  }
  return std::nullopt;
}

std::string_view TypeName(uint32_t oid) {
  switch (oid) {
    case kBoolOid:
      return "boolean";
    case kNameOid:
      return "name";
    case kInt8Oid:
      return "bigint";
    case kInt4Oid:
      return "integer";
    case kTextOid:
      return "text";
    case kFloat8Oid:
      return "double precision";
    case kNumericOid:
      return "numeric";
    case kVoidOid:
      return "void";
    case kPgLsnOid:
      return "pg_lsn";
    default:
      return "unknown";
  }
}

std::string_view Statement::Verb() const {
  struct Visitor {
    std::string_view operator()(const EmptyStmt&) const { return ""; }
    std::string_view operator()(const SelectStmt&) const { return "SELECT"; }
    std::string_view operator()(const InsertStmt&) const { return "INSERT"; }
    std::string_view operator()(const UpdateStmt&) const { return "UPDATE"; }
    std::string_view operator()(const DeleteStmt& s) const {
      return s.truncate ? "TRUNCATE TABLE" : "DELETE";
    }
    std::string_view operator()(const CreateTableStmt&) const { return "CREATE TABLE"; }
    std::string_view operator()(const TransactionStmt& s) const { return s.tag; }
    std::string_view operator()(const SetStmt& s) const {
      switch (s.kind) {
        case SetStmt::Kind::kSet:
          return "SET";
        case SetStmt::Kind::kShow:
          return "SHOW";
        default:
          return "RESET";
      }
    }
    std::string_view operator()(const DiscardStmt& s) const {
      if (s.what == "ALL") return "DISCARD ALL";
      if (s.what == "PLANS") return "DISCARD PLANS";
      if (s.what == "SEQUENCES") return "DISCARD SEQUENCES";
      return "DISCARD TEMP";
    }
    std::string_view operator()(const PrepareStmt&) const { return "PREPARE"; }
    std::string_view operator()(const ExecuteStmt&) const { return "EXECUTE"; }
    std::string_view operator()(const DeallocateStmt& s) const {
      return s.all ? "DEALLOCATE ALL" : "DEALLOCATE";
    }
    std::string_view operator()(const ListenStmt&) const { return "LISTEN"; }
    std::string_view operator()(const UnlistenStmt&) const { return "UNLISTEN"; }
    std::string_view operator()(const NotifyStmt&) const { return "NOTIFY"; }
    std::string_view operator()(const CopyStmt&) const { return "COPY"; }
    std::string_view operator()(const InvalidStmt&) const { return ""; }
  };
  return std::visit(Visitor{}, node);
}

std::optional<std::string_view> Statement::WriteCommandName() const {
  if (std::holds_alternative<InsertStmt>(node)) return "INSERT";
  if (std::holds_alternative<UpdateStmt>(node)) return "UPDATE";
  if (const auto* d = std::get_if<DeleteStmt>(&node)) {
    return d->truncate ? "TRUNCATE TABLE" : "DELETE";
  }
  if (std::holds_alternative<CreateTableStmt>(node)) return "CREATE TABLE";
  if (const auto* c = std::get_if<CopyStmt>(&node); c && c->from) return "COPY FROM";
  if (const auto* s = std::get_if<SelectStmt>(&node); s && s->for_update) {
    return "SELECT FOR UPDATE";
  }
  return std::nullopt;
}

bool Statement::IsTransactionExit() const {
  const auto* t = std::get_if<TransactionStmt>(&node);
  if (t == nullptr) return false;
  return t->kind == TransactionStmt::Kind::kCommit || t->kind == TransactionStmt::Kind::kRollback ||
         t->kind == TransactionStmt::Kind::kRollbackTo;
}

}  // namespace switchyard::sim
