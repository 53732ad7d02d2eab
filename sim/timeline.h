// The timeline of one simulation run (`switchyard sim --seed N --timeline FILE.html`): a
// recorder the runner feeds while the run goes (client sessions and their requests, what the
// nemesis does to the node, network faults, server connections, phases, violations), and
// RenderHtml(), which draws all of it on an axis of simulated milliseconds as one
// self-contained HTML page (inline CSS, a few lines of inline script for zooming, no external
// resources).
//
// The recorder only watches: feeding it never changes what a seed does. It is bounded: past
// `events_max` drawn events it keeps nothing more, and the page says what it left out.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/types.h"
#include "io_sim/event_queue.h"
#include "sim/runner.h"
#include "sim/workload.h"

namespace switchyard::sim {

// What the page's header says about the run.
struct TimelineRun {
  uint64_t seed = 0;
  bool swarm = false;
  std::string reproduce;  // the command that runs this seed again
  std::string options;    // the derived options, `key=value` lines
  std::string outcome;    // "result=ok violations=0 ... hash=..."
  bool ok = true;
  uint64_t violation_count = 0;  // all of them, also those not recorded one by one
  int64_t sim_time_us = 0;       // where the run ended
};

// How a client session ended.
struct SessionEnd {
  std::string_view how;  // HowName(): client_left, reset, server_closed, ...
  std::string_view why;
  bool logged_in = false;     // false: a failed login attempt, drawn on its own lane
  std::string_view trailing;  // what arrived for the unanswered request, if anything
};

// Escapes &, <, >, " and ' for text and attribute values.
std::string HtmlEscape(std::string_view text);

class TimelineRecorder {
 public:
  static constexpr size_t kEventsMax = 20'000;
  // Every text (SQL, error messages, reasons) is cut to this many bytes.
  static constexpr size_t kTextBytesMax = 300;
  // Violations and phase marks have bounds of their own, outside `events_max`: a page that
  // drops a violation would hide the one thing it is read for.
  static constexpr size_t kViolationsMax = 200;
  static constexpr size_t kPhasesMax = 32;

  explicit TimelineRecorder(size_t events_max = kEventsMax);

  void SetRun(TimelineRun run);

  // --- Client sessions, named as ClientInfo names them (slot, session number) ---
  // The session is logged in (its lane starts here).
  void SessionOpened(uint32_t client, uint32_t session, Instant at);
  void SessionClosed(uint32_t client, uint32_t session, Instant at, const SessionEnd& end);
  void RequestSent(uint32_t client, uint32_t session, uint64_t seq, Instant at,
                   std::string_view sql);
  void AnswerReceived(uint32_t client, uint32_t session, uint64_t seq, Instant at, bool error,
                      std::string_view summary);
  // Anything else a client did: sent a cancel, stopped reading, read again.
  void ClientEvent(uint32_t client, uint32_t session, Instant at, std::string_view what);

  // --- The node ---
  // What the nemesis did, as "<kind> n<index> ...". crash, shutdown, restart, rebuild, pause,
  // unpause, slow, slow_end and heal draw each node's down, paused and slow intervals on its own
  // lane; anything else (promote, failover, lag_spike, terminate) is a plain marker.
  void NodeEvent(Instant at, std::string_view what);

  // --- The network and the proxy's server connections (named by network link) ---
  void NetworkFault(Instant at, std::string_view kind, uint64_t link, std::string_view detail);
  void ServerConnectionOpened(uint64_t link, Instant at, std::string_view detail);
  // "connected" marks the end of the connect; anything else is a marker on the connection.
  void ServerConnectionEvent(uint64_t link, Instant at, std::string_view what);
  // The first close counts; `broken` is a reset or a failed connect.
  void ServerConnectionClosed(uint64_t link, Instant at, std::string_view how, bool broken);
  // One line of the network's and the driver's trace (RunHooks::trace, "t=<us> <event>
  // key=value ..."): faults, server connections opening and closing, and lost idle
  // connections become the calls above; every other line is ignored.
  void TraceLine(std::string_view line);

  // --- The run ---
  void Phase(Instant at, std::string_view what);
  void ViolationFound(std::string_view oracle, Instant at, std::string_view client,
                      std::string_view what);

  // Events kept for drawing, and events left out because of the bound.
  size_t events() const { return events_; }
  uint64_t events_left_out() const;

  std::string RenderHtml() const;

