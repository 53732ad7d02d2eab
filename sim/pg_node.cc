// PgNode: the simulated server's lifecycle, the pumping of sessions, deadlines, faults, roles
// and replication. The protocol and SQL live in pg_startup.cc, pg_protocol.cc and pg_exec.cc.
#include "sim/pg_node.h"

#include <algorithm>
#include <utility>

#include "core/auth/scram.h"
#include "core/base/check.h"
#include "sim/pg_node_internal.h"

namespace switchyard::sim {
namespace internal {
namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

NodeState::NodeState(NodeOptions o)
    : options(std::move(o)),
      in_recovery(options.role == NodeRole::kReplica),
      store(KvStoreLimits{.wal_records_max = options.limits.wal_records_max}),
      next_pid(options.first_pid) {
  if (in_recovery) replay_lsn = store.lsn();
  if (options.auth == NodeAuth::kScramSha256) {
    for (const auto& [user, password] : options.users) {
      if (!password) continue;
      verifiers[user] =
          auth::MakeVerifier(*password, RandomBytes(*this, 16), options.scram_iterations);
    }
  }
}

std::string RandomBytes(NodeState& node, size_t n) {
  std::string out(n, '\0');
  if (node.options.random_bytes) {
    node.options.random_bytes(out.data(), n);
    return out;
  }
  for (size_t i = 0; i < n; i += 8) {
    uint64_t word = SplitMix64(node.options.seed ^ SplitMix64(++node.random_counter));
    for (size_t j = i; j < n && j < i + 8; ++j) {
      out[j] = static_cast<char>(word & 0xff);
      word >>= 8;
    }
  }
  return out;
}

void Pump(NodeState& node, Session& session, Instant now) {
  while (node.up && !node.paused && session.phase != Session::Phase::kDone) {
    if (session.running) {
      if (!AdvanceRunning(node, session, now)) return;
      continue;
    }
    if (session.in_query && session.phase == Session::Phase::kReady) {
      RunNextQueryStatement(node, session, now);
      continue;
    }
    if (!ProcessOneMessage(node, session, now)) break;
  }
  // Here the session waits for input. If its peer is gone, it ends now: PostgreSQL notices the
  // end of the stream only when it reads for the next command (or more COPY data), so
  // everything the client sent before closing has run.
  if (session.peer_closed && session.phase != Session::Phase::kDone && !session.running &&
      node.up && !node.paused) {
    EndSession(node, session);
  }
}

void RunPending(NodeState& node, Instant now) {
  while (!node.runnable.empty()) {
    const uint64_t id = *node.runnable.begin();
    node.runnable.erase(node.runnable.begin());
    auto it = node.sessions.find(id);
    if (it != node.sessions.end()) Pump(node, it->second, now);
  }
}

void EndSession(NodeState& node, Session& session) {
  if (session.phase == Session::Phase::kDone) return;
  session.running.reset();
  session.query.clear();
  session.in_query = false;
  session.copy_in.reset();
  if (session.tx) RollbackTransaction(node, session);
  session.portals.clear();
  session.prepared.clear();
  session.listens.clear();
  session.notifications.clear();
  session.scram.reset();
  if (session.pid != 0) node.pid_to_session.erase(session.pid);
  session.counted = false;
  session.phase = Session::Phase::kDone;
  node.runnable.erase(session.id);
}

void TerminateNow(NodeState& node, Session& session) {
  if (session.phase == Session::Phase::kDone) return;
  SendFatal(node, session, "57P01", "terminating connection due to administrator command");
}

bool RequestCancel(NodeState& node, Session& session) {
  if (session.phase == Session::Phase::kCopyIn) {
    CancelCopyIn(node, session);
    return true;
  }
  if (!session.running) return false;
  session.running->cancel_requested = true;
  node.runnable.insert(session.id);
  return true;
}

}  // namespace internal

using internal::NodeState;
using internal::Session;

namespace {

// Drops what was finished: ended sessions whose peer is gone, and output nobody will read.
void Reap(NodeState& node) {
  for (auto it = node.sessions.begin(); it != node.sessions.end();) {
    Session& session = it->second;
    if (session.peer_closed) session.output.clear();
    if (session.peer_closed && session.phase == Session::Phase::kDone) {
      it = node.sessions.erase(it);
    } else {
      ++it;
    }
  }
}

void Settle(NodeState& node, Instant now) {
  internal::RunPending(node, now);
  Reap(node);
}

}  // namespace

PgNode::PgNode(NodeOptions options) : state_(std::make_unique<NodeState>(std::move(options))) {}

PgNode::~PgNode() = default;

void PgNode::Open(uint64_t session_id, Instant now) {
  NodeState& node = *state_;
  CHECK(!node.sessions.contains(session_id)) << "session id reused: " << session_id;
  if (!node.up || node.sessions.size() >= node.options.limits.sessions_max) return;
  node.sessions.emplace(std::piecewise_construct, std::forward_as_tuple(session_id),
                        std::forward_as_tuple(session_id, node.options.limits.message_size_max));
  ++node.counters.sessions_opened;
  Settle(node, now);
}

void PgNode::Receive(uint64_t session_id, std::string_view bytes, Instant now) {
  NodeState& node = *state_;
  auto it = node.sessions.find(session_id);
  if (!node.up || it == node.sessions.end()) return;
  Session& session = it->second;
  if (session.phase == Session::Phase::kDone || session.peer_closed) return;
  session.reader.Append(bytes);
  if (session.reader.buffered() > node.options.limits.pending_input_bytes_max) {
    internal::SendFatal(node, session, "53200", "out of memory: too much unprocessed input");
  } else {
    internal::Pump(node, session, now);
  }
  Settle(node, now);
}

void PgNode::Close(uint64_t session_id, Instant now) {
  NodeState& node = *state_;
  auto it = node.sessions.find(session_id);
  if (it == node.sessions.end()) return;
  Session& session = it->second;
  session.peer_closed = true;
  internal::Pump(node, session, now);
  Settle(node, now);
}

std::string PgNode::TakeOutput(uint64_t session_id) {
  NodeState& node = *state_;
  auto it = node.sessions.find(session_id);
  if (it == node.sessions.end()) return {};
  std::string output = std::move(it->second.output);
  it->second.output.clear();
  if (it->second.phase == Session::Phase::kDone) node.sessions.erase(it);
  return output;
}

bool PgNode::WantsClose(uint64_t session_id) const {
  auto it = state_->sessions.find(session_id);
  return !state_->up || it == state_->sessions.end() || it->second.phase == Session::Phase::kDone;
}

std::vector<uint64_t> PgNode::SessionsWithOutput() const {
  std::vector<uint64_t> ids;
  for (const auto& [id, session] : state_->sessions) {
    if (!session.output.empty() || session.phase == Session::Phase::kDone) ids.push_back(id);
  }
  return ids;
}

std::optional<Instant> PgNode::NextDeadline() const {
  const NodeState& node = *state_;
  if (!node.up || node.paused) return std::nullopt;
  std::optional<Instant> next;
  auto consider = [&](Instant t) {
    if (!next || t < *next) next = t;
  };
  for (const auto& [id, session] : node.sessions) {
    if (!session.running) continue;
    const internal::Running& r = *session.running;
    if (r.timeout_at) consider(*r.timeout_at);
    switch (r.phase) {
      case internal::Running::Phase::kQueued:
        consider(r.ready_at);
        break;
      case internal::Running::Phase::kSleeping:
        consider(r.done_at);
        break;
      case internal::Running::Phase::kLockWait:
        if (!r.deadlock_checked) consider(r.deadlock_check_at);
        if (r.lock_timeout_at) consider(*r.lock_timeout_at);
        break;
    }
  }
  return next;
}

void PgNode::Tick(Instant now) {
  NodeState& node = *state_;
  if (!node.up || node.paused) return;
  for (auto& [id, session] : node.sessions) {
    if (session.running) node.runnable.insert(id);
  }
  Settle(node, now);
}

void PgNode::Crash() {
  NodeState& node = *state_;
  node.up = false;
  node.paused = false;
  node.sessions.clear();
  node.pid_to_session.clear();
  node.row_locks.clear();
  node.runnable.clear();
}

void PgNode::Restart(Instant now) {
  Crash();
  state_->up = true;
  Settle(*state_, now);
}

void PgNode::Shutdown(Instant now) {
  NodeState& node = *state_;
  if (!node.up) return;
  for (auto& [id, session] : node.sessions) {
    if (session.phase == Session::Phase::kDone) continue;
    if (session.phase == Session::Phase::kReady || session.phase == Session::Phase::kCopyIn) {
      internal::TerminateNow(node, session);
    } else {
      internal::EndSession(node, session);
    }
  }
  Reap(node);
  node.up = false;
  node.runnable.clear();
  (void)now;
}

void PgNode::Pause(bool paused, Instant now) {
  NodeState& node = *state_;
  node.paused = paused;
  if (paused || !node.up) return;
  for (auto& [id, session] : node.sessions) node.runnable.insert(id);
  Settle(node, now);
}

void PgNode::SetSlowness(int64_t extra_us_per_statement) {
  state_->slowness_us = std::max<int64_t>(0, extra_us_per_statement);
}

void PgNode::TerminateSession(uint64_t session_id, Instant now) {
  NodeState& node = *state_;
  auto it = node.sessions.find(session_id);
  if (!node.up || it == node.sessions.end()) return;
  internal::TerminateNow(node, it->second);
  Settle(node, now);
}

absl::Status PgNode::ReplicateFrom(const PgNode& upstream, uint64_t upto_lsn, Instant now) {
  NodeState& node = *state_;
  if (&upstream == this) return absl::InvalidArgumentError("a node cannot follow itself");
  if (!node.in_recovery)
    return absl::FailedPreconditionError(node.options.name + " is not a replica");
  if (!node.up || node.paused) return absl::UnavailableError(node.options.name + " is not running");
  if (!upstream.state_->up) {
    return absl::UnavailableError(upstream.state_->options.name + " is down");
  }
  absl::Status status = node.store.ReplicateFrom(upstream.state_->store, upto_lsn);
  if (!status.ok()) return status;
  node.replay_lsn = node.store.lsn();
  if (!node.store.wal().empty()) {
    node.timeline = std::max(node.timeline, node.store.wal().back().timeline);
  }
  Settle(node, now);
  return absl::OkStatus();
}

absl::Status PgNode::Promote(Instant now) {
  NodeState& node = *state_;
  if (!node.in_recovery) {
    return absl::FailedPreconditionError(node.options.name + " is not in recovery");
  }
  if (!node.up) return absl::UnavailableError(node.options.name + " is down");
  node.in_recovery = false;
  ++node.timeline;
  node.store.AppendEndOfRecovery(node.timeline, node.options.name);
  Settle(node, now);
  return absl::OkStatus();
}

void PgNode::RebuildAsReplicaOf(const PgNode& upstream, Instant now) {
  CHECK(&upstream != this);
  Crash();
  NodeState& node = *state_;
  node.store.CopyFrom(upstream.state_->store);
  node.in_recovery = true;
  node.timeline = upstream.state_->timeline;
  node.replay_lsn = node.store.lsn();
  node.up = true;
  Settle(node, now);
}

const std::string& PgNode::name() const { return state_->options.name; }
bool PgNode::up() const { return state_->up; }
bool PgNode::paused() const { return state_->paused; }
bool PgNode::in_recovery() const { return state_->in_recovery; }
int PgNode::timeline() const { return state_->timeline; }
uint64_t PgNode::lsn() const { return state_->store.lsn(); }
const KvStore& PgNode::store() const { return state_->store; }
const NodeCounters& PgNode::counters() const { return state_->counters; }

std::vector<uint64_t> PgNode::SessionIds() const {
  std::vector<uint64_t> ids;
  for (const auto& [id, session] : state_->sessions) ids.push_back(id);
  return ids;
}

std::optional<SessionView> PgNode::InspectSession(uint64_t session_id) const {
  auto it = state_->sessions.find(session_id);
  if (it == state_->sessions.end()) return std::nullopt;
  const Session& session = it->second;
  SessionView view;
  view.id = session.id;
  view.pid = session.pid;
  view.authenticated = session.pid != 0 && session.phase != Session::Phase::kDone;
  view.user = session.user;
  view.database = session.database;
  view.transaction_status = internal::TransactionStatus(session);
  view.running = session.running.has_value();
  view.settings = session.gucs.SessionOverrides();
  for (const auto& [name, prepared] : session.prepared) {
    if (!name.empty()) view.prepared_statements.push_back(name);
  }
  view.listens.assign(session.listens.begin(), session.listens.end());
  return view;
}

void PgNode::CheckInvariants() const {
  const NodeState& node = *state_;
  node.store.CheckInvariants();
  CHECK(node.runnable.empty()) << "sessions left runnable after a call";
  for (const auto& [key, holder] : node.row_locks) {
    auto it = node.sessions.find(holder);
    CHECK(it != node.sessions.end()) << "lock on " << key << " held by a gone session";
    CHECK(it->second.tx.has_value()) << "lock on " << key << " held outside a transaction";
    CHECK(it->second.tx->locks.contains(key));
  }
  size_t counted = 0;
  for (const auto& [id, session] : node.sessions) {
    CHECK_EQ(id, session.id);
    counted += session.counted ? 1 : 0;
    if (session.phase == Session::Phase::kDone) {
      CHECK(!session.tx.has_value());
      CHECK(!session.running.has_value());
      continue;
    }
    if (session.running) CHECK(session.tx.has_value());
    if (session.in_query)
      CHECK(session.phase == Session::Phase::kReady || session.phase == Session::Phase::kCopyIn);
    if (session.phase == Session::Phase::kCopyIn) CHECK(session.copy_in.has_value());
    if (session.tx) {
      for (const std::string& key : session.tx->locks) {
        auto lock = node.row_locks.find(key);
        CHECK(lock != node.row_locks.end() && lock->second == id) << key;
      }
      if (node.in_recovery) CHECK(session.tx->writes.empty()) << "a write pending on a replica";
    }
    if (session.pid != 0) CHECK_EQ(node.pid_to_session.at(session.pid), id);
  }
  CHECK_LE(counted, node.options.limits.max_connections);
  CHECK_EQ(node.pid_to_session.size(),
           static_cast<size_t>(
               std::count_if(node.sessions.begin(), node.sessions.end(), [](const auto& entry) {
                 return entry.second.pid != 0 && entry.second.phase != Session::Phase::kDone;
               })));
}

}  // namespace switchyard::sim
