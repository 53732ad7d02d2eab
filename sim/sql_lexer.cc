// Tokenizer for the simulated nodes' SQL: PostgreSQL's lexical rules for the pieces the dialect
// uses (identifiers, standard and E'' strings, numbers, $n, comments, operators).
#include "sim/sql_lexer.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "absl/strings/str_format.h"

namespace switchyard::sim::sql {
namespace {

// ASCII classes, as PostgreSQL's scanner uses (and as <cctype> has them in the C locale this
// program runs in), spelled out because the lexer sees every byte of every query.
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAsciiAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsIdentStart(char c) {
  return IsAsciiAlpha(c) || c == '_' || static_cast<unsigned char>(c) >= 0x80;
}
bool IsIdentChar(char c) { return IsIdentStart(c) || IsDigit(c) || c == '$'; }
char LowerAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

SqlError Unterminated(std::string_view what) {
  return SqlError{.sqlstate = "42601", .message = absl::StrFormat("unterminated %s", what)};
}

std::string Truncated(std::string name) {
  if (name.size() > kIdentifierBytesMax) name.resize(kIdentifierBytesMax);
  return name;
}

class Lexer {
 public:
  explicit Lexer(std::string_view sql) : sql_(sql) {}

  // The next token, or an error. kEnd at the end of input.
  std::optional<SqlError> Next(Token* token) {
    if (std::optional<SqlError> error = SkipSpaceAndComments()) return error;
    token->begin = pos_;
    if (pos_ >= sql_.size()) {
      token->kind = Token::Kind::kEnd;
      token->end = pos_;
      return std::nullopt;
    }
    const char c = sql_[pos_];
    std::optional<SqlError> error;
    if ((c == 'e' || c == 'E') && pos_ + 1 < sql_.size() && sql_[pos_ + 1] == '\'') {
      ++pos_;
      error = String(/*escapes=*/true, token);
    } else if (c == '\'') {
      error = String(/*escapes=*/false, token);
    } else if (c == '"') {
      error = QuotedIdent(token);
    } else if (IsIdentStart(c)) {
      Ident(token);
    } else if (IsDigit(c) || (c == '.' && pos_ + 1 < sql_.size() && IsDigit(sql_[pos_ + 1]))) {
      Number(token);
    } else if (c == '$' && pos_ + 1 < sql_.size() && IsDigit(sql_[pos_ + 1])) {
      error = Param(token);
    } else {
      Operator(token);
    }
    token->end = pos_;
    return error;
  }

 private:
  std::optional<SqlError> SkipSpaceAndComments() {
    while (pos_ < sql_.size()) {
      const char c = sql_[pos_];
      if (std::isspace(static_cast<unsigned char>(c))) {
        ++pos_;
      } else if (sql_.substr(pos_, 2) == "--") {
        while (pos_ < sql_.size() && sql_[pos_] != '\n') ++pos_;
      } else if (sql_.substr(pos_, 2) == "/*") {
        // PostgreSQL's block comments nest.
        int depth = 0;
        do {
          if (sql_.substr(pos_, 2) == "/*") {
            ++depth;
            pos_ += 2;
          } else if (sql_.substr(pos_, 2) == "*/") {
            --depth;
            pos_ += 2;
          } else {
            ++pos_;
          }
        } while (depth > 0 && pos_ < sql_.size());
        if (depth > 0) return Unterminated("/* comment");
      } else {
        break;
      }
    }
    return std::nullopt;
  }

  std::optional<SqlError> String(bool escapes, Token* token) {
    token->kind = Token::Kind::kString;
    ++pos_;  // the opening quote
    std::string value;
    while (true) {
      // Plain bytes up to the next quote (or backslash) go in as one run: values can be kilobytes.
      // Two memchr scans: find_first_of with a two-byte set costs a library call per byte.
      size_t run_end = std::min(sql_.find('\'', pos_), sql_.size());
      if (escapes) run_end = std::min(run_end, sql_.substr(0, run_end).find('\\', pos_));
      value.append(sql_.substr(pos_, run_end - pos_));
      pos_ = run_end;
      if (pos_ >= sql_.size()) return Unterminated("quoted string");
      const char c = sql_[pos_++];
      if (c == '\'') {
        if (pos_ < sql_.size() && sql_[pos_] == '\'') {
          value.push_back('\'');
          ++pos_;
          continue;
        }
        break;
      }
      if (escapes && c == '\\') {
        if (pos_ >= sql_.size()) return Unterminated("quoted string");
        const char e = sql_[pos_++];
        switch (e) {
          case 'n':
            value.push_back('\n');
            break;
          case 't':
            value.push_back('\t');
            break;
          case 'r':
            value.push_back('\r');
            break;
          case 'b':
            value.push_back('\b');
            break;
          case 'f':
            value.push_back('\f');
            break;
          default:
            value.push_back(e);
            break;
        }
        continue;
      }
      value.push_back(c);
    }
    token->text = std::move(value);
    return std::nullopt;
  }

