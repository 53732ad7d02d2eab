// The simulated clients (DESIGN.md section 7): each speaks the PostgreSQL protocol through the
// proxy with the codec of core/protocol/messages.h and runs a seeded script of sessions, each a
// run of autocommit reads and writes, transactions (some rolled back), SET/SHOW, sleeps and
// scans, with optional cancels, abrupt disconnects and slow reading. A client parses every
// answer into a Request/Answer pair and hands it to a ClientObserver (the oracles), together
// with its own SessionModel, so every answer is judged the moment it arrives.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/protocol/messages.h"
#include "io_sim/event_queue.h"
#include "io_sim/network.h"
#include "io_sim/run_hash.h"
#include "sim/model.h"

namespace switchyard::sim {

struct WorkloadOptions {
  int clients = 8;              // client slots running at once
  int sessions_per_client = 4;  // sessions each slot runs, one after another
  int requests_per_session_min = 5;
  int requests_per_session_max = 40;
  int keys = 12;  // kv keys the workload touches: fewer keys, more contention
  // What an idle session does next, as relative weights.
  uint32_t weight_read = 40;
  uint32_t weight_write = 30;
  uint32_t weight_transaction = 12;
  uint32_t weight_set = 5;
  uint32_t weight_show = 5;
  uint32_t weight_sleep = 3;
  uint32_t weight_scan = 3;
  uint32_t weight_locking_read = 4;           // SELECT ... FOR UPDATE, autocommit
  uint32_t weight_batch = 8;                  // an extended-protocol Sync batch
  uint32_t weight_read_only_transaction = 6;  // BEGIN READ ONLY
  // After a SET, how often the next request SHOWs it; after a write, how often the next one
  // reads the key back (read-your-writes).
  uint32_t follow_up_percent = 40;
  uint32_t rollback_percent = 30;
  int transaction_statements_max = 4;
  int64_t think_us_max = 2'000;
  int64_t start_spread_us = 20'000;
  int64_t session_gap_us_max = 5'000;
  int64_t sleep_us_max = 100'000;
  // Client faults (DESIGN.md section 7): off unless a run turns them on.
  uint32_t cancel_ppm = 0;       // per sleep: a CancelRequest follows it
  uint32_t disconnect_ppm = 0;   // per request: the client drops the connection mid-request
  uint32_t slow_reader_ppm = 0;  // per request: the client stops reading for a while
  int64_t slow_pause_us_max = 50'000;
  int application_names = 2;    // distinct startup application_name values: that many pool keys
  int64_t value_bytes_max = 0;  // written values get up to this much padding (big answers)

