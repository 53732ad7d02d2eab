// Scripted peers for the simulated driver's tests: a PostgreSQL "server" that logs anyone in
// and answers every query, and a client that logs in, runs N queries one at a time, checks
// each answer and leaves. The real simulated PostgreSQL node lives in sim/.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/base/check.h"
#include "core/protocol/framing.h"
#include "core/protocol/messages.h"
#include "io_sim/network.h"

namespace switchyard::io_sim::testing {

// Answers a StartupMessage with AuthenticationOk, two ParameterStatus, BackendKeyData and
// ReadyForQuery; every Query with CommandComplete and ReadyForQuery ("BIG n" first sends n
// DataRows of 1 KiB each); a CancelRequest is counted and its connection closed.
class FakeServerNode final : public Peer {
 public:
  explicit FakeServerNode(SimNetwork& network) : network_(network) {}

  void OnAccepted(LinkId link) override {
    ++accepted;
    links.push_back(link);
    sessions_.emplace(link, Session{});
  }

  void OnReadable(LinkId link) override {
    auto it = sessions_.find(link);
    if (it == sessions_.end()) return;
    for (;;) {
      ReadResult read = network_.PeerRead(link, 4096);
      if (read.kind == ReadResult::Kind::kData) {
        it->second.reader.Append(read.bytes);
        continue;
      }
      if (read.kind == ReadResult::Kind::kEmpty) break;
      // The proxy closed (or the link broke): a backend exits.
      if (read.kind == ReadResult::Kind::kReset) ++resets_seen;
      return End(link);
    }
    Serve(link, it->second);
  }

  // Closes every idle connection from the server side (a restart of the pooler's peer).
  void CloseAll() {
    std::vector<LinkId> links;
    for (const auto& [link, session] : sessions_) links.push_back(link);
    for (LinkId link : links) End(link);
  }

  int accepted = 0;
  std::vector<LinkId> links;  // every connection accepted, in order
  int startups = 0;
  int queries = 0;
  int cancels = 0;
  int resets_seen = 0;
  std::vector<std::string> query_texts;

 private:
  struct Session {
    pg::FrameReader reader{pg::Direction::kFrontend};
    bool started = false;
  };

  void End(LinkId link) {
    sessions_.erase(link);
    network_.PeerClose(link);
  }

  void Serve(LinkId link, Session& session) {
    std::string out;
    if (!session.started) {
      auto packet = session.reader.NextStartup();
      CHECK(packet.ok()) << packet.status();
      if (!packet->has_value()) return;
      auto decoded = pg::DecodeStartupPacket((**packet).payload);
      CHECK(decoded.ok()) << decoded.status();
      if (std::holds_alternative<pg::CancelRequest>(*decoded)) {
        ++cancels;
        return End(link);
      }
      CHECK(std::holds_alternative<pg::StartupMessage>(*decoded));
      session.started = true;
      ++startups;
      out += pg::Authentication{pg::Authentication::kOk, ""}.Encode();
      out += pg::ParameterStatus{"server_version", "15.4"}.Encode();
      out += pg::ParameterStatus{"client_encoding", "UTF8"}.Encode();
      out += pg::BackendKeyData{1000 + startups, 4242 + startups}.Encode();
      out += pg::ReadyForQuery{'I'}.Encode();
    }
    for (;;) {
      auto frame = session.reader.Next();
      CHECK(frame.ok()) << frame.status();
      if (!frame->has_value()) break;
      const pg::Frame& message = **frame;
      if (message.type == 'X') {
        if (!out.empty()) network_.PeerSend(link, out);
        return End(link);
      }
      if (message.type != 'Q') continue;
      auto query = pg::Query::Decode(message.payload);
      CHECK(query.ok());
      ++queries;
      query_texts.push_back(query->sql);
      if (query->sql.rfind("BIG ", 0) == 0) {
        const int rows = std::stoi(query->sql.substr(4));
        for (int i = 0; i < rows; ++i) out += pg::DataRow{{std::string(1024, 'r')}}.Encode();
      }
      out += pg::CommandComplete{"SELECT 1"}.Encode();
      out += pg::ReadyForQuery{'I'}.Encode();
    }
    if (!out.empty()) network_.PeerSend(link, out);
  }

