// SimNetwork: simulated TCP connections between the proxy and its peers (simulated clients and
// PostgreSQL nodes), with latency, writes cut into pieces, a bounded window per direction, and
// faults (DESIGN.md section 7): a reset at any byte, black holes, refused and timed-out
// connects. Every choice goes through the DecisionSource; every delivery, cut and fault is
// folded into the RunHash.
//
// Both ends read by pulling (Read/PeerRead) after being told something changed, as a socket
// is read after the poll set reports it. The proxy end is named by the ConnId the core uses;
// a peer end by the LinkId the network hands out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_format.h"
#include "core/base/types.h"
#include "io_sim/decision.h"
#include "io_sim/event_queue.h"
#include "io_sim/run_hash.h"

namespace switchyard::io_sim {

// Rates are in parts per million.
inline constexpr uint32_t kPpm = 1'000'000;

struct LatencyConfig {
  int64_t base_us = 100;
  int64_t jitter_us = 0;     // plus a uniform [0, jitter_us]
  uint32_t spike_ppm = 0;    // per piece: chance of an extra delay...
  int64_t spike_us_max = 0;  // ...uniform in [1, spike_us_max]
};

// Every fault is off unless a run turns it on (swarm testing draws these per seed).
struct FaultConfig {
  // Per write: the connection resets after delivering a prefix of the write (any length, even
  // zero or all of it); both ends then read what they had, then a reset.
  uint32_t reset_ppm = 0;
  // Per write: from a random byte of the write on, nothing more arrives in either direction
  // and no close is ever reported: the connection hangs.
  uint32_t black_hole_ppm = 0;
  // 0: a black hole hangs forever. Otherwise it resets this long after it began (what TCP's
  // retransmission timeout eventually does).
  int64_t black_hole_reset_after_us = 0;
  // Per proxy connect to a node.
  uint32_t connect_refused_ppm = 0;
  uint32_t connect_timeout_ppm = 0;  // never answered: the proxy's own timer must give up
};

struct NetworkConfig {
  LatencyConfig latency;
  FaultConfig faults;
  // Per write: chance that the remaining bytes are cut again, at a uniform point.
  uint32_t cut_ppm = 0;
  size_t pieces_per_write_max = 16;
  // Bytes accepted from a writer and not yet read by the reader, per direction; a full window
  // makes writes short (the socket buffers are full).
  size_t window_bytes = size_t{256} << 10;
  // Bound on what a peer may queue with PeerSend beyond the window.
  size_t peer_send_queue_bytes_max = size_t{64} << 20;

  // "latency_base_us=100 ... reset_ppm=0 ...": every option, for the run's header.
  std::string Describe() const;
};

// Names a simulated client or node, for logs and the run hash.
struct PeerId {
  uint32_t value = 0;
  friend auto operator<=>(const PeerId&, const PeerId&) = default;
};

// One simulated connection, as a peer names it.
struct LinkId {
  uint64_t value = 0;
  bool valid() const { return value != 0; }
  friend auto operator<=>(const LinkId&, const LinkId&) = default;
};

struct ReadResult {
  enum class Kind {
    kData,   // `bytes` holds 1..max bytes
    kEmpty,  // nothing now (EAGAIN)
    kEof,    // the other end closed after everything it sent
    kReset,  // the connection broke; `why` says how
  };
  Kind kind = Kind::kEmpty;
  std::string bytes;
  std::string why;
};

struct WriteResult {
  size_t accepted = 0;  // may be short (window full) or zero
  bool broken = false;  // the connection is reset: nothing was taken
  std::string why;
};

// A simulated client or node. Callbacks run inside network events; a peer may read, write and
// close from them (writes are delivered by later events, never re-entrantly).
class Peer {
 public:
  virtual ~Peer() = default;
  // A node: the proxy opened a connection to it.
  virtual void OnAccepted(LinkId link) { (void)link; }
  // A client: its connection reached the proxy. A refused one is reported as a reset read.
  virtual void OnConnected(LinkId link) { (void)link; }
  // Bytes, an end of stream or a reset can be read with PeerRead.
  virtual void OnReadable(LinkId link) = 0;
  // A short PeerWrite may now take more (PeerSend needs no help).
  virtual void OnWritable(LinkId link) { (void)link; }
};

// The proxy side: the SimDriver.
class ProxyEndpoint {
 public:
  virtual ~ProxyEndpoint() = default;
  // A client's connection arrived; returns the ConnId that names the proxy's end.
  virtual ConnId OnAccept(LinkId link, PeerId client) = 0;
  // A proxy-side connection changed: bytes or a close to read, a connect resolved, or the
  // window opened. The endpoint checks what it is armed for; it must not read re-entrantly.
  virtual void OnChanged(ConnId conn) = 0;
};

class SimNetwork {
 public:
  SimNetwork(NetworkConfig config, Timeline& timeline, DecisionSource& decisions,
             RunHash* hash = nullptr);
  ~SimNetwork();
  SimNetwork(const SimNetwork&) = delete;
  SimNetwork& operator=(const SimNetwork&) = delete;

