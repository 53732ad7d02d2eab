// TraceNode: a PostgreSQL node on the simulated network that answers from a capture
// (`switchyard replay --target sim`, docs/replay.md). It logs the proxy in (AuthenticationOk, the
// captured ParameterStatus set, BackendKeyData, ReadyForQuery), then answers each request the
// proxy forwards for a replayed client with the answer the capture recorded for that client's
// request (TraceScript matches them), whatever the node: a read the proxy sends to a replica is
// answered from the same capture. What the proxy sends on its own (health polls, replayed SETs
// and prepared statements, ROLLBACK, DISCARD ALL, LISTEN/UNLISTEN) is answered by the node
// itself, and anything else gets an ErrorResponse (0A000) rather than silence. Node faults
// (crash, fast shutdown, pause, slowness, a terminated backend, promotion, rebuild) are driven
// from here, as sim/node_peer.h does for the simulated PostgreSQL.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/types.h"
#include "core/protocol/framing.h"
#include "io_sim/event_queue.h"
#include "io_sim/network.h"

namespace switchyard::sim {

// One request of a captured client session: the messages up to and including the one the server
// answers with ReadyForQuery (Query, Sync, FunctionCall), COPY data left out, and the answer the
// capture recorded for it.
struct ScriptRequest {
  std::string bytes;                // the client's messages, as on the wire
  std::vector<std::string> answer;  // the captured answer messages, in order
  bool complete = true;             // the answer ends with its ReadyForQuery
  bool read_only = false;           // every statement in it is read-only (core/route)
  std::string text;                 // the statement text, for reports
};

// The captured requests of every replayed session, and which of them the replay clients have
// sent and not yet seen answered: a node matches what it receives against those.
class TraceScript {
 public:
  // Returns the new session's index.
  size_t AddSession(std::vector<ScriptRequest> requests);
  void set_login_parameters(std::vector<std::string> messages) {
    login_parameters_ = std::move(messages);
  }
  const std::vector<std::string>& login_parameters() const { return login_parameters_; }
  size_t sessions() const { return sessions_.size(); }
  size_t requests(size_t session) const { return sessions_.at(session).requests.size(); }
  const ScriptRequest& request(size_t session, size_t index) const {
    return sessions_.at(session).requests.at(index);
  }

  // --- The clients' side ---
  // The client of `session` sent its request `index`.
  void OnClientSent(size_t session, size_t index);
  // It received the ReadyForQuery that answers its oldest request still outstanding.
  void OnClientAnswered(size_t session);
  // It is gone: nothing of it is outstanding any more.
  void OnClientGone(size_t session);
  // Forgets every client's progress (a new run of the same capture).
  void Reset();

  // --- The nodes' side ---
  struct Match {
    size_t session = 0;
    size_t index = 0;
    uint32_t deliveries = 0;  // how many times a node received it before
  };
  // The outstanding request whose bytes are `bytes`: one no node received yet first, the
  // earliest sent among those; else the earliest sent (a retry). Counts the delivery.
  std::optional<Match> Claim(std::string_view bytes);

 private:
  struct Outstanding {
    size_t index = 0;
    uint64_t sent_seq = 0;
    uint32_t deliveries = 0;
  };
  struct Session {
    std::vector<ScriptRequest> requests;
    std::deque<Outstanding> outstanding;
  };
  std::vector<Session> sessions_;
  std::vector<std::string> login_parameters_;
  uint64_t next_seq_ = 1;
};

struct TraceNodeOptions {
  std::string name;  // "n0"
  NodeId node;
  io_sim::PeerId peer;
  bool replica = false;
  int32_t first_pid = 10000;
};

// What a node did with a request, for the oracles.
struct TraceNodeEvent {
  enum class Kind {
    kClientRequest,  // answered from the capture (or refused by a replica: `refused`)
    kOwnStatement,   // the proxy's own (a health poll, a replayed SET, ...), synthesized
    kUnknown,        // neither: answered with an error
    kCancel,         // a CancelRequest arrived
  };
  Kind kind = Kind::kClientRequest;
  size_t node = 0;
  std::optional<TraceScript::Match> match;
  bool read_only = false;
  bool in_recovery = false;
  bool refused = false;  // a replica refused a write with 25006
  std::string text;
};

class TraceNode final : public io_sim::Peer {
 public:
  // Listens on the network as `options.node`. Everything must outlive this object.
  TraceNode(TraceScript& script, io_sim::SimNetwork& network, io_sim::Timeline& timeline,
            TraceNodeOptions options);
  ~TraceNode() override;
  TraceNode(const TraceNode&) = delete;
  TraceNode& operator=(const TraceNode&) = delete;