 private:
  enum class Kind {
    kSession,
    kRequest,
    kClientEvent,
    kServerConnection,
    kNode,
    kFault,
    kPhase,
    kViolation
  };
  static constexpr size_t kKinds = 8;
  struct Mark {
    int64_t at_us = 0;
    std::string what;
  };
  struct Call {
    uint64_t seq = 0;
    int64_t sent_us = 0;
    int64_t answered_us = -1;  // -1: never answered
    bool error = false;
    std::string sql;
    std::string summary;
  };
  struct Session {
    uint32_t client = 0;
    uint32_t session = 0;
    int64_t opened_us = 0;
    int64_t closed_us = -1;  // -1: still open when the recording stopped
    std::string how;
    std::string why;
    std::string trailing;
    std::vector<Call> calls;
    std::vector<Mark> marks;
  };
  struct ServerConnection {
    int64_t opened_us = 0;
    int64_t connected_us = -1;
    int64_t closed_us = -1;
    bool broken = false;
    std::string detail;
    std::string how;
    std::vector<Mark> marks;
  };
  struct Fault {
    int64_t at_us = 0;
    std::string kind;
    std::string detail;
  };
  struct ViolationMark {
    std::string oracle;
    int64_t at_us = 0;
    std::string client;
    std::string what;
  };

  // Counts one more event of `kind` if the bound allows it (node events and faults may use the
  // last fifth of it, which requests and sessions leave them).
  bool Admit(Kind kind, Instant at);
  void LeaveOut(Kind kind, Instant at);
  void Saw(Instant at);
  Session* FindSession(uint32_t client, uint32_t session);
  std::string LinkName(uint64_t link) const;

  void RenderHeader(std::string& out) const;
  void RenderViolationList(std::string& out) const;
  void RenderLeftOut(std::string& out) const;
  // Each lane draws on a track that spans `span_us` of simulated time.
  void RenderRunLanes(std::string& out, int64_t span_us) const;
  void RenderNodeLane(std::string& out, int64_t span_us) const;
  void RenderOneNode(std::string& out, int64_t span_us, const std::string& name) const;
  void RenderFaultLane(std::string& out, int64_t span_us) const;
  void RenderServerLanes(std::string& out, int64_t span_us) const;
  void RenderFailedLogins(std::string& out, int64_t span_us) const;
  void RenderSessionLanes(std::string& out, int64_t span_us) const;
  void RenderSessionLane(std::string& out, int64_t span_us, const Session& session,
                         const std::vector<const ViolationMark*>& found) const;

  size_t events_max_;
  size_t events_ = 0;
  std::array<uint64_t, kKinds> left_out_{};
  int64_t first_left_out_us_ = -1;
  int64_t last_us_ = 0;
  TimelineRun run_;
  std::map<uint64_t, Session> sessions_;  // by ClientInfo::Key(): slot, then session
  std::vector<Mark> failed_logins_;
  std::vector<Mark> node_;
  std::vector<Fault> faults_;
  std::map<uint64_t, ServerConnection> servers_;    // by link, so in the order they opened
  std::map<std::string, uint64_t> server_by_conn_;  // "c3.1" -> link, for the driver's lines
  std::map<uint64_t, uint64_t> client_links_;       // link -> client peer, for fault details
  std::vector<Mark> phases_;
  std::vector<ViolationMark> violations_;
};

// A link in the chain of client observers, before the oracles: records what every client does
// and passes each observation on unchanged. `recorder` may be null: then it only passes on.
class TimelineObserver final : public ClientObserver {
 public:
  TimelineObserver(ClientObserver& next, TimelineRecorder* recorder, const io_sim::Timeline& clock)
      : next_(next), recorder_(recorder), clock_(clock) {}

  void OnWelcome(const ClientInfo& c, const Welcome& w) override;
  void OnRequest(const ClientInfo& c, const Request& r) override;
  void OnAnswer(const ClientInfo& c, const SessionModel& s, const Request& r,
                const Answer& a) override;
  void OnCancelSent(const ClientInfo& c, const Request& r) override;
  void OnReadingPaused(const ClientInfo& c, int32_t pid) override;
  void OnReadingResumed(const ClientInfo& c, int32_t pid) override;
  void OnStray(const ClientInfo& c, std::string_view what) override;
  void OnEnded(const ClientInfo& c, const SessionModel& s, const Ending& e) override;
  void OnConnect(const ClientInfo& c) override { next_.OnConnect(c); }

 private:
  ClientObserver& next_;
  TimelineRecorder* recorder_;
  const io_sim::Timeline& clock_;
};

// "SELECT 1 · 1 row · status I", "ERROR 57P01: terminating connection ...": one answer, short.
std::string AnswerSummary(const Answer& answer);

// The page's header (seed, options, outcome) and the violations the run kept.
void RecordRunEnd(TimelineRecorder& recorder, const RunOptions& options, const RunResult& result);

}  // namespace switchyard::sim
