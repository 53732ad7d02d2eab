// A test client for PgNode: builds frontend messages with the codec, feeds them (whole or one
// byte at a time), and decodes the node's answers into short strings that tests compare:
//   "T:k,v" RowDescription   "D:a|b" DataRow (NULL as \N)   "C:INSERT 0 1" CommandComplete
//   "E:23505" / "E!:57P01" ErrorResponse / FATAL   "N:25P01" notice   "Z:I" ReadyForQuery
//   "S:name=value" ParameterStatus   "K" BackendKeyData   "R:0" Authentication   "A:ch:payload"
//   "1" ParseComplete "2" BindComplete "3" CloseComplete "n" NoData "s" PortalSuspended
//   "t:25,23" ParameterDescription "I" EmptyQueryResponse "G"/"H" Copy in/out "d:line" "c".
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/types.h"
#include "core/protocol/framing.h"
#include "core/protocol/messages.h"
#include "sim/pg_node.h"

namespace switchyard::sim::testing {

inline std::string Summarize(const pg::Frame& frame) {
  const std::string_view payload = frame.payload;
  switch (frame.type) {
    case 'T': {
      auto m = pg::RowDescription::Decode(payload);
      std::string out = "T:";
      for (size_t i = 0; m.ok() && i < m->fields.size(); ++i) {
        out += (i ? "," : "") + m->fields[i].name;
      }
      return out;
    }
    case 'D': {
      auto m = pg::DataRow::Decode(payload);
      std::string out = "D:";
      for (size_t i = 0; m.ok() && i < m->values.size(); ++i) {
        out += (i ? "|" : "") + m->values[i].value_or("\\N");
      }
      return out;
    }
    case 'C':
      return "C:" + pg::CommandComplete::Decode(payload).value_or(pg::CommandComplete{}).tag;
    case 'E':
    case 'N': {
      auto m = pg::ErrorFields::Decode(frame.type, payload);
      if (!m.ok()) return "E:?";
      const bool fatal = m->IsFatal();
      return std::string(1, frame.type) + (fatal ? "!:" : ":") + std::string(m->sqlstate());
    }
    case 'Z':
      return std::string("Z:") +
             pg::ReadyForQuery::Decode(payload).value_or(pg::ReadyForQuery{}).status;
    case 'S': {
      auto m = pg::ParameterStatus::Decode(payload);
      return "S:" + m->name + "=" + m->value;
    }
    case 'K':
      return "K";
    case 'R':
      return "R:" + std::to_string(pg::Authentication::Decode(payload)->code);
    case 'A': {
      auto m = pg::NotificationResponse::Decode(payload);
      return "A:" + m->channel + ":" + m->payload;
    }
    case 't': {
      auto m = pg::ParameterDescription::Decode(payload);
      std::string out = "t:";
      for (size_t i = 0; i < m->type_oids.size(); ++i) {
        out += (i ? "," : "") + std::to_string(m->type_oids[i]);
      }
      return out;
    }
    case 'd':
      return "d:" + pg::CopyData::Decode(payload)->data;
    default:
      return std::string(1, frame.type);
  }
}

class TestClient {
 public:
  TestClient(PgNode& node, uint64_t id, Instant* now) : node_(node), id_(id), now_(now) {
    node_.Open(id_, *now_);
  }

  uint64_t id() const { return id_; }
  int32_t pid() const { return pid_; }
  int32_t secret() const { return secret_; }

  // Sends raw bytes, whole or one at a time.
  void Send(std::string_view bytes) {
    if (byte_by_byte_) {
      for (char c : bytes) node_.Receive(id_, std::string_view(&c, 1), *now_);
    } else {
      node_.Receive(id_, bytes, *now_);
    }
    node_.CheckInvariants();
  }
  void set_byte_by_byte(bool on) { byte_by_byte_ = on; }

  // Everything the node sent since the last call, summarized.
  std::vector<std::string> Read() {
    std::string bytes = node_.TakeOutput(id_);
    if (expect_ssl_answer_ && !bytes.empty()) {
      expect_ssl_answer_ = false;
      ssl_answer_ = bytes[0];
      bytes.erase(0, 1);
    }
    reader_.Append(bytes);
    std::vector<std::string> out;
    while (true) {
      auto frame = reader_.Next();
      EXPECT_TRUE(frame.ok()) << frame.status();
      if (!frame.ok() || !frame->has_value()) break;
      const pg::Frame& f = **frame;
      if (f.type == 'K') {
        auto key = pg::BackendKeyData::Decode(f.payload);
        pid_ = key->pid;
        secret_ = key->secret;
      }
      out.push_back(Summarize(f));
      raw_.push_back(std::string(f.raw));
    }
    return out;
  }
  // The raw bytes of every message read so far, in order.
  const std::vector<std::string>& raw() const { return raw_; }

  std::vector<std::string> Startup(std::string user = "alice",
                                   pg::Parameters extra = {{"database", "app"}}) {
    pg::StartupMessage startup;
    startup.parameters.emplace_back("user", std::move(user));
    for (auto& p : extra) startup.parameters.push_back(std::move(p));
    Send(startup.Encode());
    return Read();
  }
  void ExpectSslAnswer() { expect_ssl_answer_ = true; }
  char ssl_answer() const { return ssl_answer_; }

  std::vector<std::string> Query(std::string_view sql) {
    Send(pg::Query{.sql = std::string(sql)}.Encode());
    return Read();
  }
  bool WantsClose() const { return node_.WantsClose(id_); }

 private:
  PgNode& node_;
  uint64_t id_;
  Instant* now_;
  bool byte_by_byte_ = false;
  bool expect_ssl_answer_ = false;
  char ssl_answer_ = 0;
  int32_t pid_ = 0;
  int32_t secret_ = 0;
  pg::FrameReader reader_{pg::Direction::kBackend};
  std::vector<std::string> raw_;
};

// A node's startup answer without its ParameterStatus lines, which tests check separately.
inline std::vector<std::string> WithoutParameterStatus(std::vector<std::string> messages) {
  std::erase_if(messages, [](const std::string& m) { return m.rfind("S:", 0) == 0; });
  return messages;
}

}  // namespace switchyard::sim::testing
