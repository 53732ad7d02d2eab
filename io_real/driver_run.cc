// The workers: each waits on the connections' poll set itself, runs the units the readiness it
// receives wakes (no hand-off to another thread), and takes queued units first. A run hands the
// unit what happened (queued events, then the bytes its ready sockets hold), carries out the
// actions it drains, writes its output once at the end, and re-arms the unit or retires it
// (DESIGN.md section 3, steps 2-6).
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
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

// Hang-ups and errors count as readable (a read reveals them) and as writable (a connect in
// progress learns of them through SO_ERROR).
sched::Readiness ReadinessOf(uint32_t flags) {
  return sched::Readiness{(flags & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0,
                          (flags & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0};
}

// Runs units on one worker, one at a time. Every call into the unit is followed by a complete
// drain of its actions; events those actions produce for the same unit (a connect that
// finished at once, a service reply) are queued and handed in right after, never
// re-entrantly. One object per worker, so its buffers are reused from run to run.
class UnitRun {
 public:
  UnitRun(DriverImpl& driver, char* buffer) : d_(driver), buffer_(buffer) {}

  // `input` was filled by TakeRunLocked; its buffers are kept for the next run.
  void Execute(RunInput& input);

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
  // Capture records (encoded by the unit) are handed to the writer once per run.
  void DoTrace(Trace& trace);
  void OfferTraces();
  // A unit recording a long burst (a large COPY) hears of a new capture file before its next
  // bytes, not at its next run: otherwise the old file takes the whole burst.
  void CatchUpCapture();

  bool ReadGuess();
  void PollUnitSet();
  void HandleReady(ConnId conn, sched::Readiness readiness);
  void FinishConnect(ConnRecord* record);
  // Reads what the connection holds and hands it in; false when it held nothing at all.
  bool ReadFrom(ConnId conn);
  void FlushOne(ConnRecord* record);
  void FlushAll();
  void ReportDead(ConnRecord* record, std::string why);
  void MarkDirty(ConnRecord* record);
  void OrderReady();
  void End();
  bool TryRetire();

  // The unit's record of `conn`, or null when the unit does not own it. Remembered for the run:
  // only the run itself changes what its unit owns, and it forgets them when it might have.
  ConnRecord* Owned(ConnId conn);
  void ForgetOwned() { input_->owned.clear(); }

  DriverImpl& d_;
  char* buffer_;
  RunInput* input_ = nullptr;
  UnitId id_;
  UnitLike* unit_ = nullptr;
  Instant now_;
  std::vector<Event> local_;  // local_[local_next_..] wait to be handed in
  size_t local_next_ = 0;
  bool dispatching_ = false;
  std::vector<ConnId> flushing_;
  std::vector<std::pair<ConnId, sched::Interest>> desired_;
  std::vector<ConnId> dirty_;
  std::vector<std::pair<ConnId, sched::Readiness>> still_ready_;
  ConnId last_sent_;
  std::string traces_;  // encoded records of traces_epoch_ not yet offered
  uint64_t traces_epoch_ = 0;
  uint64_t traces_count_ = 0;
  uint64_t traces_refused_ = 0;  // over the record bound: counted as dropped
  bool traced_in_run_ = false;
};

void UnitRun::Execute(RunInput& input) {
  input_ = &input;
  id_ = input.run.unit;
  unit_ = input.record->unit.get();
  dirty_.clear();
  still_ready_.clear();
  last_sent_ = ConnId{};
  traced_in_run_ = false;
  AtomicStats::Add(d_.stats_.runs);
  now_ = Now();
  for (Event& event : input_->inbox) Post(std::move(event));
  if (input_->timer_due) Post(TimerFired{});
  if (input_->drain) Call([this] { unit_->BeginDrain(now_); });
  // Reading the likely connection first usually makes the poll of the unit's set unnecessary:
  // anything else ready is reported again when the set is re-armed at the end of the run.
  if (input_->run.poll_set && !(input_->guess.valid() && ReadGuess())) PollUnitSet();
  OrderReady();
  for (const auto& [conn, readiness] : input_->run.ready) HandleReady(conn, readiness);
  End();
  input_->inbox.clear();  // keeps its capacity for the next swap
}

ConnRecord* UnitRun::Owned(ConnId conn) {
  for (const auto& [known, record] : input_->owned) {
    if (known == conn) return record;
  }
  ConnRecord* record = d_.FindOwned(conn, id_);
  if (record != nullptr) input_->owned.emplace_back(conn, record);
  return record;
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
  while (local_next_ < local_.size()) {
    // Moved out first: handling it may queue more (and grow the vector).
    Event next = std::move(local_[local_next_++]);
    unit_->Handle(now_, next);
    DrainActions();
  }
  local_.clear();
  local_next_ = 0;
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
  } else if (auto* trace = std::get_if<Trace>(&action)) {
    DoTrace(*trace);
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
  ForgetOwned();
  d_.CloseConnection(record);
}

void UnitRun::DoRequest(RequestService& request) {
  std::vector<ServiceReply> mine;
  {
    std::lock_guard<std::mutex> services_lock(d_.services_mu_);
    d_.ApplyOutcome(now_, d_.services_.Handle(now_, id_, std::move(request.request)), id_, &mine);
  }
  ForgetOwned();  // the outcome may have given connections to the pool or another unit
  // Answered inline, in this run: no thread hop (DESIGN.md section 2).
  for (ServiceReply& reply : mine) Post(ServiceReplied{std::move(reply)});
}

void UnitRun::DoTrace(Trace& trace) {
  if (!d_.capture_) return;
  if (trace.epoch != traces_epoch_) OfferTraces();  // one epoch per batch: one file
  traces_epoch_ = trace.epoch;
  traced_in_run_ = true;
  if (traces_.empty()) {
    traces_ = std::move(trace.records);
  } else {
    traces_.append(trace.records);
  }
  traces_count_ += trace.count;
  traces_refused_ += trace.refused;
  if (traces_.size() >= kCaptureWriteBytesMax) OfferTraces();
}

void UnitRun::CatchUpCapture() {
  if (!traced_in_run_) return;
  const CaptureWriter::Current current = d_.capture_->current();
  // Only a newer file of the capture the unit is recording for; the driver's broadcast covers
  // everything else (and tells this unit the same again, which it ignores).
  if (current.capture == 0 || current.capture > traces_epoch_ || current.epoch <= traces_epoch_) {
    return;
  }
  Dispatch(CaptureChanged{true, current.epoch, current.start});
}

void UnitRun::OfferTraces() {
  if (traces_count_ == 0 && traces_refused_ == 0) return;
  d_.capture_->Offer(traces_epoch_, std::move(traces_), traces_count_, traces_refused_);
  traces_.clear();  // moved from: empty, but make sure
  traces_count_ = 0;
  traces_refused_ = 0;
}

bool UnitRun::ReadGuess() {
  ConnRecord* record = Owned(input_->guess);
  if (record == nullptr || record->dead || record->connecting || record->fd < 0) return false;
  if (!unit_->WantsRead(input_->guess)) return false;
  return ReadFrom(input_->guess);
}

void UnitRun::PollUnitSet() {
  // Only this worker polls the set while the unit runs; its entry in the shared set is
  // disarmed, so no other worker can be told about these connections meanwhile.
  epoll_event events[kUnitSetEventsMax];
  int count;
  do {
    count = ::epoll_wait(input_->record->set_fd, events, kUnitSetEventsMax, 0);
  } while (count < 0 && errno == EINTR);
  AtomicStats::Add(d_.stats_.epoll_waits);
  AtomicStats::Add(d_.stats_.unit_set_polls);
  CHECK(count >= 0) << "epoll_wait(unit set): " << std::strerror(errno);
  for (int i = 0; i < count; ++i) {
    input_->run.ready.emplace_back(ConnId::Unpack(events[i].data.u64),
                                   ReadinessOf(events[i].events));
  }
}

void UnitRun::OrderReady() {
  auto& ready = input_->run.ready;
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

bool UnitRun::ReadFrom(ConnId conn) {
  size_t total = 0;
  while (true) {
    // Looked up again after every Handle: the unit may have closed or released it.
    ConnRecord* record = Owned(conn);
    if (record == nullptr || record->dead || record->connecting || record->fd < 0) return true;
    if (!unit_->WantsRead(conn)) return true;  // paused; re-armed when it resumes
    if (total >= d_.config_.read_bytes_per_run_max) {
      // Yield so one busy connection cannot starve the other units.
      still_ready_.emplace_back(conn, sched::Readiness{true, false});
      return true;
    }
    const ssize_t n = ::read(record->fd, buffer_, kReadBufferBytes);
    AtomicStats::Add(d_.stats_.reads);
    if (n > 0) {
      total += static_cast<size_t>(n);
      CatchUpCapture();
      Dispatch(Received{conn, std::string_view(buffer_, static_cast<size_t>(n))});
      // A short read emptied the socket; reading again would only cost an EAGAIN, and the
      // re-arm at the end of the run reports anything that arrives meanwhile.
      if (static_cast<size_t>(n) < kReadBufferBytes) return true;
      continue;
    }
    if (n == 0) {
      ReportDead(record, "closed by peer");
      return true;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return total > 0;
    ReportDead(record, ErrnoText(errno));
    return true;
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
  if (n > 0) {
    last_sent_ = record->id;
    Post(Writable{record->id, static_cast<uint64_t>(n)});
  }
}

void UnitRun::FlushAll() {
  for (int round = 0; round < kFlushRoundsMax && !dirty_.empty(); ++round) {
    flushing_.swap(dirty_);
    for (ConnId conn : flushing_) {
      ConnRecord* record = Owned(conn);
      if (record == nullptr) continue;
      record->dirty = false;
      if (record->dead || record->connecting || !record->pending()) continue;
      FlushOne(record);
    }
    flushing_.clear();
  }
  for (ConnId conn : dirty_) {
    // Still pending after the last round: it waits for EPOLLOUT.
    if (ConnRecord* record = Owned(conn)) record->dirty = false;
  }
  dirty_.clear();
}

void UnitRun::End() {
  // Before the answers go out: once a client has its answer, the records of the request are
  // queued, so a capture switched off right after still has them.
  OfferTraces();
  FlushAll();
  if (unit_->Finished() && TryRetire()) return;
  const std::vector<ConnId> listed = unit_->Conns();
  const std::optional<Instant> deadline = unit_->NextDeadline();
  auto is_listed = [&](ConnId conn) {
    return std::find(listed.begin(), listed.end(), conn) != listed.end();
  };
  std::unique_lock<std::mutex> lock(d_.mu_);
  desired_.clear();
  bool dropped = false;
  d_.sched_.ForEachConnOf(id_, [&](ConnId conn) {
    // Left out: a connection that arrived during this run with a reply for the next one
    // (which the pending wake-up makes sure comes at once).
    if (d_.conns_.at(conn)->in_transit) return;
    dropped = dropped || !is_listed(conn);
    desired_.emplace_back(conn, sched::Interest{});
  });
  if (dropped) {
    // The unit dropped a connection without a Close (it had seen Closed or ConnectFailed).
    lock.unlock();
    ForgetOwned();
    std::erase_if(desired_, [&](const auto& entry) {
      if (is_listed(entry.first)) return false;
      ConnRecord* record = d_.FindOwned(entry.first, id_);
      CHECK(record != nullptr) << "a running unit's connection changed owner behind its back";
      d_.CloseConnection(record);
      return true;
    });
    lock.lock();
  }
  for (auto& [conn, interest] : desired_) {
    const ConnRecord& record = *d_.conns_.at(conn);
    if (record.connecting) {
      interest.write = true;
    } else if (!record.dead) {
      interest.read = unit_->WantsRead(conn);
      interest.write = record.pending();  // EPOLLOUT only while output waits
    }
  }
  sched::Scheduler::EndRunResult result = d_.sched_.EndRun(id_, desired_, still_ready_);
  d_.ApplyAllLocked(result.changes);
  d_.SetUnitDeadlineLocked(id_, *input_->record, deadline);
  if (last_sent_.valid()) input_->record->last_sent = last_sent_;
  // A re-queued unit needs no wake-up: this worker checks the queue before it waits again.
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
      if (!input_->record->inbox.empty()) return false;  // a reply came: run again first
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
    ForgetOwned();
    if (input_->record->admitted) d_.services_.ClientGone(id_);
    std::lock_guard<std::mutex> lock(d_.mu_);
    d_.SetUnitDeadlineLocked(id_, *input_->record, std::nullopt);
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

bool DriverImpl::TakeRunLocked(RunInput* input) {
  std::optional<sched::Scheduler::Run> run = sched_.PopRunnable();
  if (!run) return false;
  input->run = std::move(*run);
  input->record = units_.at(input->run.unit).get();
  input->inbox.clear();
  input->inbox.swap(input->record->inbox);
  for (const Event& event : input->inbox) {
    // This run hands the reply in, so the connection stops being in transit.
    const auto* replied = std::get_if<ServiceReplied>(&event);
    const auto* checkout = replied ? std::get_if<CheckoutReply>(&replied->reply) : nullptr;
    if (checkout != nullptr && checkout->connection.has_value()) {
      auto it = conns_.find(checkout->connection->conn);
      if (it != conns_.end()) it->second->in_transit = false;
    }
  }
  // What the unit owns, looked up once here under the lock instead of call by call in the run.
  input->owned.clear();
  sched_.ForEachConnOf(input->run.unit, [&](ConnId conn) {
    input->owned.emplace_back(conn, conns_.at(conn).get());
  });
  input->timer_due = std::exchange(input->record->timer_due, false);
  input->guess = input->run.poll_set ? GuessLocked(input->run.unit, *input->record) : ConnId{};
  input->drain = input->record->drain_requested && !input->record->drain_delivered;
  input->record->drain_delivered = input->record->drain_delivered || input->drain;
  return true;
}

ConnId DriverImpl::GuessLocked(UnitId unit, const UnitRecord& record) {
  // Only when every armed connection waits for reading alone: a set that may have fired for
  // writability is polled, so a blocked flush resumes at once.
  const ConnId conn = record.last_sent;
  if (!conn.valid() || sched_.OwnerOf(conn) != sched::Owner::OfUnit(unit)) return ConnId{};
  if (sched_.ArmedOf(conn) != sched::Interest{true, false}) return ConnId{};
  if (sched_.ArmedForWrite(unit)) return ConnId{};
  return conn;
}

void DriverImpl::HandleReadinessLocked(const epoll_event* events, int count,
                                       std::vector<ConnId>* pooled) {
  for (int i = 0; i < count; ++i) {
    const uint64_t tag = events[i].data.u64;
    if (tag == kWorkTag) {
      work_wake_pending_ = false;
      continue;
    }
    sched::Scheduler::ReadyResult result;
    if ((tag & kUnitSetTagBit) != 0) {
      result = sched_.OnUnitSetReady(
          UnitId{tag & kUnitIdMax},
          static_cast<uint32_t>((tag & ~kUnitSetTagBit) >> kUnitSetArmingShift));
      ApplyAllLocked(result.wake.disarm);
      continue;
    }
    const ConnId conn = ConnId::Unpack(tag);
    result = sched_.OnReady(conn, ReadinessOf(events[i].events));
    ApplyAllLocked(result.wake.disarm);
    if (result.kind == sched::Scheduler::ReadyResult::Kind::kPool) pooled->push_back(conn);
  }
  if (config_.check_scheduler_invariants) sched_.CheckInvariants();
}

void DriverImpl::WorkerMain() {
  std::unique_ptr<char[]> buffer(new char[kReadBufferBytes]);
  UnitRun runner(*this, buffer.get());
  RunInput input;
  epoll_event events[kWorkerEventsMax];
  std::vector<ConnId> pooled;
  // Runs left before this worker looks at the poll set again even though units are queued:
  // one queue's worth, so units that keep re-queueing (timers, the read bound) cannot keep
  // the readiness of the others waiting.
  size_t runs_before_poll = 0;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    const bool must_poll = runs_before_poll == 0 && sched_.runnable_count() > 0;
    if (!must_poll && TakeRunLocked(&input)) {
      if (runs_before_poll > 0) --runs_before_poll;
      // More queued than this worker is about to run: let a sleeping one share them.
      const bool share = sched_.runnable_count() > 0 && idle_workers_ > 0 && !work_wake_pending_;
      work_wake_pending_ = work_wake_pending_ || share;
      lock.unlock();
      if (share) WriteWorkFd();
      // The unit runs on the thread that found it runnable: no hand-off to another thread.
      runner.Execute(input);
      lock.lock();
      continue;
    }
    // Nothing queued: wait for readiness. Units queued: only look (a non-blocking poll).
    if (!must_poll) ++idle_workers_;
    lock.unlock();
    const int count = ::epoll_wait(poll_fd_, events, kWorkerEventsMax, must_poll ? 0 : -1);
    AtomicStats::Add(stats_.epoll_waits);
    CHECK(count >= 0 || errno == EINTR) << "epoll_wait: " << std::strerror(errno);
    lock.lock();
    if (!must_poll) --idle_workers_;
    HandleReadinessLocked(events, std::max(count, 0), &pooled);
    runs_before_poll = sched_.runnable_count();
    if (!pooled.empty()) {
      lock.unlock();
      const Instant now = Now();
      for (ConnId conn : pooled) IdleConnectionLost(now, conn);
      pooled.clear();
      lock.lock();
    }
  }
  lock.unlock();
  WriteWorkFd();  // pass the stop on to the next waiting worker
}

}  // namespace switchyard::io_real