  std::optional<SqlError> QuotedIdent(Token* token) {
    token->kind = Token::Kind::kQuotedIdent;
    ++pos_;
    std::string name;
    while (true) {
      if (pos_ >= sql_.size()) return Unterminated("quoted identifier");
      const char c = sql_[pos_++];
      if (c == '"') {
        if (pos_ < sql_.size() && sql_[pos_] == '"') {
          name.push_back('"');
          ++pos_;
          continue;
        }
        break;
      }
      name.push_back(c);
    }
    if (name.empty()) {
      return SqlError{.sqlstate = "42601", .message = "zero-length delimited identifier"};
    }
    token->text = Truncated(std::move(name));
    return std::nullopt;
  }

  void Ident(Token* token) {
    token->kind = Token::Kind::kIdent;
    const size_t start = pos_;
    while (pos_ < sql_.size() && IsIdentChar(sql_[pos_])) ++pos_;
    std::string name(sql_.substr(start, pos_ - start));
    for (char& c : name) c = LowerAscii(c);
    token->text = Truncated(std::move(name));
  }

  void Number(Token* token) {
    token->kind = Token::Kind::kNumber;
    const size_t start = pos_;
    bool seen_point = false;
    while (pos_ < sql_.size() && (IsDigit(sql_[pos_]) || (sql_[pos_] == '.' && !seen_point))) {
      if (sql_[pos_] == '.') {
        // "1..2" is not a number; leave the second point to the caller.
        if (pos_ + 1 < sql_.size() && sql_[pos_ + 1] == '.') break;
        seen_point = true;
      }
      ++pos_;
    }
    token->text = std::string(sql_.substr(start, pos_ - start));
  }

  std::optional<SqlError> Param(Token* token) {
    token->kind = Token::Kind::kParam;
    ++pos_;
    int64_t number = 0;
    while (pos_ < sql_.size() && IsDigit(sql_[pos_])) {
      number = number * 10 + (sql_[pos_] - '0');
      if (number > kParamNumberMax) {
        return SqlError{.sqlstate = "42P02",
                        .message = absl::StrFormat("there is no parameter $%d", number)};
      }
      ++pos_;
    }
    token->param = static_cast<int>(number);
    token->text = absl::StrFormat("$%d", number);
    if (number == 0) {
      return SqlError{.sqlstate = "42P02", .message = "there is no parameter $0"};
    }
    return std::nullopt;
  }

  void Operator(Token* token) {
    token->kind = Token::Kind::kOperator;
    static constexpr std::string_view kTwoChar[] = {"::", "||", "<=", ">=", "<>", "!="};
    for (std::string_view op : kTwoChar) {
      if (sql_.substr(pos_, 2) == op) {
        token->text = std::string(op);
        pos_ += 2;
        return;
      }
    }
    token->text = std::string(1, sql_[pos_]);
    ++pos_;
  }

  std::string_view sql_;
  size_t pos_ = 0;
};

std::string_view Trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return text;
}

}  // namespace

std::optional<SqlError> Split(std::string_view sql, std::vector<TokenRange>* statements) {
  Lexer lexer(sql);
  TokenRange current;
  auto finish = [&](size_t end) -> std::optional<SqlError> {
    if (!current.tokens.empty()) {
      if (statements->size() >= kStatementsPerQueryMax) {
        return SqlError{.sqlstate = "54000",
                        .message = absl::StrFormat("more than %zu statements in one query",
                                                   kStatementsPerQueryMax)};
      }
      const size_t begin = current.tokens.front().begin;
      current.text = std::string(Trim(sql.substr(begin, end - begin)));
      statements->push_back(std::move(current));
    }
    current = TokenRange{};
    return std::nullopt;
  };
  while (true) {
    Token token;
    if (std::optional<SqlError> error = lexer.Next(&token)) return error;
    if (token.kind == Token::Kind::kEnd) {
      return finish(current.tokens.empty() ? 0 : current.tokens.back().end);
    }
    if (token.IsOperator(";")) {
      const size_t end = current.tokens.empty() ? 0 : current.tokens.back().end;
      if (std::optional<SqlError> error = finish(end)) return error;
      continue;
    }
    current.tokens.push_back(std::move(token));
  }
}

SqlError SyntaxErrorAt(const Token& token) {
  if (token.kind == Token::Kind::kEnd) {
    return SqlError{.sqlstate = "42601", .message = "syntax error at end of input"};
  }
  std::string shown = token.text;
  if (token.kind == Token::Kind::kString) shown = absl::StrFormat("'%s'", token.text);
  return SqlError{.sqlstate = "42601",
                  .message = absl::StrFormat("syntax error at or near \"%s\"", shown)};
}

}  // namespace switchyard::sim::sql
