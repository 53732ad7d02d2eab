// NodePeer: the glue between a PgNode and the simulated network.
#include "sim/node_peer.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "core/base/check.h"
#include "core/base/strings.h"

namespace switchyard::sim {
namespace {

// One read(2) of a backend.
constexpr size_t kReadChunkBytes = size_t{64} << 10;
// A traced output summary names at most this many messages.
constexpr size_t kTracedMessagesMax = 16;

// The SQLSTATE of an ErrorResponse/NoticeResponse payload, or "?".
std::string_view SqlState(std::string_view payload) {
  while (!payload.empty() && payload[0] != '\0') {
    const size_t end = payload.find('\0', 1);
    if (end == std::string_view::npos) break;
    if (payload[0] == 'C') return payload.substr(1, end - 1);
    payload.remove_prefix(end + 1);
  }
  return "?";
}

// "Z,E(57P01)": the types of the backend messages in `output` (whole messages, as the node
// produces them), for the trace.
std::string DescribeOutput(std::string_view output) {
  std::string out;
  size_t count = 0;
  while (output.size() >= 5) {
    const uint32_t length = (uint32_t{static_cast<uint8_t>(output[1])} << 24) |
                            (uint32_t{static_cast<uint8_t>(output[2])} << 16) |
                            (uint32_t{static_cast<uint8_t>(output[3])} << 8) |
                            uint32_t{static_cast<uint8_t>(output[4])};
    if (length < 4 || length - 4 > output.size() - 5) break;
    if (count == kTracedMessagesMax) return out + ",...";
    if (!out.empty()) out += ',';
    out += output[0];
    if (output[0] == 'E') out += Cat("(", SqlState(output.substr(5, length - 4)), ")");
    output.remove_prefix(1 + length);
    ++count;
  }
  if (!output.empty()) out += Cat(out.empty() ? "" : ",", "+", output.size(), "B");
  return out;
}

}  // namespace

NodePeer::NodePeer(PgNode& pg, io_sim::SimNetwork& network, io_sim::Timeline& timeline, NodeId node,
                   io_sim::PeerId peer)
    : pg_(pg), network_(network), timeline_(timeline), node_(node), peer_(peer) {
  network_.Listen(node_, peer_, this);
  network_.SetNodeUp(node_, pg_.up());
}

NodePeer::~NodePeer() {
  if (tick_event_) timeline_.Cancel(*tick_event_);
}

void NodePeer::OnAccepted(io_sim::LinkId link) {
  CHECK(!links_.contains(link)) << "link accepted twice: " << link.value;
  links_.emplace(link, LinkState{});
  pg_.Open(link.value, Now());
  const bool refused = pg_.WantsClose(link.value);
  if (refused) links_[link].close_after = true;
  if (trace_) Trace(Cat("node.open link=", link.value, refused ? " refused" : ""));
  Drain();
}

void NodePeer::OnReadable(io_sim::LinkId link) {
  auto it = links_.find(link);
  if (it == links_.end()) return;  // forgotten: the node crashed or closed it
  for (;;) {
    io_sim::ReadResult read = network_.PeerRead(link, kReadChunkBytes);
    if (read.kind == io_sim::ReadResult::Kind::kData) {
      if (trace_) Trace(Cat("node.recv link=", link.value, " bytes=", read.bytes.size()));
      pg_.Receive(link.value, read.bytes, Now());
      continue;
    }
    if (read.kind == io_sim::ReadResult::Kind::kEmpty) break;
    const bool reset = read.kind == io_sim::ReadResult::Kind::kReset;
    if (trace_) Trace(Cat("node.peer_gone link=", link.value, reset ? " how=reset" : " how=fin"));
    // The proxy closed its end, or the connection broke: the backend finishes what it had
    // read and exits.
    pg_.Close(link.value, Now());
    if (reset) {
      links_.erase(link);
      network_.PeerClose(link);
    } else {
      it->second.close_after = true;
    }
    break;
  }
  Drain();
}

void NodePeer::OnWritable(io_sim::LinkId link) {
  auto it = links_.find(link);
  if (it != links_.end()) Flush(link, it->second);
}

void NodePeer::Drain() {
  for (uint64_t id : pg_.SessionsWithOutput()) {
    const io_sim::LinkId link{id};
    std::string output = pg_.TakeOutput(id);
    auto it = links_.find(link);
    if (trace_ && !output.empty()) {
      Trace(Cat("node.send link=", id, " bytes=", output.size(), " msgs=", DescribeOutput(output),
                it == links_.end() ? " dropped" : ""));
    }
    if (it == links_.end()) continue;  // its connection is already gone
    LinkState& state = it->second;
    if (state.unsent().empty()) {
      state.pending = std::move(output);  // the usual case: nothing was left unsent
      state.pending_pos = 0;
    } else {
      // What was sent goes once it is half the buffer: memory stays bounded by twice the
      // unsent bytes, at an amortized constant cost per byte.
      if (state.pending_pos * 2 >= state.pending.size()) {
        state.pending.erase(0, state.pending_pos);
        state.pending_pos = 0;
      }
      state.pending.append(output);
    }
    if (pg_.WantsClose(id)) it->second.close_after = true;
  }
  if (!pg_.up()) {
    for (auto& [link, state] : links_) state.close_after = true;
  }
  std::vector<io_sim::LinkId> ready;
  for (const auto& [link, state] : links_) {
    if (!state.unsent().empty() || state.close_after) ready.push_back(link);
  }
  for (io_sim::LinkId link : ready) {
    auto it = links_.find(link);
    if (it != links_.end()) Flush(link, it->second);
  }
  ScheduleTick();
}

void NodePeer::Flush(io_sim::LinkId link, LinkState& state) {
  while (!state.unsent().empty()) {
    io_sim::WriteResult write = network_.PeerWrite(link, state.unsent());
    if (write.broken) {
      // Reset under our feet; the read side reports it and ends the session.
      state.pending.clear();
      state.pending_pos = 0;
      return;
    }
    if (write.accepted == 0) return;  // the window is full: OnWritable resumes
    bytes_written_ += write.accepted;
    state.written += write.accepted;
    state.pending_pos += write.accepted;
    if (state.pending_pos == state.pending.size()) {
      state.pending.clear();
      state.pending_pos = 0;
    }
  }
  if (state.close_after) {
    if (trace_) Trace(Cat("node.close link=", link.value));
    links_.erase(link);
    network_.PeerClose(link);
  }
}

void NodePeer::ScheduleTick() {
  std::optional<Instant> next = pg_.NextDeadline();
  if (next && *next < Now()) next = Now();
  if (tick_event_ && next && tick_at_ == *next) return;
  if (tick_event_) {
    timeline_.Cancel(*tick_event_);
    tick_event_.reset();
  }
  if (!next) return;
  tick_at_ = *next;
  tick_event_ = timeline_.Schedule(*next, [this] {
    tick_event_.reset();
    pg_.Tick(Now());
    Drain();
  });
}

std::optional<uint64_t> NodePeer::BytesWrittenByPid(int32_t pid) const {
  if (pid == 0) return std::nullopt;
  for (const auto& [link, state] : links_) {
    std::optional<SessionView> view = pg_.InspectSession(link.value);
    if (view && view->pid == pid) return state.written;
  }
  return std::nullopt;
}

void NodePeer::Trace(std::string_view line) const {
  if (trace_) trace_(Cat("t=", Now().us, " ", line));
}

uint64_t NodePeer::bytes_queued() const {
  uint64_t queued = 0;
  for (const auto& [link, state] : links_) queued += state.unsent().size();
  return queued;
}

// ---------------------------------------------------------------- faults

void NodePeer::Crash() {
  Trace(Cat("node.crash links=", links_.size()));
  pg_.Crash();
  network_.SetNodeUp(node_, false);
  links_.clear();
  network_.ResetPeer(peer_, "node crashed");
  ScheduleTick();
}

void NodePeer::Shutdown() {
  Trace(Cat("node.shutdown links=", links_.size()));
  pg_.Shutdown(Now());
  network_.SetNodeUp(node_, false);
  Drain();
}

void NodePeer::Restart() {
  if (pg_.up()) return;
  Trace(Cat("node.restart links=", links_.size()));
  pg_.Restart(Now());
  network_.SetNodeUp(node_, true);
  Drain();
}

void NodePeer::Pause(bool paused) {
  Trace(paused ? "node.pause" : "node.unpause");
  pg_.Pause(paused, Now());
  Drain();
}

void NodePeer::SetSlowness(int64_t extra_us_per_statement) {
  if (trace_) Trace(Cat("node.slowness extra_us=", extra_us_per_statement));
  pg_.SetSlowness(extra_us_per_statement);
}

bool NodePeer::TerminateSession(uint64_t pick) {
  std::vector<uint64_t> candidates;
  for (uint64_t id : pg_.SessionIds()) {
    if (links_.contains(io_sim::LinkId{id})) candidates.push_back(id);
  }
  if (candidates.empty()) return false;
  const uint64_t victim = candidates[pick % candidates.size()];
  Trace(Cat("node.terminate link=", victim));
  pg_.TerminateSession(victim, Now());
  Drain();
  return true;
}

absl::Status NodePeer::ReplicateFrom(const PgNode& upstream, uint64_t upto_lsn) {
  absl::Status status = pg_.ReplicateFrom(upstream, upto_lsn, Now());
  Drain();
  return status;
}

absl::Status NodePeer::Promote() {
  Trace("node.promote");
  absl::Status status = pg_.Promote(Now());
  Drain();
  return status;
}

void NodePeer::RebuildAsReplicaOf(const PgNode& upstream) {
  Trace(Cat("node.rebuild links=", links_.size()));
  // As a crash: the old sessions vanish and their connections are reset.
  pg_.Crash();
  network_.SetNodeUp(node_, false);
  links_.clear();
  network_.ResetPeer(peer_, "node rebuilt");
  pg_.RebuildAsReplicaOf(upstream, Now());
  network_.SetNodeUp(node_, true);
  Drain();
}

}  // namespace switchyard::sim