  void set_observer(std::function<void(const TraceNodeEvent&)> observer) {
    observer_ = std::move(observer);
  }
  void set_trace(std::function<void(std::string_view)> trace) { trace_ = std::move(trace); }

  void OnAccepted(io_sim::LinkId link) override;
  void OnReadable(io_sim::LinkId link) override;
  void OnWritable(io_sim::LinkId link) override;

  // --- Faults ---
  void Crash();     // every connection reset, connects refused
  void Shutdown();  // FATAL 57P01 to every session, then down
  void Restart();   // up again (no-op when up)
  void Pause(bool paused);
  void SetSlowness(int64_t extra_us_per_request);
  // FATAL 57P01 to the `pick`-th logged-in session (modulo their number); false when none.
  bool TerminateSession(uint64_t pick);

  // --- Roles ---
  // pg_ctl promote: a primary on the next timeline; sessions hear in_hot_standby=off.
  void Promote();
  // Rebuilt as a replica of a primary at `lsn` on `timeline`: every connection is reset.
  void RebuildAsReplica(uint64_t lsn, uint32_t timeline);
  // A replica's replay position (replication is the world's business).
  void set_replay_lsn(uint64_t lsn) { lsn_ = lsn; }

  bool up() const { return up_; }
  bool in_recovery() const { return replica_; }
  uint32_t timeline() const { return timeline_id_; }
  uint64_t lsn() const { return lsn_; }
  size_t links() const { return links_.size(); }
  NodeId node() const { return options_.node; }

 private:
  enum class Phase { kStartup, kReady, kCopyIn };
  struct Link {
    pg::FrameReader reader{pg::Direction::kFrontend};
    Phase phase = Phase::kStartup;
    std::string request;  // messages of the request being received
    char status = 'I';
    int32_t pid = 0;
    bool skip_to_sync = false;  // an extended-protocol error: PostgreSQL skips to the Sync
    // Answer messages held back until the client's COPY data has arrived.
    std::deque<std::string> held;
    // Output not taken by the network yet: pending[pending_pos..].
    std::string pending;
    size_t pending_pos = 0;
    bool close_after = false;
    Instant busy_until;   // slowness: answers leave no earlier than this
    bool unread = false;  // bytes arrived while the node was paused
  };

  void Pump(io_sim::LinkId id, Link& link);
  bool OnStartup(io_sim::LinkId id, Link& link);
  void OnFrame(io_sim::LinkId id, Link& link, const pg::Frame& frame);
  void OnRequest(io_sim::LinkId id, Link& link);
  void AnswerFromCapture(io_sim::LinkId id, Link& link, const TraceScript::Match& match);
  void AnswerOwn(io_sim::LinkId id, Link& link, std::string_view request);
  std::string AnswerQuery(Link& link, std::string_view sql, bool* known);
  std::string HealthRow() const;
  void SendHeld(io_sim::LinkId id, Link& link);
  // Queues an answer; a slow node delays it (the caller flushes what leaves now).
  void Send(io_sim::LinkId id, Link& link, std::string bytes);
  void Flush(io_sim::LinkId id, Link& link);
  void CloseAll(std::string_view fatal);
  void Notify(TraceNodeEvent event);
  void Trace(std::string_view line) const;

  TraceScript& script_;
  io_sim::SimNetwork& network_;
  io_sim::Timeline& timeline_;
  TraceNodeOptions options_;
  std::map<io_sim::LinkId, Link> links_;  // ordered: faults walk it
  std::function<void(const TraceNodeEvent&)> observer_;
  std::function<void(std::string_view)> trace_;
  bool up_ = true;
  bool replica_ = false;
  bool paused_ = false;
  int64_t slowness_us_ = 0;
  uint32_t timeline_id_ = 1;
  uint64_t lsn_ = 0x3000000;
  int32_t next_pid_ = 0;
  uint64_t epoch_ = 0;  // bumps when every connection goes: older slowness events do nothing
};

}  // namespace switchyard::sim
