// The workers: each takes a runnable unit, hands it what happened (queued events, then the
// bytes its ready sockets hold), carries out the actions it drains, writes its output once at
// the end, and re-arms it or retires it (DESIGN.md section 3, steps 3-6).
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/base/check.h"
#include "io_real/driver_internal.h"
#include "io_real/log.h"

namespace switchyard::io_real {
namespace {

// One run of one unit on one worker. Every call into the unit is followed by a complete drain
// of its actions; events those actions produce for the same unit (a connect that finished at
// once, a service reply) are queued and handed in right after, never re-entrantly.
class UnitRun {
 public:
  UnitRun(DriverImpl& driver, RunInput input, char* buffer)
      : d_(driver),
        input_(std::move(input)),
        id_(input_.run.unit),
        unit_(input_.record->unit.get()),
        buffer_(buffer) {}

  void Execute();

 private:
  // Hands an event in now, or right after the current call when one is in progress.
  void Post(Event event);
  void Dispatch(Event event);
  // Runs one call into the unit, drains its actions, then hands in the events they produced.
  template <typename F>
  void Call(F&& call);
  void DrainActions();
  void Perform(Action& action);
  void DoSend(Send& send);
  void DoConnect(const Connect& connect);
  void DoClose(const Close& close);
  void DoRequest(RequestService& request);

  void HandleReady(ConnId conn, sched::Readiness readiness);
  void FinishConnect(ConnRecord* record);
  void ReadFrom(ConnId conn);
  void FlushOne(ConnRecord* record);
  void FlushAll();
  void ReportDead(ConnRecord* record, std::string why);
  void MarkDirty(ConnRecord* record);
  void OrderReady();
  void End();
  bool TryRetire();

  ConnRecord* Owned(ConnId conn) { return d_.FindOwned(conn, id_); }

