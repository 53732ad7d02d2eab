// An in-memory driver for units and the shared services: no sockets, no threads, no clocks.
// Tests script the bytes each side sends and read back what the proxy sent.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/base/check.h"
#include "core/io.h"
#include "core/protocol/framing.h"
#include "core/protocol/messages.h"
#include "core/proxy.h"

namespace switchyard::testing {

class FakeEnvironment : public Environment {
 public:
  ConnId NewConnId() override { return ConnId{next_conn_++, 1}; }
  void RandomBytes(char* out, size_t n) override {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>(random_state_++ * 37 + 11);
  }
  uint32_t next_conn_ = 100;
  uint32_t random_state_ = 1;
};

class Harness {
 public:
  explicit Harness(ProxyConfig config = DefaultConfig())
      : config_(std::move(config)), services_(config_) {}

  static ProxyConfig DefaultConfig() {
    ProxyConfig config;
    config.auth_type = auth::AuthType::kTrust;
    config.pool_size = 2;
    config.max_server_connections = 4;
    return config;
  }

  // A new client connection; returns its unit's index.
  size_t Accept() {
    ConnId client{next_client_++, 1};
    const bool admitted = services_.AdmitClient();
    units_.push_back(
        std::make_unique<Unit>(UnitId{units_.size() + 1}, client, config_, env_, admitted));
    admitted_.push_back(admitted);
    clients_.push_back(client);
    Deliver(units_.size() - 1, Accepted{client, "127.0.0.1:1"});
    return units_.size() - 1;
  }

  void Deliver(size_t unit, const Event& event) {
    units_[unit]->Handle(now_, event);
    Drain(unit);
    units_[unit]->CheckInvariants();
    DeliverPendingReplies();
  }

  // Bytes from a peer arrive on `conn`, handed to whichever unit owns it.
  void Receive(ConnId conn, std::string_view bytes) {
    Deliver(OwnerOf(conn), Received{conn, bytes});
  }
  void ReceiveByteByByte(ConnId conn, std::string_view bytes) {
    for (char c : bytes) Receive(conn, std::string_view(&c, 1));
  }
  void PeerClosed(ConnId conn) { Deliver(OwnerOf(conn), Closed{conn, "peer closed"}); }
  void Connected(ConnId conn) { Deliver(OwnerOf(conn), switchyard::Connected{conn}); }
  void AdvanceMs(int64_t ms) {
    now_ = now_ + MsToUs(ms);
    for (size_t i = 0; i < units_.size(); ++i) {
      auto deadline = units_[i]->NextDeadline();
      if (deadline && *deadline <= now_) Deliver(i, TimerFired{});
    }
    Apply(0, services_.Tick(now_));
    DeliverPendingReplies();
  }

  // Everything sent on `conn` since the last call.
  std::string TakeSent(ConnId conn) {
    std::string out = std::move(sent_[conn]);
    sent_[conn].clear();
    return out;
  }
  // Messages sent on `conn` since the last call, decoded into frames (typed stream).
  std::vector<std::pair<char, std::string>> TakeFrames(ConnId conn) {
    pg::FrameReader reader(pg::Direction::kBackend);
    reader.Append(TakeSent(conn));
    std::vector<std::pair<char, std::string>> frames;
    for (;;) {
      auto frame = reader.Next();
      CHECK(frame.ok()) << frame.status();
      if (!frame->has_value()) break;
      frames.emplace_back((**frame).type, std::string((**frame).payload));
    }
    return frames;
  }
  static std::string Types(const std::vector<std::pair<char, std::string>>& frames) {
    std::string types;
    for (const auto& f : frames) types.push_back(f.first);
    return types;
  }