  const NetworkConfig& config() const { return config_; }
  // Faults may change during a run (a liveness phase heals them).
  void set_faults(const FaultConfig& faults) { config_.faults = faults; }
  // Latency spikes are a fault too: a heal ends them (base latency and jitter stay).
  void end_latency_spikes() { config_.latency.spike_ppm = 0; }
  // One line per event, for a failing seed's timeline. Formatting costs only when set.
  void set_trace(std::function<void(std::string_view)> trace) { trace_ = std::move(trace); }

  // --- The proxy side ---
  void Attach(ProxyEndpoint* proxy) { proxy_ = proxy; }
  // While false, clients' connects are refused (a draining proxy has closed its listener).
  void SetAccepting(bool accepting) { accepting_ = accepting; }
  // Opens `conn` to `node`; ConnectStatus() tells how it went once OnChanged reports it.
  void Connect(ConnId conn, NodeId node);
  enum class ConnectState { kPending, kConnected, kFailed };
  ConnectState ConnectStatus(ConnId conn, std::string* why = nullptr) const;
  WriteResult Write(ConnId conn, std::string_view bytes);
  ReadResult Read(ConnId conn, size_t max);
  // What a poll set would report: something to read (bytes, end of stream, reset, a failed
  // connect); room to write (or a connect resolved); a hang-up (reset or failed connect).
  bool Readable(ConnId conn) const;
  bool Writable(ConnId conn) const;
  bool HungUp(ConnId conn) const;
  // The proxy releases its end: what it wrote is still delivered, then an end of stream.
  void Close(ConnId conn);
  bool HasConn(ConnId conn) const { return by_conn_.contains(conn); }

  // --- Peers ---
  void Listen(NodeId node, PeerId id, Peer* peer);
  // A node that is down refuses connects. Taking it down leaves its open connections alone.
  void SetNodeUp(NodeId node, bool up);
  // Resets every open connection of a peer at once (a node crash, a client killed).
  void ResetPeer(PeerId id, std::string_view why);
  LinkId ConnectToProxy(PeerId client, Peer* peer);
  WriteResult PeerWrite(LinkId link, std::string_view bytes);
  // Queues everything, beyond the window if need be (up to peer_send_queue_bytes_max).
  void PeerSend(LinkId link, std::string_view bytes);
  ReadResult PeerRead(LinkId link, size_t max);
  // The peer is done: queued bytes still go out, then an end of stream; it reads no more.
  void PeerClose(LinkId link);
  // Abortive close: both ends see a reset now.
  void PeerReset(LinkId link, std::string_view why);

  // Links still known (open, or closed at one end only).
  size_t link_count() const { return links_.size(); }
  // Whether everything already sent has arrived: no byte, close or reset on the wire in either
  // direction of any link, and no black hole waiting for its timed-out reset. Faults inflicted
  // before a heal keep their effects in flight (a FATAL delayed by a latency spike); until the
  // network settles, an end may not yet know that its connection is dead. A black hole that
  // never resets (black_hole_reset_after_us == 0) does not count: nothing will ever arrive.
  bool Settled() const;
  // The link behind a proxy-side connection, and the reverse (for traces and tests).
  std::optional<LinkId> LinkOf(ConnId conn) const;
  std::optional<ConnId> ConnOf(LinkId link) const;

