// The oracles of routing and failover (DESIGN.md section 5), for sim/oracles.cc only: where
// statements may run, read-your-writes, the fencing of an old primary and the detection of a
// new one. Each judges on its own, from the clients' observations and from what the nodes
// received (NodeQuery, whose routing tags say whose statement it was and where it may run).
//
// Defined in this header because the simulator's build lists its runner sources by name; the
// classes are internal to oracles.cc, which alone includes it.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/base/strings.h"
#include "sim/oracles.h"

namespace switchyard::sim::cluster_oracles {

inline ClientInfo ClientOf(const RouteTag& tag) { return ClientInfo{tag.client, tag.session}; }

// ---------------------------------------------------------------- no_write_on_replica

// Writes, locking reads, and every statement of a read-write transaction or of a batch that
// writes must reach the primary only (the workload's tags say which: primary_only).
class NoWriteOnReplicaOracle final : public Oracle {
 public:
  using Oracle::Oracle;

  void OnNodeQuery(const NodeQuery& q) override {
    if (!q.in_recovery) return;
    std::optional<RouteTag> tag = ParseRouteTag(q.sql);
    if (!tag || !tag->primary_only) return;
    const ClientInfo client = ClientOf(*tag);
    Report(&client, Cat("#", tag->seq, " `", q.sql, "` was sent to replica n", q.node,
                        "; it must run on the primary (a write, a locking read, or part of a "
                        "read-write transaction or of a Sync batch that writes)"));
  }
};

// ---------------------------------------------------------------- batch_one_node

// A Sync batch is one implicit transaction: all its statements go to one node (a read-only
// batch retried after a lost replica starts over, from its first statement).
class BatchOneNodeOracle final : public Oracle {
 public:
  using Oracle::Oracle;

  void OnNodeQuery(const NodeQuery& q) override {
    std::optional<RouteTag> tag = ParseRouteTag(q.sql);
    if (!tag) return;
    Last& last = last_[ClientOf(*tag).Key()];
    if (tag->index > 0 && last.seq == tag->seq && last.index + 1 == tag->index &&
        last.node != q.node) {
      const ClientInfo client = ClientOf(*tag);
      Report(&client, Cat("statement ", tag->index, " of the Sync batch #", tag->seq, " went to n",
                          q.node, ", statement ", last.index, " to n", last.node,
                          ": the batch was split across nodes"));
    }
    last = Last{tag->seq, tag->index, q.node};
  }

  void OnEnded(const ClientInfo& client, const SessionModel&, const Ending&) override {
    last_.erase(client.Key());
  }

 private:
  struct Last {
    uint64_t seq = 0;
    uint32_t index = 0;
    size_t node = 0;
  };
  std::map<uint64_t, Last> last_;
};

// ---------------------------------------------------------------- read_your_writes

// A client's reads may be stale with respect to other clients' writes (replica lag), but they
// never miss the client's own committed writes, nor go back before the state the primary had
// (as last polled) when the session connected.
class ReadYourWritesOracle final : public Oracle {
  struct Bound {
    uint64_t position = 0;
    std::string why;
  };

 public:
  using Oracle::Oracle;

  void OnConnect(const ClientInfo& client) override {
    Bound& bound = bounds_[client.Key()];
    bound = Bound{};
    if (world_.cluster == nullptr || world_.cluster->services == nullptr) return;
    IngestWal();
    SampleView();
    // The proxy reads the view when it accepts the connection, later than now: its bound is at
    // least this one. Without a primary the view keeps the last one's LSN; the LSN counts on
    // that node's line (an old primary's, if the proxy has not seen a promotion yet).
    const ClusterSnapshot& view = world_.cluster->services->cluster();
    if (!last_primary_) return;
    const PgNode& primary = world_.cluster->nodes[*last_primary_]->pg();
    bound.position = world_.history->PositionOfLsn(primary.store(), view.primary_lsn);
    bound.why = Cat("the primary's LSN as polled when the session connected (position ",
                    bound.position, ")");
  }