  ConnId client(size_t unit) const { return clients_[unit]; }
  Unit& unit(size_t index) { return *units_[index]; }
  bool IsClosed(ConnId conn) const { return closed_.count(conn) > 0; }
  // Whether a unit owns `conn` (a pooled idle connection has no unit).
  bool HasUnitOwner(ConnId conn) const { return owner_.count(conn) > 0; }
  // The peer went away: the driver forgets the connection (no Close is owed for it).
  void MarkClosedForTest(ConnId conn) { closed_.insert(conn); }
  // The most recent Connect the proxy asked for.
  ConnId LastConnect() const {
    CHECK(!connects_.empty());
    return connects_.back();
  }
  size_t connect_count() const { return connects_.size(); }
  NodeId NodeOf(ConnId conn) const { return connect_nodes_.at(conn); }
  // Tells every unit a new cluster view, as the driver does after a health poll.
  void SetCluster(const ClusterSnapshot& snapshot) {
    for (size_t i = 0; i < units_.size(); ++i) Deliver(i, NodeStateChanged{snapshot});
  }
  // Switches capture on or off for every unit, as the driver does on SIGUSR1 or a new file.
  void SetCapture(bool on, uint64_t epoch) {
    for (size_t i = 0; i < units_.size(); ++i) Deliver(i, CaptureChanged{on, epoch, Instant{}});
  }
  // The Trace actions every unit emitted since the last call, in order.
  std::vector<Trace> TakeTraces() { return std::exchange(traces_, {}); }
  Instant now() const { return now_; }
  Services& services() { return services_; }
  ProxyConfig& config() { return config_; }
  // When false, Sends stay unflushed (a slow peer) until FlushAll().
  void set_auto_flush(bool on) { auto_flush_ = on; }
  void FlushAll() {
    auto pending = std::move(unflushed_);
    unflushed_.clear();
    for (auto& [conn, bytes] : pending) {
      if (closed_.count(conn) == 0) Deliver(OwnerOf(conn), Writable{conn, bytes});
    }
  }

 private:
  size_t OwnerOf(ConnId conn) {
    auto it = owner_.find(conn);
    if (it != owner_.end()) return it->second;
    for (size_t i = 0; i < clients_.size(); ++i) {
      if (clients_[i] == conn) return i;
    }
    CHECK(false) << "no owner for connection";
    return 0;
  }

  void Drain(size_t unit) {
    while (auto action = units_[unit]->PollAction()) {
      std::visit([&](auto& a) { Perform(unit, a); }, *action);
    }
  }
  void Perform(size_t unit, Send& send) {
    CHECK(closed_.count(send.conn) == 0) << "send on a closed connection";
    sent_[send.conn] += send.bytes;
    if (auto_flush_) {
      flushes_.emplace_back(unit, send.conn, send.bytes.size());
    } else {
      unflushed_[send.conn] += send.bytes.size();
    }
  }
  void Perform(size_t unit, Connect& connect) {
    owner_[connect.conn] = unit;
    connects_.push_back(connect.conn);
    connect_nodes_[connect.conn] = connect.node;
  }
  void Perform(size_t, Close& close) { closed_.insert(close.conn); }
  void Perform(size_t, Trace& trace) { traces_.push_back(std::move(trace)); }
  void Perform(size_t, PauseRead&) {}
  void Perform(size_t, ResumeRead&) {}
  void Perform(size_t unit, RequestService& request) {
    Apply(unit, services_.Handle(now_, UnitId{unit + 1}, std::move(request.request)));
  }
  void Apply(size_t, Services::Outcome outcome) {
    for (auto& delivery : outcome.deliveries) {
      replies_.emplace_back(delivery.unit.value - 1, std::move(delivery.reply));
    }
    for (ConnId conn : outcome.close) closed_.insert(conn);
    for (ConnId conn : outcome.now_idle) owner_.erase(conn);
  }
  void DeliverPendingReplies() {
    while (!flushes_.empty() || !replies_.empty()) {
      if (!flushes_.empty()) {
        auto [unit, conn, n] = flushes_.front();
        flushes_.pop_front();
        if (closed_.count(conn) == 0) {
          units_[unit]->Handle(now_, Writable{conn, n});
          Drain(unit);
        }
        continue;
      }
      auto [unit, reply] = std::move(replies_.front());
      replies_.pop_front();
      if (auto* checkout = std::get_if<CheckoutReply>(&reply);
          checkout != nullptr && checkout->connection) {
        owner_[checkout->connection->conn] = unit;
      }
      units_[unit]->Handle(now_, ServiceReplied{std::move(reply)});
      Drain(unit);
      units_[unit]->CheckInvariants();
    }
  }

  ProxyConfig config_;
  FakeEnvironment env_;
  Services services_;
  Instant now_{1'000'000};
  uint32_t next_client_ = 1;
  std::map<ConnId, NodeId> connect_nodes_;
  std::vector<std::unique_ptr<Unit>> units_;
  std::vector<bool> admitted_;
  std::vector<ConnId> clients_;
  std::map<ConnId, size_t> owner_;
  std::map<ConnId, std::string> sent_;
  std::map<ConnId, uint64_t> unflushed_;
  std::set<ConnId> closed_;
  std::vector<ConnId> connects_;
  std::deque<std::tuple<size_t, ConnId, uint64_t>> flushes_;
  std::deque<std::pair<size_t, ServiceReply>> replies_;
  bool auto_flush_ = true;
  std::vector<Trace> traces_;
};

}  // namespace switchyard::testing