  DriverImpl& d_;
  RunInput input_;
  UnitId id_;
  UnitLike* unit_;
  char* buffer_;
  Instant now_;
  std::deque<Event> local_;
  bool dispatching_ = false;
  std::vector<ConnId> dirty_;
  std::vector<std::pair<ConnId, sched::Readiness>> still_ready_;
};

void UnitRun::Execute() {
  AtomicStats::Add(d_.stats_.runs);
  now_ = Now();
  for (Event& event : input_.inbox) Post(std::move(event));
  if (input_.timer_due) Post(TimerFired{});
  if (input_.drain) Call([this] { unit_->BeginDrain(now_); });
  OrderReady();
  for (const auto& [conn, readiness] : input_.run.ready) HandleReady(conn, readiness);
  End();
}

void UnitRun::Post(Event event) {
  if (dispatching_) {
    local_.push_back(std::move(event));
  } else {
    Dispatch(std::move(event));
  }
}

void UnitRun::Dispatch(Event event) {
  Call([&] { unit_->Handle(now_, event); });
}

template <typename F>
void UnitRun::Call(F&& call) {
  CHECK(!dispatching_) << "re-entrant call into unit " << id_.value;
  dispatching_ = true;
  call();
  DrainActions();
  while (!local_.empty()) {
    Event next = std::move(local_.front());
    local_.pop_front();
    unit_->Handle(now_, next);
    DrainActions();
  }
  dispatching_ = false;
}

void UnitRun::DrainActions() {
  while (std::optional<Action> action = unit_->PollAction()) Perform(*action);
}

void UnitRun::Perform(Action& action) {
  if (auto* send = std::get_if<Send>(&action)) {
    DoSend(*send);
  } else if (auto* connect = std::get_if<Connect>(&action)) {
    DoConnect(*connect);
  } else if (auto* close = std::get_if<Close>(&action)) {
    DoClose(*close);
  } else if (auto* request = std::get_if<RequestService>(&action)) {
    DoRequest(*request);
  }
  // PauseRead and ResumeRead need no bookkeeping: reads and re-arming ask WantsRead().
}

void UnitRun::MarkDirty(ConnRecord* record) {
  if (record->dirty) return;
  record->dirty = true;
  dirty_.push_back(record->id);
}

void UnitRun::DoSend(Send& send) {
  ConnRecord* record = Owned(send.conn);
  CHECK(record != nullptr) << "unit " << id_.value << " sent on " << ConnText(send.conn)
                           << ", which it does not own";
  if (record->dead) return;  // the peer is gone and the unit has been told
  if (record->out.empty()) {
    record->out = std::move(send.bytes);
  } else {
    record->out.append(send.bytes);
  }
  MarkDirty(record);  // written once, at the end of the run
}

void UnitRun::DoConnect(const Connect& connect) {
  CHECK(Owned(connect.conn) == nullptr) << "Connect reuses " << ConnText(connect.conn);
  auto record = std::make_unique<ConnRecord>();
  record->id = connect.conn;
  std::string error;
  if (connect.node.index >= d_.config_.nodes.size()) {
    error = absl::StrFormat("no address configured for node %d", connect.node.index);
  } else {
    ConnectStart start =
        StartConnect(d_.config_.nodes[connect.node.index], d_.config_.server_sockets);
    AtomicStats::Add(d_.stats_.connects);
    record->fd = start.fd;
    record->connecting = start.in_progress;
    error = start.error;
  }
  record->dead = !error.empty();
  {
    std::lock_guard<std::mutex> lock(d_.mu_);
    CHECK(d_.conns_.emplace(connect.conn, std::move(record)).second);
    d_.sched_.AddConn(connect.conn, sched::Owner::OfUnit(id_));
  }
  if (!error.empty()) {
    Post(ConnectFailed{connect.conn, error});
  } else if (ConnRecord* made = Owned(connect.conn); !made->connecting) {
    Post(Connected{connect.conn});
  }
  // Otherwise it is armed for EPOLLOUT at the end of the run; SO_ERROR then tells.
}

void UnitRun::DoClose(const Close& close) {
  ConnRecord* record = Owned(close.conn);
  CHECK(record != nullptr) << "unit " << id_.value << " closed " << ConnText(close.conn)
                           << ", which it does not own";
  d_.CloseConnection(record);
}

void UnitRun::DoRequest(RequestService& request) {
  std::vector<ServiceReply> mine;
  {
    std::lock_guard<std::mutex> services_lock(d_.services_mu_);
    d_.ApplyOutcome(now_, d_.services_.Handle(now_, id_, std::move(request.request)), id_, &mine);
  }
  // Answered inline, in this run: no thread hop (DESIGN.md section 2).
  for (ServiceReply& reply : mine) Post(ServiceReplied{std::move(reply)});
}

void UnitRun::OrderReady() {
  auto& ready = input_.run.ready;
  if (ready.size() < 2) return;
  // The client first, then its servers (DESIGN.md section 3, step 4): the unit's own order.
  const std::vector<ConnId> order = unit_->Conns();
  auto rank = [&](ConnId conn) {
    return std::find(order.begin(), order.end(), conn) - order.begin();
  };
  std::stable_sort(ready.begin(), ready.end(),
                   [&](const auto& a, const auto& b) { return rank(a.first) < rank(b.first); });
}

void UnitRun::HandleReady(ConnId conn, sched::Readiness readiness) {
  ConnRecord* record = Owned(conn);
  if (record == nullptr) return;  // closed earlier in this run
  if (readiness.writable) {
    if (record->connecting) {
      FinishConnect(record);
    } else if (record->pending() && !record->dead) {
      FlushOne(record);
    }
  }
  if (readiness.readable) ReadFrom(conn);
}

void UnitRun::FinishConnect(ConnRecord* record) {
  record->connecting = false;
  const std::string error = ConnectResult(record->fd);
  const ConnId conn = record->id;
  if (!error.empty()) {
    record->dead = true;
    record->out.clear();
    record->out_pos = 0;
    Post(ConnectFailed{conn, error});
    return;
  }
  if (record->pending()) MarkDirty(record);  // what the unit queued while connecting
  Post(Connected{conn});
}

void UnitRun::ReadFrom(ConnId conn) {
  size_t total = 0;
  while (true) {
    // Looked up again after every Handle: the unit may have closed or released it.
    ConnRecord* record = Owned(conn);
    if (record == nullptr || record->dead || record->connecting || record->fd < 0) return;
    if (!unit_->WantsRead(conn)) return;  // paused; re-armed when it resumes
    if (total >= d_.config_.read_bytes_per_run_max) {
      // Yield so one busy connection cannot starve the other units.
      still_ready_.emplace_back(conn, sched::Readiness{true, false});
      return;
    }
    const ssize_t n = ::read(record->fd, buffer_, kReadBufferBytes);
    AtomicStats::Add(d_.stats_.reads);
    if (n > 0) {
      total += static_cast<size_t>(n);
      Dispatch(Received{conn, std::string_view(buffer_, static_cast<size_t>(n))});
      // A short read emptied the socket; reading again would only cost an EAGAIN, and the
      // re-arm at the end of the run reports anything that arrives meanwhile.
      if (static_cast<size_t>(n) < kReadBufferBytes) return;
      continue;
    }
    if (n == 0) return ReportDead(record, "closed by peer");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    return ReportDead(record, ErrnoText(errno));
  }
}

void UnitRun::ReportDead(ConnRecord* record, std::string why) {
  if (record->dead) return;
  record->dead = true;
  record->out.clear();
  record->out_pos = 0;
  Post(Closed{record->id, std::move(why)});
}

void UnitRun::FlushOne(ConnRecord* record) {
  ssize_t n;
  do {
    n = ::send(record->fd, record->out.data() + record->out_pos,
               record->out.size() - record->out_pos, MSG_NOSIGNAL | MSG_DONTWAIT);
    AtomicStats::Add(d_.stats_.writes);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) ReportDead(record, ErrnoText(errno));
    return;  // the rest waits for EPOLLOUT
  }
  record->out_pos += static_cast<size_t>(n);
  if (!record->pending()) {
    record->out.clear();
    record->out_pos = 0;
  } else if (record->out_pos >= kReadBufferBytes && record->out_pos * 2 >= record->out.size()) {
    record->out.erase(0, record->out_pos);  // keep the buffer from creeping forward forever
    record->out_pos = 0;
  }
  // The core counts flushed bytes for its watermarks (it may resume reading a server).
  if (n > 0) Post(Writable{record->id, static_cast<uint64_t>(n)});
}

void UnitRun::FlushAll() {
  for (int round = 0; round < kFlushRoundsMax && !dirty_.empty(); ++round) {
    std::vector<ConnId> list;
    list.swap(dirty_);
    for (ConnId conn : list) {
      ConnRecord* record = Owned(conn);
      if (record == nullptr) continue;
      record->dirty = false;
      if (record->dead || record->connecting || !record->pending()) continue;
      FlushOne(record);
    }
  }
  for (ConnId conn : dirty_) {
    // Still pending after the last round: it waits for EPOLLOUT.
    if (ConnRecord* record = Owned(conn)) record->dirty = false;
  }
  dirty_.clear();
}

void UnitRun::End() {
  FlushAll();
  if (unit_->Finished() && TryRetire()) return;
  const std::vector<ConnId> listed = unit_->Conns();
  std::vector<ConnId> owned;
  {
    std::lock_guard<std::mutex> lock(d_.mu_);
    for (ConnId conn : d_.sched_.ConnsOf(id_)) {
      // Left out: a connection that arrived during this run with a reply for the next one
      // (which the pending wake-up makes sure comes at once).
      if (!d_.conns_.at(conn)->in_transit) owned.push_back(conn);
    }
  }
  std::vector<std::pair<ConnId, sched::Interest>> desired;
  for (ConnId conn : owned) {
    ConnRecord* record = Owned(conn);
    CHECK(record != nullptr);
    if (std::find(listed.begin(), listed.end(), conn) == listed.end()) {
      // The unit dropped it without a Close (it had seen Closed or ConnectFailed).
      d_.CloseConnection(record);
      continue;
    }
    sched::Interest interest;
    if (record->connecting) {
      interest.write = true;
    } else if (!record->dead) {
      interest.read = unit_->WantsRead(conn);
      interest.write = record->pending();  // EPOLLOUT only while output waits
    }
    desired.emplace_back(conn, interest);
  }
  const std::optional<Instant> deadline = unit_->NextDeadline();
  std::lock_guard<std::mutex> lock(d_.mu_);
  sched::Scheduler::EndRunResult result = d_.sched_.EndRun(id_, desired, still_ready_);
  d_.ApplyAllLocked(result.changes);
  d_.SetUnitDeadlineLocked(id_, *input_.record, deadline);
  if (result.requeued) d_.work_cv_.notify_one();
  if (d_.config_.check_scheduler_invariants) d_.sched_.CheckInvariants();
}

bool UnitRun::TryRetire() {
  std::unique_ptr<UnitRecord> doomed;
  bool wake_loop = false;
  {
    // Every delivery to a unit is made under services_mu_, so holding it keeps the inbox
    // empty between the check and the removal.
    std::lock_guard<std::mutex> services_lock(d_.services_mu_);
    std::vector<ConnId> leftovers;
    {
      std::lock_guard<std::mutex> lock(d_.mu_);
      if (!input_.record->inbox.empty()) return false;  // a reply came: run again first
      leftovers = d_.sched_.ConnsOf(id_);
    }
    for (ConnId conn : leftovers) {
      ConnRecord* record = Owned(conn);
      // A connection the unit saw close is simply dropped; a live one it forgot is a bug
      // worth a line, but closing it is all that can be done now.
      if (!record->dead) {
        Log("event=finished_unit_left_connection unit=%d conn=%s", id_.value, ConnText(conn));
      }
      d_.CloseConnection(record);
    }
    if (input_.record->admitted) d_.services_.ClientGone(id_);
    std::lock_guard<std::mutex> lock(d_.mu_);
    d_.SetUnitDeadlineLocked(id_, *input_.record, std::nullopt);
    d_.sched_.RemoveUnit(id_);
    auto it = d_.units_.find(id_);
    doomed = std::move(it->second);
    d_.units_.erase(it);
    wake_loop = d_.RefreshServicesDeadlineLocked(now_);
    wake_loop = wake_loop || (d_.draining_ && d_.units_.empty());
  }
  doomed.reset();  // destroys the unit outside the locks
  if (wake_loop) d_.WakeLoop();
  return true;
}

}  // namespace

