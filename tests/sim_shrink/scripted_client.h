// A simulated client that does exactly what a test tells it, step by step (the shrinking
// property's clients, tests/sim_shrink): each Intent is queued and, once the client is logged in
// and has no answer outstanding, turned into one statement that fits the session's state at that
// moment. It speaks the protocol through the proxy like sim/workload's clients do, parses every
// answer into a Request/Answer pair and hands it to a ClientObserver (the oracles).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/protocol/framing.h"
#include "core/protocol/messages.h"
#include "io_sim/event_queue.h"
#include "io_sim/network.h"
#include "sim/model.h"
#include "sim/workload.h"

namespace switchyard::sim {

// One step a test asks a client to take.
struct Intent {
  enum class Kind : uint8_t {
    kRead,      // arg: key index
    kScan,      //
    kInsert,    // arg: key index
    kUpdate,    // arg: key index
    kDelete,    // arg: key index
    kBegin,     // only from idle
    kCommit,    // only inside a transaction
    kRollback,  // only inside a transaction
    kSet,       // arg: 0 search_path, 1 application_name
    kSetLocal,  // only inside a transaction; arg as kSet
    kShow,      // arg as kSet
    kSleep,     // arg: milliseconds
    kLeave,     // Terminate and close; the next intent logs in again
  };
  Kind kind = Kind::kRead;
  int arg = 0;

  std::string Describe() const;
};

class ScriptedClient final : public io_sim::Peer {
 public:
  static constexpr size_t kIntentsMax = 256;

  // Everything passed by reference must outlive the client. `application_name` is a startup
  // parameter, so it picks the pool key. `wal_position` tells how many write transactions the
  // node has committed (the model's positions).
  ScriptedClient(uint32_t index, int keys, std::string application_name,
                 io_sim::SimNetwork& network, io_sim::Timeline& timeline, ClientObserver& observer,
                 std::function<uint64_t()> wal_position);

  // Queued; taken up at once if the client can (logging in first when it has no session).
  void Add(Intent intent);
  // The client drops its connection now (abortive: a reset; otherwise a close), mid-request or
  // not; queued intents stay, for a later session.
  void Disconnect(bool abortive);
  // A CancelRequest on a new connection, `delay_us` after now for the request in flight, or
  // after the next request is sent when none is.
  void Cancel(int64_t delay_us);
  // The end of a scenario: whatever is queued runs, then the client leaves (mid-transaction, if
  // it is in one) and logs in once more to show its settings.
  void WindDown();
  // Nothing queued, no session.
  bool Done() const { return intents_.empty() && state_ == State::kIdle; }
  // Ends an open session as kStillOpen (the run is over).
  void ReportIfOpen();
  std::string Describe() const;
  uint64_t answers() const { return answers_; }
  // Intents given up: their login failed, or they did not fit the session's state.
  uint64_t dropped() const { return dropped_; }
  uint64_t skipped() const { return skipped_; }

  void OnConnected(io_sim::LinkId link) override;
  void OnReadable(io_sim::LinkId link) override;

 private:
  enum class State { kIdle, kConnecting, kStartup, kReady, kBusy };

  ClientInfo Info() const { return ClientInfo{index_, session_}; }
  Instant Now() const { return timeline_.now(); }
  bool FatalSeen() const { return !answer_.errors.empty() && answer_.errors.back().fatal; }
  void Poke();
  void BeginSession();
  void Consume();
  void HandleStartup(const pg::Frame& frame);
  void HandleSession(const pg::Frame& frame);
  void NoteAnswerMessage(const pg::Frame& frame);
  void NoteError(const pg::Frame& frame);
  void Complete(char status);
  void Leave();
  void Send(Request request);
  void ScheduleCancel(int64_t delay_us);
  void EndSession(Ending::How how, std::string why);
  // The statement `intent` stands for in the session's current state; nullopt to skip it.
  std::optional<Request> ToRequest(const Intent& intent);
  Request Write(Intent::Kind kind, int key_index);

  uint32_t index_;
  int keys_;
  std::string application_name_;
  io_sim::SimNetwork& network_;
  io_sim::Timeline& timeline_;
  ClientObserver& observer_;
  std::function<uint64_t()> wal_position_;
  io_sim::PeerId peer_;
  std::deque<Intent> intents_;
  uint64_t tokens_ = 0;
  uint64_t answers_ = 0;
  uint64_t dropped_ = 0;
  uint64_t skipped_ = 0;
  // Cancel connections still connecting, with the key of the session that asked: by the time
  // one connects, that session may be over and another one logged in.
  std::map<io_sim::LinkId, pg::CancelRequest> cancel_links_;

  // Per session.
  State state_ = State::kIdle;
  uint32_t session_ = 0;
  uint64_t generation_ = 0;  // timeline callbacks of an older session find a different value
  bool reconnect_scheduled_ = false;
  int failed_logins_ = 0;  // in a row
  io_sim::LinkId link_;
  pg::FrameReader reader_{pg::Direction::kBackend};
  std::optional<SessionModel> model_;
  Welcome welcome_;
  bool logged_in_ = false;
  uint64_t seq_ = 0;
  std::optional<int64_t> cancel_next_us_;  // a cancel waiting for the next request
  std::optional<Request> outstanding_;
  Answer answer_;
  std::string after_fatal_;
  int transaction_key_min_ = 0;
};

}  // namespace switchyard::sim