 private:
  enum class Dir { kToPeer, kToProxy };
  struct Piece {
    enum class Kind { kData, kFin, kReset, kSynAck };
    uint64_t id = 0;
    Kind kind = Kind::kData;
    std::string bytes;
  };
  // One direction of a link: pieces on the wire, then what the reader has not read yet.
  struct Flow {
    std::deque<Piece> in_flight;
    std::string unread;
    size_t unread_pos = 0;
    size_t outstanding = 0;       // window use: accepted from the writer, not read by the reader
    Instant last_at;              // pieces arrive in order: none before this
    bool writer_blocked = false;  // a write came up short; tell the writer when room opens
    bool fin_queued = false;
    bool fin_delivered = false;
    uint64_t written = 0;  // stream offsets, for the hash and traces
    uint64_t delivered = 0;
    // PeerSend beyond the window (peer-to-proxy only): send_queue[send_queue_pos..]. An offset,
    // not an erase per window's worth, which would move a large queue's tail every time.
    std::string send_queue;
    size_t send_queue_pos = 0;
    std::string_view queued() const { return std::string_view(send_queue).substr(send_queue_pos); }
    void ClearQueue() {
      send_queue.clear();
      send_queue_pos = 0;
    }
    bool close_after_send = false;
  };
  struct Link {
    LinkId id;
    PeerId peer;
    Peer* handler = nullptr;
    bool proxy_initiated = false;
    NodeId node;
    ConnId conn;  // the proxy's name for its end; invalid until accepted
    ConnectState connect = ConnectState::kPending;
    std::string connect_why;
    bool proxy_open = false;  // the proxy end exists and has not been released
    bool peer_open = false;
    bool reset = false;
    std::string reset_why;
    bool black_hole = false;
    bool reset_scheduled = false;  // a reset piece is on its way: later bytes vanish
    Flow to_peer;
    Flow to_proxy;
    Flow& flow(Dir dir) { return dir == Dir::kToPeer ? to_peer : to_proxy; }
  };

  Link* Find(LinkId id);
  const Link* Find(LinkId id) const;
  Link* FindConn(ConnId conn);
  const Link* FindConn(ConnId conn) const;
  Link& NewLink(PeerId peer, Peer* handler, bool proxy_initiated);
  int64_t Latency();
  static int64_t LinkCode(const Link& link) { return static_cast<int64_t>(link.id.value); }
  void Record(std::string_view kind, std::initializer_list<int64_t> fields,
              std::string_view bytes = {});
  void QueueFin(Link& link, Dir dir);
  void ScheduleForget(LinkId id);
  // A writer's bytes enter a direction: faults are decided, then the bytes are cut and
  // scheduled. Returns how many were taken.
  size_t Transmit(Link& link, Dir dir, std::string_view bytes);
  void SendPieces(Link& link, Dir dir, std::string_view bytes);
  void SchedulePiece(Link& link, Dir dir, Piece piece);
  void Deliver(LinkId id, Dir dir, uint64_t piece_id);
  void DeliverData(Link& link, Dir dir, std::string bytes);
  void ResetLink(Link& link, std::string_view why);
  ReadResult ReadFlow(Link& link, Dir dir, size_t max);
  void Consumed(Link& link, Dir dir, size_t n);
  void FlushPeerQueue(Link& link);
  void ArriveAtProxy(LinkId id);
  void NodeAccepts(LinkId id);
  void FailConnect(Link& link, std::string_view why);
  void NotifyReader(Link& link, Dir dir);
  void NotifyWriter(Link& link, Dir dir);
  void MaybeForget(LinkId id);
  void Trace(std::string_view line);
  template <typename... Args>
  void Tracef(const absl::FormatSpec<Args...>& format, const Args&... args) {
    if (trace_) Trace(absl::StrFormat(format, args...));
  }

  NetworkConfig config_;
  Timeline& timeline_;
  DecisionSource& decisions_;
  RunHash* hash_;
  std::function<void(std::string_view)> trace_;
  ProxyEndpoint* proxy_ = nullptr;
  bool accepting_ = true;
  uint64_t next_link_ = 1;
  uint64_t next_piece_ = 1;
  std::map<LinkId, Link> links_;  // ordered: ResetPeer and Settled walk it
  // Lookups only, never iterated (their order is a hash's): every read, write and delivery
  // finds its link. std::map nodes do not move, so the pointers stay valid until erased.
  absl::flat_hash_map<uint64_t, Link*> link_index_;  // LinkId::value -> links_ entry
  absl::flat_hash_map<ConnId, Link*> by_conn_;
  size_t hang_resets_pending_ = 0;  // black holes whose timed-out reset is scheduled
  struct Listener {
    PeerId id;
    Peer* peer = nullptr;
    bool up = true;
  };
  std::map<NodeId, Listener> listeners_;
};

}  // namespace switchyard::io_sim