  void OnRequest(const ClientInfo&, const Request&) override { SampleView(); }

  void OnAnswer(const ClientInfo& client, const SessionModel& session, const Request& request,
                const Answer& answer) override {
    SampleView();
    if (!answer.malformed.empty()) return;
    if (answer.error() != nullptr) return JudgeLostWrite(client, session, request, answer);
    Bound& bound = bounds_[client.Key()];
    if (session.status() != 'E' && request.replica_ok) Judge(client, bound, request, answer);
    // Own writes that just committed raise the bound.
    std::vector<std::string> committed;
    if (session.status() == 'I' && request.IsWrite() && answer.Affected() > 0) {
      committed.push_back(request.sql);
    } else if (session.status() == 'T' && request.op == Op::kCommit) {
      committed = session.tx_statements();
    } else if (request.op == Op::kBatch && session.status() == 'I') {
      for (size_t i = 0; i < request.statements.size() && i < answer.parts.size(); ++i) {
        Answer part;
        part.tags.push_back(answer.parts[i].tag);
        if (request.statements[i].IsWrite() && part.Affected() > 0) {
          committed.push_back(request.statements[i].sql);
        }
      }
    }
    RaiseBound(bound, request, committed, answer.pos, Cat("its own write #", request.seq));
  }

  // A write answered 08006 (lost in flight) or 08007 (lost during COMMIT) may have committed
  // all the same; when the history holds it, the client's later reads must see it too.
  void JudgeLostWrite(const ClientInfo& client, const SessionModel& session, const Request& request,
                      const Answer& answer) {
    const Loss loss = answer.LossKind();
    if (loss != Loss::kInFlight && loss != Loss::kCommit) return;
    std::vector<std::string> maybe;
    if (session.status() == 'I' && request.IsWrite()) {
      maybe.push_back(request.sql);
    } else if (session.status() == 'T' && request.op == Op::kCommit) {
      maybe = session.tx_statements();
    }
    RaiseBound(bounds_[client.Key()], request, maybe, answer.pos,
               Cat("its own write #", request.seq, " (answered ", LossName(loss),
                   " when its connection was lost, but committed)"));
  }

  void RaiseBound(Bound& bound, const Request& request, const std::vector<std::string>& written,
                  uint64_t answered_at, const std::string& what) {
    if (written.empty()) return;
    if (std::optional<uint64_t> record =
            world_.history->FindRecord(written, request.sent_pos, answered_at)) {
      if (*record + 1 > bound.position) {
        bound.position = *record + 1;
        bound.why = Cat(what, " (position ", bound.position, ")");
      }
    }
  }

  void OnEnded(const ClientInfo& client, const SessionModel&, const Ending&) override {
    bounds_.erase(client.Key());
    served_.erase(client.Key());
  }

  // Which node the request went to last, for the report.
  void OnNodeQuery(const NodeQuery& q) override {
    if (std::optional<RouteTag> tag = ParseRouteTag(q.sql)) {
      served_[ClientOf(*tag).Key()] = {tag->seq, q.node};
    }
  }

 private:
  // The node the proxy's view last named the primary (the view keeps its LSN without one).
  void SampleView() {
    if (world_.cluster == nullptr || world_.cluster->services == nullptr) return;
    const ClusterSnapshot& view = world_.cluster->services->cluster();
    if (view.primary && view.primary->index < world_.cluster->nodes.size()) {
      last_primary_ = view.primary->index;
    }
  }

  void Judge(const ClientInfo& client, const Bound& bound, const Request& request,
             const Answer& answer) {
    if (bound.position == 0) return;
    if (request.op == Op::kBatch) {
      for (size_t i = 0; i < request.statements.size() && i < answer.parts.size(); ++i) {
        const Part& part = answer.parts[i];
        JudgeRows(client, bound, request, request.statements[i], part.rows, answer.pos);
      }
      return;
    }
    if (request.op == Op::kRead || request.op == Op::kScan) {
      JudgeRows(client, bound, request, request, answer.rows, answer.pos);
    }
  }