std::optional<RunInput> DriverImpl::NextRun() {
  std::unique_lock<std::mutex> lock(mu_);
  work_cv_.wait(lock, [&] { return stopping_ || sched_.runnable_count() > 0; });
  if (stopping_) return std::nullopt;
  RunInput input;
  input.run = *sched_.PopRunnable();
  input.record = units_.at(input.run.unit).get();
  input.inbox.swap(input.record->inbox);
  for (const Event& event : input.inbox) {
    // This run hands the reply in, so the connection stops being in transit.
    const auto* replied = std::get_if<ServiceReplied>(&event);
    const auto* checkout = replied ? std::get_if<CheckoutReply>(&replied->reply) : nullptr;
    if (checkout != nullptr && checkout->connection.has_value()) {
      auto it = conns_.find(checkout->connection->conn);
      if (it != conns_.end()) it->second->in_transit = false;
    }
  }
  input.timer_due = std::exchange(input.record->timer_due, false);
  input.drain = input.record->drain_requested && !input.record->drain_delivered;
  input.record->drain_delivered = input.record->drain_delivered || input.drain;
  return input;
}

void DriverImpl::WorkerMain() {
  std::unique_ptr<char[]> buffer(new char[kReadBufferBytes]);
  while (std::optional<RunInput> input = NextRun()) {
    UnitRun(*this, std::move(*input), buffer.get()).Execute();
  }
}

}  // namespace switchyard::io_real