  // "clients=8 sessions_per_client=4 ...": every option, for the run's header.
  std::string Describe() const;
};

// The clients' login on the simulated nodes, and the proxy's health checker's (trust: no
// password is asked).
inline constexpr std::string_view kClientUser = "app";
inline constexpr std::string_view kHealthUser = "health";

// Probe clients (Workload::StartProbes) are numbered from here.
inline constexpr uint32_t kProbeClientBase = 1000;

// Every statement a client sends carries a routing tag, an SQL comment after its text:
// " /* sim c3.s2#17.0 P */" is statement 0 of request #17 of client 3's session 2, which must
// run on the primary (A: it may run anywhere). The node's parser leaves comments out of the
// statement text (and so out of the WAL); an oracle watching what each node received reads it.
struct RouteTag {
  uint32_t client = 0;
  uint32_t session = 0;
  uint64_t seq = 0;
  uint32_t index = 0;  // the statement within a batch
  bool primary_only = false;
  // "c3.s2#17": the request, without the statement index.
  std::string Request() const;
};
std::string FormatRouteTag(const RouteTag& tag);
// The tag at the end of `sql`, if it carries one.
std::optional<RouteTag> ParseRouteTag(std::string_view sql);

// Which simulated client session an observation comes from.
struct ClientInfo {
  uint32_t client = 0;   // slot index (probes count on from 1000)
  uint32_t session = 0;  // 1, 2, ... within the slot
  std::string Name() const;
  // One number per client session, for oracles' tables.
  uint64_t Key() const { return (uint64_t{client} << 32) | session; }
};

// What a client got between its StartupMessage and its first ReadyForQuery.
struct Welcome {
  pg::Parameters parameters;  // ParameterStatus, in order
  int32_t pid = 0;
  int32_t secret = 0;
  char status = 0;
  // What ParameterStatus application_name must say: the startup value, or "" without one.
  std::string expected_application_name;
};

// How a client session ended, and what it had not been answered.
struct Ending {
  enum class How {
    kServerClosed,    // end of stream from the proxy
    kReset,           // the connection broke or was refused (a fault on the client's own link)
    kClientLeft,      // the client sent Terminate and closed
    kClientAborted,   // the client dropped the connection on purpose (a disconnect fault)
    kFatalNotClosed,  // a FATAL came but the proxy kept the connection open; the client left
    kStillOpen,       // the run ended with the session still open
  };
  How how = How::kServerClosed;
  std::string why;
  bool logged_in = false;
  std::optional<Request> outstanding;  // sent and never completely answered
  Answer trailing;                     // what arrived after the last complete answer
  std::string after_fatal;             // a message that arrived after a FATAL, if any
};
std::string_view HowName(Ending::How how);

// Receives every observation of every client, in simulation order.
class ClientObserver {
 public:
  virtual ~ClientObserver() = default;
  virtual void OnWelcome(const ClientInfo& client, const Welcome& welcome) = 0;
  virtual void OnRequest(const ClientInfo& client, const Request& request) = 0;
  // `session` is the client's model before the answer is applied to it.
  virtual void OnAnswer(const ClientInfo& client, const SessionModel& session,
                        const Request& request, const Answer& answer) = 0;
  virtual void OnCancelSent(const ClientInfo& client, const Request& request) = 0;
  // A slow client stops reading (with a request in flight) and later reads again; `pid` is
  // the one its BackendKeyData gave.
  virtual void OnReadingPaused(const ClientInfo& client, int32_t pid) = 0;
  virtual void OnReadingResumed(const ClientInfo& client, int32_t pid) = 0;
  // A message the protocol does not allow where it came (a ReadyForQuery nobody asked for...).
  virtual void OnStray(const ClientInfo& client, std::string_view what) = 0;
  virtual void OnEnded(const ClientInfo& client, const SessionModel& session,
                       const Ending& ending) = 0;
  // A session starts connecting to the proxy (before the proxy has seen it).
  virtual void OnConnect(const ClientInfo&) {}
};

// A link in a chain of observers that passes every observation on to `next` unchanged; a
// subclass overrides only what it intercepts.
class ForwardingObserver : public ClientObserver {
 public:
  explicit ForwardingObserver(ClientObserver& next) : next_(next) {}
  void OnWelcome(const ClientInfo& c, const Welcome& w) override { next_.OnWelcome(c, w); }
  void OnRequest(const ClientInfo& c, const Request& r) override { next_.OnRequest(c, r); }
  void OnAnswer(const ClientInfo& c, const SessionModel& s, const Request& r,
                const Answer& a) override {
    next_.OnAnswer(c, s, r, a);
  }
  void OnCancelSent(const ClientInfo& c, const Request& r) override { next_.OnCancelSent(c, r); }
  void OnReadingPaused(const ClientInfo& c, int32_t pid) override { next_.OnReadingPaused(c, pid); }
  void OnReadingResumed(const ClientInfo& c, int32_t pid) override {
    next_.OnReadingResumed(c, pid);
  }
  void OnStray(const ClientInfo& c, std::string_view what) override { next_.OnStray(c, what); }
  void OnEnded(const ClientInfo& c, const SessionModel& s, const Ending& e) override {
    next_.OnEnded(c, s, e);
  }
  void OnConnect(const ClientInfo& c) override { next_.OnConnect(c); }

 protected:
  ClientObserver& next_;
};

class SimClient;  // workload.cc

class Workload {
 public:
  // `wal_position` tells how many write transactions the node has committed (the model's
  // positions). Everything passed by reference must outlive the workload.
  Workload(WorkloadOptions options, uint64_t seed, io_sim::SimNetwork& network,
           io_sim::Timeline& timeline, ClientObserver& observer,
           std::function<uint64_t()> wal_position, io_sim::RunHash* hash = nullptr);
  ~Workload();
  Workload(const Workload&) = delete;
  Workload& operator=(const Workload&) = delete;

  // Schedules every client's first session.
  void Start();
  // The liveness phase: every session finishes its transaction and leaves; no new session
  // starts (a session still logging in gets in first).
  void WindDown();
  // Every client ran all its sessions to the end (or wound down).
  bool Done() const;
  // `count` probe clients log in together, each runs one read, and they leave only once all of
  // them are in (or gone: a probe that failed does not hold the others): they need `count`
  // server connections at the same time.
  void StartProbes(int count);
  bool ProbesDone() const;
  // One line per open session: who, in what state, waiting for what.
  std::vector<std::string> OpenSessions() const;
  // Reports every open session to the observer as kStillOpen (the end of a run).
  void ReportOpenSessions();

  uint64_t answers() const { return answers_; }
  uint64_t requests() const { return requests_; }
  const WorkloadOptions& options() const { return options_; }

 private:
  friend class SimClient;

  WorkloadOptions options_;
  uint64_t seed_;
  io_sim::SimNetwork& network_;
  io_sim::Timeline& timeline_;
  ClientObserver& observer_;
  std::function<uint64_t()> wal_position_;
  io_sim::RunHash* hash_;
  std::vector<std::unique_ptr<SimClient>> clients_;
  std::vector<std::unique_ptr<SimClient>> probes_;
  int probes_counted_ = 0;  // probes in (answered) or gone
  bool winding_down_ = false;
  size_t clients_finished_ = 0;
  uint64_t answers_ = 0;
  uint64_t requests_ = 0;
};

}  // namespace switchyard::sim
