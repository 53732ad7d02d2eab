// The dialect's session statements: transactions and savepoints, SET/RESET/SHOW, DISCARD,
// PREPARE/EXECUTE/DEALLOCATE, LISTEN/UNLISTEN/NOTIFY.
#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/str_format.h"
#include "sim/sql_parser.h"
#include "sim/text.h"

namespace switchyard::sim::sql {

// ---------------------------------------------------------------- transactions
bool Parser::ParseModes(TransactionStmt* s) {
  bool first = true;
  while (!AtEnd()) {
    if (!first) AcceptOperator(",");
    first = false;
    if (AcceptKeyword("read")) {
      if (AcceptKeyword("only")) {
        s->read_only = true;
      } else if (AcceptKeyword("write")) {
        s->read_only = false;
      } else {
        return Fail();
      }
    } else if (AcceptKeyword("isolation")) {
      if (!ExpectKeyword("level")) return false;
      if (AcceptKeyword("serializable")) {
        s->isolation = "serializable";
      } else if (AcceptKeyword("repeatable")) {
        if (!ExpectKeyword("read")) return false;
        s->isolation = "repeatable read";
      } else if (AcceptKeyword("read")) {
        if (AcceptKeyword("committed")) {
          s->isolation = "read committed";
        } else if (AcceptKeyword("uncommitted")) {
          s->isolation = "read uncommitted";
        } else {
          return Fail();
        }
      } else {
        return Fail();
      }
    } else if (AcceptKeyword("not")) {
      if (!ExpectKeyword("deferrable")) return false;
    } else if (!AcceptKeyword("deferrable")) {
      return Fail();
    }
  }
  return true;
}

bool Parser::ParseBegin(const std::string& word, Statement* out) {
  TransactionStmt s{.kind = TransactionStmt::Kind::kBegin};
  if (word == "start") {
    if (!ExpectKeyword("transaction")) return false;
    s.tag = "START TRANSACTION";
  } else {
    if (!AcceptKeyword("work")) AcceptKeyword("transaction");
    s.tag = "BEGIN";
  }
  if (!ParseModes(&s)) return false;
  out->node = std::move(s);
  return true;
}

bool Parser::ParseCommit(Statement* out) {
  if (!AcceptKeyword("work")) AcceptKeyword("transaction");
  if (AcceptKeyword("and") && (!ExpectKeyword("no") || !ExpectKeyword("chain"))) return false;
  out->node = TransactionStmt{.kind = TransactionStmt::Kind::kCommit, .tag = "COMMIT"};
  return true;
}

bool Parser::ParseRollback(Statement* out) {
  if (!AcceptKeyword("work")) AcceptKeyword("transaction");
  TransactionStmt s{.kind = TransactionStmt::Kind::kRollback, .tag = "ROLLBACK"};
  if (AcceptKeyword("to")) {
    AcceptKeyword("savepoint");
    s.kind = TransactionStmt::Kind::kRollbackTo;
    if (!Name(&s.savepoint)) return false;
  } else if (AcceptKeyword("and") && (!ExpectKeyword("no") || !ExpectKeyword("chain"))) {
    return false;
  }
  out->node = std::move(s);
  return true;
}

bool Parser::ParseSavepoint(const std::string& word, Statement* out) {
  TransactionStmt s;
  if (word == "savepoint") {
    s.kind = TransactionStmt::Kind::kSavepoint;
    s.tag = "SAVEPOINT";
  } else {
    AcceptKeyword("savepoint");
    s.kind = TransactionStmt::Kind::kRelease;
    s.tag = "RELEASE";
  }
  if (!Name(&s.savepoint)) return false;
  out->node = std::move(s);
  return true;
}

// ---------------------------------------------------------------- session state
// A GUC name: identifiers joined by dots (custom options are "prefix.name").
bool Parser::ParseGucName(std::string* name) {
  if (!Name(name)) return false;
  while (AcceptOperator(".")) {
    std::string part;
    if (!Name(&part)) return false;
    *name += "." + part;
  }
  return true;
}

// One value of SET: a literal, a word, or a signed number; several join with ", ".
bool Parser::ParseGucValues(std::optional<std::string>* value) {
  if (AcceptKeyword("default")) {
    value->reset();
    return true;
  }
  std::vector<std::string> parts;
  do {
    const Token& t = Peek();
    std::string sign;
    if (t.IsOperator("-") || t.IsOperator("+")) {
      sign = Take().text == "-" ? "-" : "";
      if (Peek().kind != Token::Kind::kNumber) return Fail();
    }
    const Token& v = Peek();
    switch (v.kind) {
      case Token::Kind::kString:
      case Token::Kind::kIdent:
      case Token::Kind::kNumber:
        parts.push_back(sign + Take().text);
        break;
      case Token::Kind::kQuotedIdent:
        parts.push_back("\"" + Take().text + "\"");
        break;
      default:
        return Fail();
    }
  } while (AcceptOperator(","));
  *value = JoinWith(parts, ", ");
  return true;
}

bool Parser::ParseSet(Statement* out) {
  SetStmt s{.kind = SetStmt::Kind::kSet};
  if (AcceptKeyword("local")) {
    s.local = true;
  } else {
    AcceptKeyword("session");
  }
  if (Peek().IsKeyword("transaction")) {
    Take();
    TransactionStmt t{.kind = TransactionStmt::Kind::kSetTransaction, .tag = "SET"};
    if (!ParseModes(&t)) return false;
    out->node = std::move(t);
    return true;
  }
  if (AcceptKeyword("time")) {
    if (!ExpectKeyword("zone")) return false;
    s.name = "timezone";
    if (AcceptKeyword("local")) {
      s.value.reset();
    } else if (!ParseGucValues(&s.value)) {
      return false;
    }
  } else if (Peek().IsKeyword("session") && Peek(1).IsKeyword("authorization")) {
    Take();
    Take();
    s.name = "session_authorization";
    if (!ParseGucValues(&s.value)) return false;
  } else if (AcceptKeyword("role")) {
    s.name = "role";
    if (!ParseGucValues(&s.value)) return false;
    if (s.value == "none") s.value.reset();
  } else {
    if (!ParseGucName(&s.name)) return false;
    if (!AcceptKeyword("to") && !ExpectOperator("=")) return false;
    if (!ParseGucValues(&s.value)) return false;
  }
  out->node = std::move(s);
  return true;
}

// Multi-word names of RESET and SHOW.
bool Parser::ParseSpecialName(std::string* name) {
  if (AcceptKeyword("time")) {
    *name = "timezone";
    return ExpectKeyword("zone");
  }
  if (Peek().IsKeyword("session") && Peek(1).IsKeyword("authorization")) {
    Take();
    Take();
    *name = "session_authorization";
    return true;
  }
  if (Peek().IsKeyword("transaction") && Peek(1).IsKeyword("isolation")) {
    Take();
    Take();
    *name = "transaction_isolation";
    return ExpectKeyword("level");
  }
  return ParseGucName(name);
}

bool Parser::ParseReset(Statement* out) {
  SetStmt s{.kind = SetStmt::Kind::kReset};
  if (AcceptKeyword("all")) {
    s.kind = SetStmt::Kind::kResetAll;
  } else if (!ParseSpecialName(&s.name)) {
    return false;
  }
  out->node = std::move(s);
  return true;
}

bool Parser::ParseShow(Statement* out) {
  SetStmt s{.kind = SetStmt::Kind::kShow};
  if (AcceptKeyword("all")) {
    MarkInvalid(Invalid("0A000", "switchyard-sim does not support SHOW ALL"));
    s.name = "all";
  } else if (!ParseSpecialName(&s.name)) {
    return false;
  }
  out->node = std::move(s);
  return true;
}

bool Parser::ParseDiscard(Statement* out) {
  DiscardStmt s;
  if (AcceptKeyword("all")) {
    s.what = "ALL";
  } else if (AcceptKeyword("plans")) {
    s.what = "PLANS";
  } else if (AcceptKeyword("sequences")) {
    s.what = "SEQUENCES";
  } else if (AcceptKeyword("temp") || AcceptKeyword("temporary")) {
    s.what = "TEMP";
  } else {
    return Fail();
  }
  out->node = std::move(s);
  return true;
}

// ---------------------------------------------------------------- prepared statements
bool Parser::ParsePrepare(Statement* out) {
  PrepareStmt s;
  if (!Name(&s.name)) return false;
  if (AcceptOperator("(")) {
    do {
      uint32_t oid = 0;
      if (!ParseTypeName(&oid)) return false;
      s.param_types.push_back(oid);
    } while (AcceptOperator(","));
    if (!ExpectOperator(")")) return false;
  }
  if (!ExpectKeyword("as")) return false;
  const Token& first = Peek();
  static constexpr std::string_view kPreparable[] = {"select", "insert", "update", "delete",
                                                     "table"};
  if (std::none_of(std::begin(kPreparable), std::end(kPreparable),
                   [&](std::string_view w) { return first.IsKeyword(w); })) {
    return Fail();
  }
  if (depth_ > 0) return Fail();
  std::vector<Token> body_tokens(tokens_.begin() + static_cast<std::ptrdiff_t>(pos_),
                                 tokens_.end() - 1);
  const size_t base = tokens_.front().begin;
  const std::string_view body_text =
      text_.substr(first.begin - base, body_tokens.back().end - first.begin);
  Parser inner(std::move(body_tokens), std::string(body_text), depth_ + 1);
  auto body = std::make_shared<Statement>();
  if (std::optional<SqlError> error = inner.Parse(body.get())) return Fail(*error);
  pos_ = tokens_.size() - 1;
  s.body = std::move(body);
  out->node = std::move(s);
  return true;
}

bool Parser::ParseExecute(Statement* out) {
  ExecuteStmt s;
  if (!Name(&s.name)) return false;
  if (AcceptOperator("(")) {
    do {
      Expr arg;
      if (!ParseExpr(&arg, 0)) return false;
      CheckExpr(arg, false, false, nullptr);
      s.args.push_back(std::move(arg));
    } while (AcceptOperator(","));
    if (!ExpectOperator(")")) return false;
  }
  out->node = std::move(s);
  return true;
}

bool Parser::ParseDeallocate(Statement* out) {
  DeallocateStmt s;
  AcceptKeyword("prepare");
  if (AcceptKeyword("all")) {
    s.all = true;
  } else if (!Name(&s.name)) {
    return false;
  }
  out->node = std::move(s);
  return true;
}

// ---------------------------------------------------------------- LISTEN / NOTIFY / COPY
bool Parser::ParseAsync(const std::string& word, Statement* out) {
  if (word == "unlisten") {
    UnlistenStmt s;
    if (AcceptOperator("*")) {
      s.all = true;
    } else if (!Name(&s.channel)) {
      return false;
    }
    out->node = std::move(s);
    return true;
  }
  std::string channel;
  if (!Name(&channel)) return false;
  if (word == "listen") {
    out->node = ListenStmt{.channel = std::move(channel)};
    return true;
  }
  NotifyStmt s{.channel = std::move(channel)};
  if (AcceptOperator(",")) {
    if (Peek().kind != Token::Kind::kString) return Fail();
    s.payload = Take().text;
  }
  out->node = std::move(s);
  return true;
}

}  // namespace switchyard::sim::sql
