// The virtual workers' runs: io_real's UnitRun (driver_run.cc) cut into steps, so that the
// decision source can interleave runs of different units between any two of them.
//
// Order within a run is io_real's: the inbox (Accepted, service replies), a due timer and a
// drain request first, then the ready connections client first; events an action produces for
// the same unit (a finished connect, a reply, a Writable) are handed in right after the call
// that caused them; the output is flushed at the end, and the unit is re-armed or retired.
#include <algorithm>
#include <utility>

#include "core/base/check.h"
#include "io_sim/sim_driver_internal.h"

namespace switchyard::io_sim {

SimRun::SimRun(SimDriverImpl& driver, RunInput input)
    : d_(driver), id_(input.run.unit), record_(input.record), unit_(input.record->unit.get()) {
  for (Event& event : input.inbox) work_.emplace_back(std::move(event));
  if (input.timer_due) work_.emplace_back(Event{TimerFired{}});
  if (input.drain) work_.emplace_back(DrainItem{});
  OrderReady(input.run.ready);
  for (const auto& [conn, readiness] : input.run.ready) {
    work_.emplace_back(ReadyItem{conn, readiness});
  }
}

bool SimRun::Step() {
  if (!outbox_.empty()) {
    // A request is one step of its own: other workers may move between a unit asking and the
    // services answering (DESIGN.md section 2).
    if (std::holds_alternative<RequestService>(outbox_.front())) {
      ProcessRequest();
    } else {
      PerformActions();
    }
    return false;
  }
  if (!local_.empty()) {
    Event event = std::move(local_.front());
    local_.pop_front();
    HandleEvent(event);
    return false;
  }
  if (!flushing_) {
    if (!work_.empty()) {
      WorkItem item = std::move(work_.front());
      work_.pop_front();
      DoWork(item);
      return false;
    }
    flushing_ = true;
  }
  if (flush_rounds_ < kFlushRoundsMax && !dirty_.empty()) {
    ++flush_rounds_;
    FlushRound();
    return false;
  }
  for (ConnId conn : dirty_) {
    // Still pending after the last round: it waits for the window to open.
    if (DriverConn* record = Owned(conn)) record->dirty = false;
  }
  dirty_.clear();
  Finish();
  return true;
}

DriverConn* SimRun::Owned(ConnId conn) { return d_.FindOwned(conn, id_); }

// ---------------------------------------------------------------- calls into the unit

void SimRun::HandleEvent(const Event& event) {
  const ConnId conn = EventConn(event);
  d_.Record("handle", {static_cast<int64_t>(id_.value), static_cast<int64_t>(event.index()),
                       static_cast<int64_t>(conn.packed())});
  d_.Tracef("handle unit=%d event=%s conn=c%d.%d", id_.value, EventName(event), conn.index,
            conn.generation);
  unit_->Handle(d_.now(), event);
  AfterCall();
}

void SimRun::AfterCall() {
  ++d_.stats_.handles;
  // Every call is followed by a complete drain of the unit's actions (str0m's contract).
  while (std::optional<Action> action = unit_->PollAction()) outbox_.push_back(std::move(*action));
  unit_->CheckInvariants();
}

void SimRun::PerformActions() {
  while (!outbox_.empty() && !std::holds_alternative<RequestService>(outbox_.front())) {
    Action action = std::move(outbox_.front());
    outbox_.pop_front();
    Perform(action);
  }
}

void SimRun::ProcessRequest() {
  RequestService request = std::get<RequestService>(std::move(outbox_.front()));
  outbox_.pop_front();
  ++d_.stats_.service_requests;
  d_.Record("service",
            {static_cast<int64_t>(id_.value), static_cast<int64_t>(request.request.index())});
  d_.Tracef("service unit=%d request=%d", id_.value, request.request.index());
  d_.ApplyOutcome(d_.services_.Handle(d_.now(), id_, std::move(request.request)), id_, &local_);
}

void SimRun::Perform(Action& action) {
  const int64_t index = static_cast<int64_t>(action.index());
  if (auto* send = std::get_if<Send>(&action)) {
    d_.Record("send", {static_cast<int64_t>(id_.value), static_cast<int64_t>(send->conn.packed()),
                       static_cast<int64_t>(send->bytes.size())});
    DoSend(*send);
  } else if (auto* connect = std::get_if<Connect>(&action)) {
    d_.Record("connect", {static_cast<int64_t>(id_.value),
                          static_cast<int64_t>(connect->conn.packed()), connect->node.index});
    DoConnect(*connect);
  } else if (auto* close = std::get_if<Close>(&action)) {
    d_.Record("close_action",
              {static_cast<int64_t>(id_.value), static_cast<int64_t>(close->conn.packed())});
    DoClose(*close);
  } else if (std::holds_alternative<Trace>(action)) {
    // The simulator never switches capture on; were a record to come, it is not written.
  } else {
    // PauseRead and ResumeRead need no bookkeeping: reading and re-arming ask WantsRead().
    ++(std::holds_alternative<PauseRead>(action) ? d_.stats_.reads_paused
                                                 : d_.stats_.reads_resumed);
    d_.Record("action", {static_cast<int64_t>(id_.value), index});
  }
}

void SimRun::DoSend(Send& send) {
  DriverConn* record = Owned(send.conn);
  CHECK(record != nullptr) << "unit " << id_.value << " sent on c" << send.conn.index
                           << ", which it does not own";
  if (record->dead) return;  // the peer is gone and the unit has been told
  if (record->out.empty()) {
    record->out = std::move(send.bytes);
  } else {
    record->out.append(send.bytes);
  }
  MarkDirty(record);  // taken by the network once, at the end of the run
}

void SimRun::DoConnect(const Connect& connect) {
  CHECK(Owned(connect.conn) == nullptr && !d_.conns_.contains(connect.conn))
      << "Connect reuses c" << connect.conn.index;
  DriverConn record{connect.conn};
  record.connecting = true;  // armed for writability at the end of the run, as io_real does
  d_.conns_.emplace(connect.conn, std::move(record));
  d_.sched_.AddConn(connect.conn, sched::Owner::OfUnit(id_));
  d_.network_.Connect(connect.conn, connect.node);
}

void SimRun::DoClose(const Close& close) {
  CHECK(Owned(close.conn) != nullptr)
      << "unit " << id_.value << " closed c" << close.conn.index << ", which it does not own";
  d_.CloseConnection(close.conn);
}

// ---------------------------------------------------------------- work items

void SimRun::DoWork(WorkItem& item) {
  if (auto* event = std::get_if<Event>(&item)) {
    HandleEvent(*event);
  } else if (std::holds_alternative<DrainItem>(item)) {
    d_.Record("drain", {static_cast<int64_t>(id_.value)});
    unit_->BeginDrain(d_.now());
    AfterCall();
  } else if (auto* ready = std::get_if<ReadyItem>(&item)) {
    HandleReady(ready->conn, ready->readiness);
  } else if (auto* read = std::get_if<ReadItem>(&item)) {
    ReadOnce(read->conn, read->total);
  }
}

void SimRun::OrderReady(std::vector<std::pair<ConnId, sched::Readiness>>& ready) {
  if (ready.size() < 2) return;
  // The client first, then its servers (DESIGN.md section 3, step 4): the unit's own order.
  const std::vector<ConnId> order = unit_->Conns();
  auto rank = [&](ConnId conn) {
    return std::find(order.begin(), order.end(), conn) - order.begin();
  };
  std::stable_sort(ready.begin(), ready.end(),
                   [&](const auto& a, const auto& b) { return rank(a.first) < rank(b.first); });
}

void SimRun::HandleReady(ConnId conn, sched::Readiness readiness) {
  DriverConn* record = Owned(conn);
  if (record == nullptr) return;  // closed earlier in this run
  if (readiness.writable) {
    if (record->connecting) {
      FinishConnect(record);
    } else if (record->pending() && !record->dead) {
      FlushOne(record);
    }
  }
  // Read after the events above (a Connected) have been handed in, as io_real does.
  if (readiness.readable) work_.push_front(ReadItem{conn, 0});
}

void SimRun::FinishConnect(DriverConn* record) {
  std::string why;
  const SimNetwork::ConnectState state = d_.network_.ConnectStatus(record->id, &why);
  if (state == SimNetwork::ConnectState::kPending) return;  // still armed for it at the end
  record->connecting = false;
  if (state == SimNetwork::ConnectState::kFailed) {
    record->dead = true;
    record->out.clear();
    record->out_pos = 0;
    local_.push_back(ConnectFailed{record->id, why});
    return;
  }
  if (record->pending()) MarkDirty(record);  // what the unit queued while connecting
  local_.push_back(Connected{record->id});
}

void SimRun::ReadOnce(ConnId conn, size_t total) {
  DriverConn* record = Owned(conn);
  if (record == nullptr || record->dead || record->connecting) return;
  if (!unit_->WantsRead(conn)) return;  // paused: the bytes wait in the network
  if (total >= d_.config_.read_bytes_per_run_max) {
    // Yield so one busy connection cannot starve the other units.
    still_ready_.emplace_back(conn, sched::Readiness{true, false});
    return;
  }
  ReadResult read = d_.network_.Read(conn, d_.config_.read_chunk_bytes);
  switch (read.kind) {
    case ReadResult::Kind::kData: {
      const size_t n = read.bytes.size();
      HandleEvent(Received{conn, read.bytes});
      // A full chunk may have left more behind; a short one emptied the buffer, and the
      // re-arm at the end of the run reports anything that arrives meanwhile.
      if (n == d_.config_.read_chunk_bytes) work_.push_front(ReadItem{conn, total + n});
      return;
    }
    case ReadResult::Kind::kEof:
      return ReportDead(record, "closed by peer");
    case ReadResult::Kind::kReset:
      return ReportDead(record, read.why);
    case ReadResult::Kind::kEmpty:
      return;
  }
}

void SimRun::ReportDead(DriverConn* record, std::string why) {
  if (record->dead) return;
  record->dead = true;
  record->out.clear();
  record->out_pos = 0;
  local_.push_back(Closed{record->id, std::move(why)});
}

// ---------------------------------------------------------------- output

void SimRun::MarkDirty(DriverConn* record) {
  if (record->dirty) return;
  record->dirty = true;
  dirty_.push_back(record->id);
}

void SimRun::FlushOne(DriverConn* record) {
  WriteResult write =
      d_.network_.Write(record->id, std::string_view(record->out).substr(record->out_pos));
  if (write.broken) return ReportDead(record, write.why);
  record->out_pos += write.accepted;
  if (!record->pending()) {
    record->out.clear();
    record->out_pos = 0;
  } else if (record->out_pos >= d_.config_.read_chunk_bytes &&
             record->out_pos * 2 >= record->out.size()) {
    record->out.erase(0, record->out_pos);  // keep the buffer from creeping forward forever
    record->out_pos = 0;
  }
  // The core counts flushed bytes for its watermarks (it may resume reading a server).
  if (write.accepted > 0) local_.push_back(Writable{record->id, write.accepted});
}

void SimRun::FlushRound() {
  std::vector<ConnId> list;
  list.swap(dirty_);
  for (ConnId conn : list) {
    DriverConn* record = Owned(conn);
    if (record == nullptr) continue;
    record->dirty = false;
    if (record->dead || record->connecting || !record->pending()) continue;
    FlushOne(record);
  }
}

// ---------------------------------------------------------------- the end of the run

void SimRun::Finish() {
  if (unit_->Finished() && TryRetire()) return;
  const std::vector<ConnId> listed = unit_->Conns();
  std::vector<ConnId> owned;
  for (ConnId conn : d_.sched_.ConnsOf(id_)) {
    // Left out: a connection that arrived during this run with a reply for the next one
    // (which the pending wake-up makes sure comes at once).
    if (!d_.conns_.at(conn).in_transit) owned.push_back(conn);
  }
  std::vector<std::pair<ConnId, sched::Interest>> desired;
  for (ConnId conn : owned) {
    DriverConn* record = Owned(conn);
    CHECK(record != nullptr);
    if (std::find(listed.begin(), listed.end(), conn) == listed.end()) {
      // The unit dropped it without a Close (it had seen Closed or ConnectFailed).
      d_.CloseConnection(conn);
      continue;
    }
    sched::Interest interest;
    if (record->connecting) {
      interest.write = true;
    } else if (!record->dead) {
      interest.read = unit_->WantsRead(conn);
      interest.write = record->pending();  // only while output waits
    }
    desired.emplace_back(conn, interest);
  }
  const std::optional<Instant> deadline = unit_->NextDeadline();
  sched::Scheduler::EndRunResult result = d_.sched_.EndRun(id_, desired, still_ready_);
  d_.ApplyChanges(result.changes);
  d_.SetUnitDeadline(id_, *record_, deadline);
  d_.Record("end_run", {static_cast<int64_t>(id_.value), result.requeued ? 1 : 0});
  d_.Tracef("run.end unit=%d requeued=%s", id_.value, result.requeued ? "true" : "false");
  if (d_.config_.check_scheduler_invariants) d_.sched_.CheckInvariants();
}

bool SimRun::TryRetire() {
  if (!record_->inbox.empty()) return false;  // a reply came: run again first
  for (ConnId conn : d_.sched_.ConnsOf(id_)) {
    // A connection the unit saw close is simply dropped; a live one it forgot is closed too.
    d_.Record("retire_left_conn",
              {static_cast<int64_t>(conn.packed()), d_.conns_.at(conn).dead ? 1 : 0});
    d_.CloseConnection(conn);
  }
  if (record_->admitted) d_.services_.ClientGone(id_);
  d_.SetUnitDeadline(id_, *record_, std::nullopt);
  d_.sched_.RemoveUnit(id_);
  d_.Record("retire", {static_cast<int64_t>(id_.value)});
  d_.Tracef("unit_retired unit=%d", id_.value);
  ++d_.stats_.units_retired;
  // The unit is destroyed here; this run touches neither it nor its record again.
  unit_ = nullptr;
  record_ = nullptr;
  d_.units_.erase(id_);
  d_.RefreshServicesDeadline();
  if (d_.config_.check_scheduler_invariants) d_.sched_.CheckInvariants();
  return true;
}

}  // namespace switchyard::io_sim
