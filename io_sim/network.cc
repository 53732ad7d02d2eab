// Simulated connections: pieces on the wire are timeline events; faults and cuts are decisions.
#include "io_sim/network.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/base/check.h"

namespace switchyard::io_sim {
namespace {

int64_t DirCode(bool to_peer) { return to_peer ? 0 : 1; }

const char* DirName(bool to_peer) { return to_peer ? "to_peer" : "to_proxy"; }

}  // namespace

std::string NetworkConfig::Describe() const {
  return absl::StrFormat(
      "latency_base_us=%d latency_jitter_us=%d latency_spike_ppm=%d latency_spike_us_max=%d "
      "cut_ppm=%d pieces_per_write_max=%d window_bytes=%d reset_ppm=%d black_hole_ppm=%d "
      "black_hole_reset_after_us=%d connect_refused_ppm=%d connect_timeout_ppm=%d",
      latency.base_us, latency.jitter_us, latency.spike_ppm, latency.spike_us_max, cut_ppm,
      pieces_per_write_max, window_bytes, faults.reset_ppm, faults.black_hole_ppm,
      faults.black_hole_reset_after_us, faults.connect_refused_ppm, faults.connect_timeout_ppm);
}

SimNetwork::SimNetwork(NetworkConfig config, Timeline& timeline, DecisionSource& decisions,
                       RunHash* hash)
    : config_(std::move(config)), timeline_(timeline), decisions_(decisions), hash_(hash) {
  CHECK(config_.window_bytes > 0) << "a window of 0 bytes can never carry anything";
  CHECK(config_.pieces_per_write_max >= 1);
  CHECK(config_.latency.base_us >= 0 && config_.latency.jitter_us >= 0 &&
        config_.latency.spike_us_max >= 0)
      << "negative latency";
}

SimNetwork::~SimNetwork() = default;

void SimNetwork::Trace(std::string_view line) {
  if (trace_) trace_(absl::StrFormat("t=%d %s", timeline_.now().us, line));
}

void SimNetwork::Record(std::string_view kind, std::initializer_list<int64_t> fields,
                        std::string_view bytes) {
  if (hash_ != nullptr) hash_->Record(kind, timeline_.now(), fields, bytes);
}

// ---------------------------------------------------------------- lookup

SimNetwork::Link* SimNetwork::Find(LinkId id) {
  auto it = link_index_.find(id.value);
  return it == link_index_.end() ? nullptr : it->second;
}

const SimNetwork::Link* SimNetwork::Find(LinkId id) const {
  auto it = link_index_.find(id.value);
  return it == link_index_.end() ? nullptr : it->second;
}

SimNetwork::Link* SimNetwork::FindConn(ConnId conn) {
  auto it = by_conn_.find(conn);
  return it == by_conn_.end() ? nullptr : it->second;
}

const SimNetwork::Link* SimNetwork::FindConn(ConnId conn) const {
  auto it = by_conn_.find(conn);
  return it == by_conn_.end() ? nullptr : it->second;
}

std::optional<LinkId> SimNetwork::LinkOf(ConnId conn) const {
  const Link* link = FindConn(conn);
  if (link == nullptr) return std::nullopt;
  return link->id;
}

std::optional<ConnId> SimNetwork::ConnOf(LinkId id) const {
  const Link* link = Find(id);
  if (link == nullptr || !link->proxy_open) return std::nullopt;
  return link->conn;
}

SimNetwork::Link& SimNetwork::NewLink(PeerId peer, Peer* handler, bool proxy_initiated) {
  const LinkId id{next_link_++};
  Link& link = links_[id];
  link_index_[id.value] = &link;
  link.id = id;
  link.peer = peer;
  link.handler = handler;
  link.proxy_initiated = proxy_initiated;
  link.to_peer.last_at = timeline_.now();
  link.to_proxy.last_at = timeline_.now();
  return link;
}

void SimNetwork::ScheduleForget(LinkId id) {
  // Deferred: the caller may be inside a callback that still holds the link.
  timeline_.Schedule(timeline_.now(), [this, id] { MaybeForget(id); });
}

bool SimNetwork::Settled() const {
  if (hang_resets_pending_ > 0) return false;
  return std::none_of(links_.begin(), links_.end(), [](const auto& entry) {
    const Link& link = entry.second;
    return !link.to_peer.in_flight.empty() || !link.to_proxy.in_flight.empty();
  });
}

void SimNetwork::MaybeForget(LinkId id) {
  const Link* link = Find(id);
  if (link == nullptr || link->proxy_open || link->peer_open) return;
  if (link->conn.valid()) by_conn_.erase(link->conn);
  link_index_.erase(id.value);
  links_.erase(id);
}

// ---------------------------------------------------------------- sending

int64_t SimNetwork::Latency() {
  const LatencyConfig& latency = config_.latency;
  int64_t us = latency.base_us + decisions_.Between(0, latency.jitter_us, "net.latency");
  if (latency.spike_us_max > 0 && decisions_.Chance(latency.spike_ppm, kPpm, "net.spike")) {
    us += decisions_.Between(1, latency.spike_us_max, "net.spike_us");
  }
  return us;
}

size_t SimNetwork::Transmit(Link& link, Dir dir, std::string_view bytes) {
  Flow& flow = link.flow(dir);
  const bool to_peer = dir == Dir::kToPeer;
  CHECK(!link.reset) << "transmit on a reset link";
  CHECK(!flow.fin_queued) << "write after close on link " << link.id.value;
  const size_t room = config_.window_bytes - std::min(config_.window_bytes, flow.outstanding);
  const size_t take = std::min(bytes.size(), room);
  if (take < bytes.size()) flow.writer_blocked = true;
  if (take == 0) return 0;
  const std::string_view part = bytes.substr(0, take);
  const uint64_t offset = flow.written;
  flow.outstanding += take;
  flow.written += take;
  if (link.black_hole || link.reset_scheduled) {
    // Vanished bytes keep their place in the window: a hung connection fills up and blocks.
    Record("vanish", {LinkCode(link), DirCode(to_peer), static_cast<int64_t>(take)});
    return take;
  }
  const FaultConfig& faults = config_.faults;
  if (decisions_.Chance(faults.reset_ppm, kPpm, "net.reset")) {
    const size_t keep = decisions_.Below(take + 1, "net.reset_at");
    Record("fault_reset", {LinkCode(link), DirCode(to_peer), static_cast<int64_t>(offset + keep)});
    Tracef("net.fault kind=reset link=%d dir=%s at_byte=%d", link.id.value, DirName(to_peer),
           offset + keep);
    SendPieces(link, dir, part.substr(0, keep));
    SchedulePiece(link, dir, Piece{0, Piece::Kind::kReset, ""});
    link.reset_scheduled = true;
    return take;
  }
  if (decisions_.Chance(faults.black_hole_ppm, kPpm, "net.black_hole")) {
    const size_t keep = decisions_.Below(take + 1, "net.black_hole_at");
    Record("fault_black_hole",
           {LinkCode(link), DirCode(to_peer), static_cast<int64_t>(offset + keep)});
    Tracef("net.fault kind=black_hole link=%d dir=%s at_byte=%d", link.id.value, DirName(to_peer),
           offset + keep);
    SendPieces(link, dir, part.substr(0, keep));
    link.black_hole = true;
    if (faults.black_hole_reset_after_us > 0) {
      const LinkId id = link.id;
      ++hang_resets_pending_;
      timeline_.ScheduleAfter(faults.black_hole_reset_after_us, [this, id] {
        --hang_resets_pending_;
        if (Link* hung = Find(id); hung != nullptr) ResetLink(*hung, "connection timed out");
      });
    }
    return take;
  }
  SendPieces(link, dir, part);
  return take;
}

void SimNetwork::SendPieces(Link& link, Dir dir, std::string_view bytes) {
  size_t pieces = 0;
  while (!bytes.empty()) {
    size_t length = bytes.size();
    if (length > 1 && pieces + 1 < config_.pieces_per_write_max &&
        decisions_.Chance(config_.cut_ppm, kPpm, "net.cut")) {
      length = 1 + decisions_.Below(length - 1, "net.cut_at");
    }
    SchedulePiece(link, dir, Piece{0, Piece::Kind::kData, std::string(bytes.substr(0, length))});
    bytes.remove_prefix(length);
    ++pieces;
  }
}

void SimNetwork::SchedulePiece(Link& link, Dir dir, Piece piece) {
  Flow& flow = link.flow(dir);
  // Pieces of one direction arrive in the order they were sent (TCP), whatever their latency.
  const Instant at = std::max(timeline_.now() + Latency(), flow.last_at);
  flow.last_at = at;
  piece.id = next_piece_++;
  const uint64_t piece_id = piece.id;
  Record("send", {LinkCode(link), DirCode(dir == Dir::kToPeer), static_cast<int64_t>(piece.kind),
                  static_cast<int64_t>(piece.bytes.size()), at.us});
  flow.in_flight.push_back(std::move(piece));
  const LinkId id = link.id;
  timeline_.Schedule(at, [this, id, dir, piece_id] { Deliver(id, dir, piece_id); });
}

void SimNetwork::QueueFin(Link& link, Dir dir) {
  Flow& flow = link.flow(dir);
  if (flow.fin_queued || link.reset) return;
  flow.fin_queued = true;
  // A black hole swallows the close as well: the other end never hears of it.
  if (link.black_hole || link.reset_scheduled) return;
  SchedulePiece(link, dir, Piece{0, Piece::Kind::kFin, ""});
}

// ---------------------------------------------------------------- delivery

void SimNetwork::Deliver(LinkId id, Dir dir, uint64_t piece_id) {
  Link* link = Find(id);
  if (link == nullptr) return;
  Flow& flow = link->flow(dir);
  // A reset drops what was still on the wire; its delivery events find nothing.
  if (flow.in_flight.empty() || flow.in_flight.front().id != piece_id) return;
  Piece piece = std::move(flow.in_flight.front());
  flow.in_flight.pop_front();
  const bool to_peer = dir == Dir::kToPeer;
  switch (piece.kind) {
    case Piece::Kind::kData:
      Record("deliver", {LinkCode(*link), DirCode(to_peer), static_cast<int64_t>(flow.delivered)},
             piece.bytes);
      Tracef("net.deliver link=%d dir=%s offset=%d bytes=%d", id.value, DirName(to_peer),
             flow.delivered, piece.bytes.size());
      flow.delivered += piece.bytes.size();
      DeliverData(*link, dir, std::move(piece.bytes));
      break;
    case Piece::Kind::kFin:
      Record("fin", {LinkCode(*link), DirCode(to_peer)});
      Tracef("net.fin link=%d dir=%s", id.value, DirName(to_peer));
      flow.fin_delivered = true;
      NotifyReader(*link, dir);
      break;
    case Piece::Kind::kReset:
      ResetLink(*link, "connection reset by peer");
      break;
    case Piece::Kind::kSynAck:
      Record("connected", {LinkCode(*link)});
      Tracef("net.connected link=%d conn=c%d.%d", id.value, link->conn.index,
             link->conn.generation);
      link->connect = ConnectState::kConnected;
      NotifyReader(*link, dir);
      break;
  }
}

void SimNetwork::DeliverData(Link& link, Dir dir, std::string bytes) {
  Flow& flow = link.flow(dir);
  const bool reader_open = dir == Dir::kToPeer ? link.peer_open : link.proxy_open;
  if (!reader_open) {
    // Nobody will read it: it leaves the window at once.
    Consumed(link, dir, bytes.size());
    return;
  }
  if (flow.unread.empty()) {
    flow.unread = std::move(bytes);  // the usual case: the reader had read everything
  } else {
    flow.unread.append(bytes);
  }
  NotifyReader(link, dir);
}

void SimNetwork::ResetLink(Link& link, std::string_view why) {
  if (link.reset) return;
  link.reset = true;
  link.reset_why = std::string(why);
  for (Flow* flow : {&link.to_peer, &link.to_proxy}) {
    flow->in_flight.clear();
    flow->ClearQueue();
    flow->writer_blocked = false;
  }
  Record("reset", {LinkCode(link)}, why);
  Tracef("net.reset link=%d why=%s", link.id.value, std::string(why));
  // Both ends hear of it: each reads what had arrived, then the reset.
  NotifyReader(link, Dir::kToPeer);
  NotifyReader(link, Dir::kToProxy);
}

void SimNetwork::NotifyReader(Link& link, Dir dir) {
  if (dir == Dir::kToPeer) {
    if (link.peer_open && link.handler != nullptr) link.handler->OnReadable(link.id);
  } else if (link.proxy_open && proxy_ != nullptr) {
    proxy_->OnChanged(link.conn);
  }
}

void SimNetwork::NotifyWriter(Link& link, Dir dir) {
  if (dir == Dir::kToPeer) {
    if (link.proxy_open && proxy_ != nullptr) proxy_->OnChanged(link.conn);
  } else if (link.peer_open && link.handler != nullptr) {
    link.handler->OnWritable(link.id);
  }
}

// ---------------------------------------------------------------- reading

ReadResult SimNetwork::ReadFlow(Link& link, Dir dir, size_t max) {
  Flow& flow = link.flow(dir);
  ReadResult result;
  const size_t available = flow.unread.size() - flow.unread_pos;
  if (available > 0 && max > 0) {
    const size_t n = std::min(max, available);
    result.kind = ReadResult::Kind::kData;
    if (flow.unread_pos == 0 && n == flow.unread.size()) {
      result.bytes = std::move(flow.unread);  // all of it: hand the buffer over
      flow.unread.clear();
    } else {
      result.bytes = flow.unread.substr(flow.unread_pos, n);
      flow.unread_pos += n;
      if (flow.unread_pos == flow.unread.size()) {
        flow.unread.clear();
        flow.unread_pos = 0;
      } else if (flow.unread_pos >= (size_t{64} << 10) &&
                 flow.unread_pos * 2 >= flow.unread.size()) {
        flow.unread.erase(0, flow.unread_pos);  // keep the buffer from creeping forward forever
        flow.unread_pos = 0;
      }
    }
    Consumed(link, dir, n);
    return result;
  }
  if (link.reset) {
    result.kind = ReadResult::Kind::kReset;
    result.why = link.reset_why;
  } else if (flow.fin_delivered) {
    result.kind = ReadResult::Kind::kEof;
  } else if (dir == Dir::kToProxy && link.connect == ConnectState::kFailed) {
    result.kind = ReadResult::Kind::kReset;
    result.why = link.connect_why;
  }
  return result;
}

void SimNetwork::Consumed(Link& link, Dir dir, size_t n) {
  Flow& flow = link.flow(dir);
  CHECK_LE(n, flow.outstanding);
  flow.outstanding -= n;
  if (link.reset || flow.outstanding >= config_.window_bytes) return;
  if (dir == Dir::kToProxy && !flow.queued().empty()) FlushPeerQueue(link);
  if (flow.writer_blocked && flow.outstanding < config_.window_bytes) {
    flow.writer_blocked = false;
    NotifyWriter(link, dir);
  }
}

// ---------------------------------------------------------------- the proxy side

void SimNetwork::Connect(ConnId conn, NodeId node) {
  CHECK(conn.valid()) << "connect with an invalid ConnId";
  CHECK(!by_conn_.contains(conn)) << "connect reuses a live ConnId";
  auto listener = listeners_.find(node);
  const bool listening = listener != listeners_.end();
  Link& link = NewLink(listening ? listener->second.id : PeerId{},
                       listening ? listener->second.peer : nullptr, /*proxy_initiated=*/true);
  link.node = node;
  link.conn = conn;
  link.proxy_open = true;
  by_conn_[conn] = &link;
  Record("connect", {LinkCode(link), static_cast<int64_t>(conn.packed()), node.index});
  Tracef("net.connect link=%d conn=c%d.%d node=%d", link.id.value, conn.index, conn.generation,
         node.index);
  const LinkId id = link.id;
  const int64_t delay = Latency();
  const FaultConfig& faults = config_.faults;
  if (!listening || !listener->second.up) {
    timeline_.ScheduleAfter(delay, [this, id] {
      if (Link* l = Find(id); l != nullptr) FailConnect(*l, "connection refused");
    });
  } else if (decisions_.Chance(faults.connect_refused_ppm, kPpm, "net.connect_refused")) {
    Record("fault_refused", {LinkCode(link)});
    timeline_.ScheduleAfter(delay, [this, id] {
      if (Link* l = Find(id); l != nullptr) FailConnect(*l, "connection refused");
    });
  } else if (decisions_.Chance(faults.connect_timeout_ppm, kPpm, "net.connect_timeout")) {
    // The SYN is lost and so is every retry: only the proxy's own timer ends this.
    Record("fault_connect_timeout", {LinkCode(link)});
    Tracef("net.fault kind=connect_timeout link=%d", id.value);
  } else {
    timeline_.ScheduleAfter(delay, [this, id] { NodeAccepts(id); });
  }
}

void SimNetwork::NodeAccepts(LinkId id) {
  Link* link = Find(id);
  if (link == nullptr || !link->proxy_open) return;  // the proxy gave up meanwhile
  auto listener = listeners_.find(link->node);
  if (listener == listeners_.end() || !listener->second.up) {
    const int64_t delay = Latency();
    timeline_.ScheduleAfter(delay, [this, id] {
      if (Link* l = Find(id); l != nullptr) FailConnect(*l, "connection refused");
    });
    return;
  }
  link->peer_open = true;
  Record("node_accept", {LinkCode(*link), link->node.index});
  // The SYN-ACK travels back like any piece, so the node's first bytes come after it.
  SchedulePiece(*link, Dir::kToProxy, Piece{0, Piece::Kind::kSynAck, ""});
  if (link->handler != nullptr) link->handler->OnAccepted(id);
}

void SimNetwork::FailConnect(Link& link, std::string_view why) {
  if (link.connect != ConnectState::kPending || link.reset) return;
  link.connect = ConnectState::kFailed;
  link.connect_why = std::string(why);
  Record("connect_failed", {LinkCode(link)}, why);
  Tracef("net.connect_failed link=%d why=%s", link.id.value, std::string(why));
  NotifyReader(link, Dir::kToProxy);
}

SimNetwork::ConnectState SimNetwork::ConnectStatus(ConnId conn, std::string* why) const {
  const Link* link = FindConn(conn);
  CHECK(link != nullptr) << "connect status of an unknown connection";
  if (link->connect == ConnectState::kPending && link->reset) {
    if (why != nullptr) *why = link->reset_why;
    return ConnectState::kFailed;
  }
  if (why != nullptr) *why = link->connect_why;
  return link->connect;
}

WriteResult SimNetwork::Write(ConnId conn, std::string_view bytes) {
  Link* link = FindConn(conn);
  CHECK(link != nullptr) << "write on an unknown connection c" << conn.index;
  WriteResult result;
  if (link->reset || link->connect == ConnectState::kFailed) {
    result.broken = true;
    result.why = link->reset ? link->reset_why : link->connect_why;
    return result;
  }
  CHECK(link->connect == ConnectState::kConnected) << "write before the connect finished";
  result.accepted = Transmit(*link, Dir::kToPeer, bytes);
  return result;
}

ReadResult SimNetwork::Read(ConnId conn, size_t max) {
  Link* link = FindConn(conn);
  CHECK(link != nullptr) << "read on an unknown connection c" << conn.index;
  return ReadFlow(*link, Dir::kToProxy, max);
}

bool SimNetwork::Readable(ConnId conn) const {
  const Link* link = FindConn(conn);
  if (link == nullptr) return false;
  const Flow& flow = link->to_proxy;
  return flow.unread.size() > flow.unread_pos || flow.fin_delivered || link->reset ||
         link->connect == ConnectState::kFailed;
}

bool SimNetwork::Writable(ConnId conn) const {
  const Link* link = FindConn(conn);
  if (link == nullptr) return false;
  if (link->reset || link->connect == ConnectState::kFailed) return true;  // the error reports
  if (link->connect == ConnectState::kPending) return false;
  return link->to_peer.outstanding < config_.window_bytes;
}

bool SimNetwork::HungUp(ConnId conn) const {
  const Link* link = FindConn(conn);
  return link != nullptr && (link->reset || link->connect == ConnectState::kFailed);
}

void SimNetwork::Close(ConnId conn) {
  Link* link = FindConn(conn);
  CHECK(link != nullptr) << "close of an unknown connection c" << conn.index;
  by_conn_.erase(conn);
  link->proxy_open = false;
  Record("proxy_close", {LinkCode(*link)});
  Tracef("net.proxy_close link=%d conn=c%d.%d", link->id.value, conn.index, conn.generation);
  Flow& incoming = link->to_proxy;
  const size_t unread = incoming.unread.size() - incoming.unread_pos;
  incoming.unread.clear();
  incoming.unread_pos = 0;
  if (unread > 0) Consumed(*link, Dir::kToProxy, unread);
  if (link->connect == ConnectState::kConnected) QueueFin(*link, Dir::kToPeer);
  ScheduleForget(link->id);
}

// ---------------------------------------------------------------- peers

void SimNetwork::Listen(NodeId node, PeerId id, Peer* peer) {
  CHECK(peer != nullptr);
  listeners_[node] = Listener{id, peer, true};
}

void SimNetwork::SetNodeUp(NodeId node, bool up) {
  auto it = listeners_.find(node);
  CHECK(it != listeners_.end()) << "unknown node " << node.index;
  it->second.up = up;
  Record("node_up", {node.index, up ? 1 : 0});
}

void SimNetwork::ResetPeer(PeerId id, std::string_view why) {
  std::vector<LinkId> doomed;
  for (const auto& [link_id, link] : links_) {  // std::map: in LinkId order
    if (link.peer == id && link.peer_open) doomed.push_back(link_id);
  }
  for (LinkId link_id : doomed) {
    if (Link* link = Find(link_id); link != nullptr) {
      ResetLink(*link, why);
      link->peer_open = false;
      ScheduleForget(link_id);
    }
  }
}

LinkId SimNetwork::ConnectToProxy(PeerId client, Peer* peer) {
  CHECK(peer != nullptr);
  Link& link = NewLink(client, peer, /*proxy_initiated=*/false);
  link.peer_open = true;
  const LinkId id = link.id;
  Record("client_connect", {LinkCode(link), client.value});
  timeline_.ScheduleAfter(Latency(), [this, id] { ArriveAtProxy(id); });
  return id;
}

void SimNetwork::ArriveAtProxy(LinkId id) {
  Link* link = Find(id);
  if (link == nullptr) return;
  if (!link->peer_open) return ScheduleForget(id);  // the client gave up first
  if (proxy_ == nullptr || !accepting_) {
    Record("client_refused", {LinkCode(*link)});
    link->connect = ConnectState::kFailed;
    link->reset = true;
    link->reset_why = "connection refused";
    NotifyReader(*link, Dir::kToPeer);
    return;
  }
  const ConnId conn = proxy_->OnAccept(id, link->peer);
  link = Find(id);
  CHECK(link != nullptr);
  CHECK(conn.valid() && !by_conn_.contains(conn)) << "accepted under an unusable ConnId";
  link->conn = conn;
  link->proxy_open = true;
  link->connect = ConnectState::kConnected;
  by_conn_[conn] = link;
  Record("accept", {LinkCode(*link), static_cast<int64_t>(conn.packed())});
  Tracef("net.accept link=%d conn=c%d.%d client=%d", id.value, conn.index, conn.generation,
         link->peer.value);
  if (link->handler != nullptr) link->handler->OnConnected(id);
}

WriteResult SimNetwork::PeerWrite(LinkId id, std::string_view bytes) {
  Link* link = Find(id);
  CHECK(link != nullptr && link->peer_open) << "peer write on a closed link " << id.value;
  WriteResult result;
  if (link->reset) {
    result.broken = true;
    result.why = link->reset_why;
    return result;
  }
  CHECK(link->proxy_initiated || link->connect == ConnectState::kConnected)
      << "client write before its connection reached the proxy";
  CHECK(link->to_proxy.queued().empty()) << "PeerWrite behind bytes queued by PeerSend";
  result.accepted = Transmit(*link, Dir::kToProxy, bytes);
  return result;
}

void SimNetwork::PeerSend(LinkId id, std::string_view bytes) {
  Link* link = Find(id);
  CHECK(link != nullptr && link->peer_open) << "peer send on a closed link " << id.value;
  if (link->reset) return;  // gone, as a write to a reset socket is
  CHECK(link->proxy_initiated || link->connect == ConnectState::kConnected)
      << "client send before its connection reached the proxy";
  Flow& flow = link->to_proxy;
  CHECK_LE(flow.queued().size() + bytes.size(), config_.peer_send_queue_bytes_max);
  // What was sent goes once it is half the buffer: twice the queued bytes at most, at an
  // amortized constant cost per byte.
  if (flow.send_queue_pos * 2 >= flow.send_queue.size()) {
    flow.send_queue.erase(0, flow.send_queue_pos);
    flow.send_queue_pos = 0;
  }
  flow.send_queue.append(bytes);
  FlushPeerQueue(*link);
}

void SimNetwork::FlushPeerQueue(Link& link) {
  Flow& flow = link.to_proxy;
  if (link.reset) {
    flow.ClearQueue();
    return;
  }
  if (!flow.queued().empty()) {
    const size_t taken = Transmit(link, Dir::kToProxy, flow.queued());
    flow.send_queue_pos += taken;
    if (flow.send_queue_pos == flow.send_queue.size()) flow.ClearQueue();
    // The queue itself waits for room; only a PeerWrite caller needs OnWritable.
    flow.writer_blocked = false;
  }
  if (flow.queued().empty() && flow.close_after_send) QueueFin(link, Dir::kToProxy);
}

ReadResult SimNetwork::PeerRead(LinkId id, size_t max) {
  Link* link = Find(id);
  CHECK(link != nullptr && link->peer_open) << "peer read on a closed link " << id.value;
  return ReadFlow(*link, Dir::kToPeer, max);
}

void SimNetwork::PeerClose(LinkId id) {
  Link* link = Find(id);
  if (link == nullptr || !link->peer_open) return;
  link->peer_open = false;
  Record("peer_close", {LinkCode(*link)});
  Tracef("net.peer_close link=%d", id.value);
  Flow& incoming = link->to_peer;
  const size_t unread = incoming.unread.size() - incoming.unread_pos;
  incoming.unread.clear();
  incoming.unread_pos = 0;
  if (unread > 0) Consumed(*link, Dir::kToPeer, unread);
  link->to_proxy.close_after_send = true;
  if (link->to_proxy.queued().empty() &&
      (link->proxy_initiated || link->connect == ConnectState::kConnected)) {
    QueueFin(*link, Dir::kToProxy);
  }
  ScheduleForget(id);
}

void SimNetwork::PeerReset(LinkId id, std::string_view why) {
  Link* link = Find(id);
  if (link == nullptr || !link->peer_open) return;
  ResetLink(*link, why);
  link->peer_open = false;
  ScheduleForget(id);
}

}  // namespace switchyard::io_sim