  void JudgeRows(const ClientInfo& client, const Bound& bound, const Request& request,
                 const Request& statement,
                 const std::vector<std::vector<std::optional<std::string>>>& rows, uint64_t to) {
    bool seen = true;
    if (statement.op == Op::kRead) {
      RowState row;
      if (!rows.empty() && !rows[0].empty()) row = rows[0][0];
      seen = world_.history->Saw(statement.key, bound.position, to, row);
    } else if (statement.op == Op::kScan) {
      std::map<std::string, std::string> table;
      for (const auto& row : rows) {
        if (row.size() == 2 && row[0] && row[1]) table.emplace(*row[0], *row[1]);
      }
      seen = world_.history->SawTable(bound.position, to, table);
    }
    if (seen) return;
    auto served = served_.find(client.Key());
    const std::string node = served != served_.end() && served->second.first == request.seq
                                 ? Cat("n", served->second.second)
                                 : std::string("a node");
    Report(&client,
           Cat("#", request.seq, " `", statement.sql, "` read from ", node, " a state older than ",
               bound.why, ", answered at position ", to, ": stale for what this client must see"));
  }

  std::map<uint64_t, Bound> bounds_;
  std::map<uint64_t, std::pair<uint64_t, size_t>> served_;  // client -> (seq, node)
  std::optional<size_t> last_primary_;
};

// ---------------------------------------------------------------- fencing

// An old primary brought back after a promotion (on its old timeline) gets no traffic, and no
// client write commits on it.
class FencingOracle final : public Oracle {
 public:
  using Oracle::Oracle;

  void OnNodeQuery(const NodeQuery& q) override {
    if (!q.fenced) return;
    std::optional<RouteTag> tag = ParseRouteTag(q.sql);
    if (!tag) return;
    const ClientInfo client = ClientOf(*tag);
    Report(&client, Cat("#", tag->seq, " `", q.sql, "` was sent to n", q.node,
                        ", an old primary that must be fenced after the promotion of n",
                        world_.cluster->primary));
  }

  void OnAnswer(const ClientInfo&, const SessionModel&, const Request&, const Answer&) override {
    CheckWal();
  }
  void Finish() override { CheckWal(); }

 private:
  void CheckWal() {
    if (world_.cluster == nullptr) return;
    const ClusterFacts& facts = *world_.cluster;
    for (size_t i = 0; i < facts.nodes.size(); ++i) {
      const PgNode& pg = facts.nodes[i]->pg();
      if (!facts.fenced[i] || !pg.up()) {
        records_.erase(i);
        continue;
      }
      const uint64_t total = pg.store().records_total();
      auto [it, fresh] = records_.emplace(i, total);
      if (fresh || total <= it->second) continue;
      const WalRecord& record = pg.store().wal().back();
      Report(nullptr, Cat(total - it->second, " write(s) committed on n", i,
                          ", an old primary that must be fenced after the promotion of n",
                          facts.primary, " (last: `", JoinStatements(record.statements), "`)"));
      it->second = total;
    }
  }

  std::map<size_t, uint64_t> records_;  // fenced nodes that are up: their WAL when first seen
};

// ---------------------------------------------------------------- failover

// Roles are detected: once the faults are healed, the proxy finds the primary (the runner
// reports it when it does not, under this oracle's name) and a write through it succeeds.
class FailoverOracle final : public Oracle {
 public:
  using Oracle::Oracle;

  void OnAnswer(const ClientInfo& client, const SessionModel&, const Request& request,
                const Answer& answer) override {
    if (client.client < kProbeClientBase || !request.IsWrite()) return;
    if (const ErrorInfo* error = answer.error(); error != nullptr && error->sqlstate != "23505") {
      Report(&client,
             Cat("after healing, the probe's write ", Quote(request), " failed with ",
                 DescribeError(*error),
                 world_.cluster != nullptr ? Cat(" (the primary is n", world_.cluster->primary, ")")
                                           : std::string()));
    }
  }
};

}  // namespace switchyard::sim::cluster_oracles
