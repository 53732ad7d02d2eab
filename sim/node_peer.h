// NodePeer: puts a simulated PostgreSQL node (sim/pg_node.h) on the simulated network as an
// io_sim::Peer. Every connection the proxy opens becomes a node session named by its LinkId;
// bytes go in with Receive, answers come out with TakeOutput and are written within the
// network's window (the rest waits for OnWritable, as a backend blocks on a full socket), and
// the node's own deadlines (pg_sleep, lock waits) are ticked on the shared timeline. Node faults
// (crash, fast shutdown, pause, slowness, a terminated backend) are driven from here so that
// the network hears of them at the same instant.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "core/base/types.h"
#include "io_sim/event_queue.h"
#include "io_sim/network.h"
#include "sim/pg_node.h"

namespace switchyard::sim {

class NodePeer final : public io_sim::Peer {
 public:
  // Listens on the network as `node`. Everything must outlive this object.
  NodePeer(PgNode& pg, io_sim::SimNetwork& network, io_sim::Timeline& timeline, NodeId node,
           io_sim::PeerId peer);
  ~NodePeer() override;
  NodePeer(const NodePeer&) = delete;
  NodePeer& operator=(const NodePeer&) = delete;

  // One line per node event ("t=<us> node.<event> link=<id> ..."): connections opened, bytes
  // read, messages written (types, and the SQLSTATE of errors), closes and faults. Formatting
  // costs only when set.
  void set_trace(std::function<void(std::string_view)> trace) { trace_ = std::move(trace); }

  void OnAccepted(io_sim::LinkId link) override;
  void OnReadable(io_sim::LinkId link) override;
  void OnWritable(io_sim::LinkId link) override;

  // --- Faults ---
  // The node dies: sessions vanish, every connection is reset, connects are refused.
  void Crash();
  // Fast shutdown: FATAL 57P01 to every session, then down like a crash.
  void Shutdown();
  // Up again after Crash or Shutdown (no-op when up).
  void Restart();
  void Pause(bool paused);
  void SetSlowness(int64_t extra_us_per_statement);
  // pg_terminate_backend on the `pick`-th session (modulo their number); false when none.
  bool TerminateSession(uint64_t pick);

  // --- Roles and replication (the node is a replica unless said otherwise) ---
  // Streams `upstream`'s WAL up to `upto_lsn` (see PgNode::ReplicateFrom).
  absl::Status ReplicateFrom(const PgNode& upstream, uint64_t upto_lsn);
  // pg_ctl promote: sessions stay and hear in_hot_standby=off.
  absl::Status Promote();
  // A base backup of `upstream` (pg_basebackup, or pg_rewind of an old primary): every
  // connection is reset and the node comes back up as `upstream`'s replica.
  void RebuildAsReplicaOf(const PgNode& upstream);

  PgNode& pg() { return pg_; }
  const PgNode& pg() const { return pg_; }
  NodeId node() const { return node_; }
  // Connections the node holds open.
  size_t links() const { return links_.size(); }
  // Whether the connection behind node session `session_id` is still open at the node's end.
  bool Connected(uint64_t session_id) const { return links_.contains(io_sim::LinkId{session_id}); }
  // Bytes the network took from the node, over every connection.
  uint64_t bytes_written() const { return bytes_written_; }
  // Bytes the network took from the node on the connection of the session with backend `pid`;
  // nullopt when no open connection has that pid.
  std::optional<uint64_t> BytesWrittenByPid(int32_t pid) const;
  // The same for the connection of node session `session_id`.
  std::optional<uint64_t> BytesWrittenBySession(uint64_t session_id) const {
    auto it = links_.find(io_sim::LinkId{session_id});
    if (it == links_.end()) return std::nullopt;
    return it->second.written;
  }
  // Bytes the node produced that still wait for the network's window.
  uint64_t bytes_queued() const;

 private:
  struct LinkState {
    // Node output the window has not taken yet: pending[pending_pos..]. An offset rather than
    // an erase per write, which would move a large result's tail once per window's worth.
    std::string pending;
    size_t pending_pos = 0;
    std::string_view unsent() const { return std::string_view(pending).substr(pending_pos); }
    bool close_after = false;
    uint64_t written = 0;  // bytes the network took
  };

  Instant Now() const { return timeline_.now(); }
  // Moves every session's output to the network and closes what the node wants closed; then
  // re-arms the node's next deadline.
  void Drain();
  void Flush(io_sim::LinkId link, LinkState& state);
  void ScheduleTick();
  void Trace(std::string_view line) const;

  PgNode& pg_;
  io_sim::SimNetwork& network_;
  io_sim::Timeline& timeline_;
  NodeId node_;
  io_sim::PeerId peer_;
  std::map<io_sim::LinkId, LinkState> links_;
  std::optional<io_sim::EventId> tick_event_;
  Instant tick_at_;
  uint64_t bytes_written_ = 0;
  std::function<void(std::string_view)> trace_;
};

}  // namespace switchyard::sim