  SimNetwork& network_;
  std::map<LinkId, Session> sessions_;
};

// Logs in, sends its queries one at a time (each after the previous ReadyForQuery), counts the
// answers, then sends Terminate and closes when the proxy does.
class FakeClient final : public Peer {
 public:
  FakeClient(SimNetwork& network, PeerId id, std::vector<std::string> queries)
      : network_(network), id_(id), queries_(std::move(queries)) {}

  void Start() { link_ = network_.ConnectToProxy(id_, this); }

  void OnConnected(LinkId link) override {
    CHECK(link == link_);
    pg::StartupMessage startup;
    startup.parameters = {{"user", "alice"}, {"database", "app"}};
    network_.PeerSend(link_, startup.Encode());
  }

  void OnReadable(LinkId link) override {
    CHECK(link == link_);
    if (closed || paused) return;
    for (;;) {
      ReadResult read = network_.PeerRead(link_, 4096);
      if (read.kind == ReadResult::Kind::kData) {
        bytes_read += read.bytes.size();
        reader_.Append(read.bytes);
        continue;
      }
      if (read.kind == ReadResult::Kind::kEmpty) break;
      Consume();
      closed = true;
      close_why = read.kind == ReadResult::Kind::kEof ? "eof" : read.why;
      network_.PeerClose(link_);
      return;
    }
    Consume();
  }

  // A slow client: stops reading until resumed (the proxy must hold the server back).
  void Pause() { paused = true; }
  void Resume() {
    paused = false;
    OnReadable(link_);
  }

  bool succeeded() const {
    return done && answers == static_cast<int>(queries_.size()) && errors.empty();
  }
  std::string Summary() const {
    return "answers=" + std::to_string(answers) + "/" + std::to_string(queries_.size()) +
           " completes=" + std::to_string(completes) + " rows=" + std::to_string(rows) +
           " logged_in=" + std::to_string(logged_in) + " done=" + std::to_string(done) +
           " closed=" + std::to_string(closed) + " why=" + close_why +
           " errors=" + std::to_string(errors.size()) +
           (errors.empty() ? "" : " first_error=" + errors.front());
  }

  bool terminate_when_done = true;  // false: stay connected and idle after the last answer
  bool logged_in = false;
  bool done = false;  // every answer came and Terminate was sent
  bool closed = false;
  bool paused = false;
  int answers = 0;
  int completes = 0;
  int rows = 0;
  size_t bytes_read = 0;
  std::string close_why;
  std::vector<std::string> errors;  // "SQLSTATE message"

 private:
  void Consume() {
    for (;;) {
      auto frame = reader_.Next();
      CHECK(frame.ok()) << frame.status();
      if (!frame->has_value()) return;
      const pg::Frame& message = **frame;
      switch (message.type) {
        case 'E': {
          auto error = pg::ErrorFields::Decode('E', message.payload);
          CHECK(error.ok());
          errors.push_back(std::string(error->sqlstate()) + " " + std::string(error->Field('M')));
          break;
        }
        case 'C':
          ++completes;
          break;
        case 'D':
          ++rows;
          break;
        case 'Z':
          OnReady();
          break;
        default:
          break;
      }
    }
  }

  void OnReady() {
    if (!logged_in) {
      logged_in = true;
    } else {
      ++answers;
    }
    if (done) return;
    if (static_cast<size_t>(answers) < queries_.size()) {
      network_.PeerSend(link_, pg::Query{queries_[answers]}.Encode());
      return;
    }
    done = true;
    if (terminate_when_done) network_.PeerSend(link_, pg::Terminate{}.Encode());
  }

  SimNetwork& network_;
  PeerId id_;
  std::vector<std::string> queries_;
  LinkId link_;
  pg::FrameReader reader_{pg::Direction::kBackend};
};

}  // namespace switchyard::io_sim::testing
