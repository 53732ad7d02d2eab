// The shrinking property's world: built like sim/runner.cc's, with every choice planned.
#include "tests/sim_shrink/scenario.h"

#include <utility>

#include "core/base/check.h"
#include "core/base/strings.h"
#include "sim/swarm.h"

namespace switchyard::sim {
namespace {

constexpr NodeId kPrimary{0};
constexpr io_sim::PeerId kPrimaryPeer{1'000'000'000};
// Seeds of what a command never chooses: the node's secrets, the core's cancel secrets.
constexpr uint64_t kNodeSeed = 7;
constexpr uint64_t kEnvironmentSeed = 11;

// What keepalive or TCP's retransmission timeout does to a black-holed connection, this long
// after it began; and the longest planned delay of a piece on the wire. Together, how long a
// close can take to reach the other end.
constexpr int64_t kBlackHoleResetUs = 100'000;
constexpr int64_t kDelayMaxUs = 100'000;

// Every fault kind is on at the lowest rate, so the network asks the decision source about each
// write, piece and connect; with nothing planned the answer is no.
io_sim::NetworkConfig PlannedNetwork() {
  io_sim::NetworkConfig network;
  network.latency = io_sim::LatencyConfig{
      .base_us = 100, .jitter_us = 0, .spike_ppm = 1, .spike_us_max = kDelayMaxUs};
  network.cut_ppm = 1;
  network.faults = io_sim::FaultConfig{.reset_ppm = 1,
                                       .black_hole_ppm = 1,
                                       .black_hole_reset_after_us = kBlackHoleResetUs,
                                       .connect_refused_ppm = 1,
                                       .connect_timeout_ppm = 1};
  return network;
}

ProxyConfig ScenarioProxy(const ScenarioOptions& options) {
  // The simulator's shared proxy settings (trust, timeouts the liveness phase outlasts).
  ProxyConfig proxy = DeriveRunOptions(0, /*swarm=*/false).proxy;
  proxy.pool_size = options.pool_size;
  proxy.max_server_connections = options.pool_size + 2;
  proxy.mutants = options.mutants;
  return proxy;
}

NodeOptions PrimaryOptions(const ProxyConfig& proxy) {
  NodeOptions node;
  node.name = "primary";
  node.role = NodeRole::kPrimary;
  node.auth = NodeAuth::kTrust;
  node.seed = kNodeSeed;
  // Room for every pooled connection plus the cancel connections next to them.
  node.limits.max_connections = static_cast<size_t>(proxy.max_server_connections) + 10;
  return node;
}

}  // namespace

// Forwards observations to the oracles, letting a test break answers on the way.
class Scenario::TamperingObserver final : public ForwardingObserver {
 public:
  TamperingObserver(ClientObserver& next, const Scenario& scenario)
      : ForwardingObserver(next), scenario_(scenario) {}
  void OnAnswer(const ClientInfo& c, const SessionModel& s, const Request& r,
                const Answer& a) override {
    const auto& tamper = scenario_.options_.tamper_answer_for_test;
    if (!tamper) return next_.OnAnswer(c, s, r, a);
    Answer copy = a;
    tamper(scenario_, c, r, copy);
    next_.OnAnswer(c, s, r, copy);
  }

 private:
  const Scenario& scenario_;
};

Scenario::Scenario(ScenarioOptions options)
    : options_(std::move(options)),
      proxy_(ScenarioProxy(options_)),
      environment_decisions_(kEnvironmentSeed),
      network_(PlannedNetwork(), timeline_, decisions_, &hash_),
      pg_(PrimaryOptions(proxy_)),
      node_(pg_, network_, timeline_, kPrimary, kPrimaryPeer),
      env_(environment_decisions_),
      services_(proxy_),
      world_{&timeline_, &pg_.store(),     &node_,
             &history_,  proxy_.pool_size, proxy_.max_server_connections} {
  CHECK(options_.clients >= 1 && options_.pool_size >= 1 && options_.application_names >= 1);
  io_sim::SimDriverConfig driver;
  driver.workers = options_.workers;
  driver_ = std::make_unique<io_sim::SimDriver>(
      driver, timeline_, network_, services_, env_, decisions_,
      [this](UnitId id, ConnId client, bool admitted) {
        return std::make_unique<Unit>(id, client, proxy_, env_, admitted);
      },
      &hash_);
  // Clients never stop reading, so the memory oracle has nothing to measure.
  world_.proxy_buffer_bytes_max = UINT64_MAX;
  AddStandardOracles(oracles_, world_, violations_);
  tampering_ = std::make_unique<TamperingObserver>(oracles_, *this);
  const auto wal_position = [this] { return pg_.store().records_total(); };
  for (int i = 0; i < options_.clients; ++i) {
    clients_.push_back(std::make_unique<ScriptedClient>(
        static_cast<uint32_t>(i), options_.keys, Cat("app", i % options_.application_names),
        network_, timeline_, *tampering_, wal_position));
  }
  WorkloadOptions probe_options;
  probe_options.clients = 0;
  probe_options.application_names = 1;  // app0, client 0's pool key
  probes_ = std::make_unique<Workload>(probe_options, /*seed=*/0, network_, timeline_, *tampering_,
                                       wal_position, &hash_);
}

// Clients and probes go first: their sessions refer to the network and the observers.
Scenario::~Scenario() {
  probes_.reset();
  clients_.clear();
  driver_.reset();
}

ScriptedClient& Scenario::Client(int index) {
  CHECK(index >= 0 && index < static_cast<int>(clients_.size())) << "no client " << index;
  return *clients_[static_cast<size_t>(index)];
}

bool Scenario::ClientsDone() const {
  for (const auto& client : clients_) {
    if (!client->Done()) return false;
  }
  return true;
}

uint64_t Scenario::answers() const {
  uint64_t total = 0;
  for (const auto& client : clients_) total += client->answers();
  return total;
}

std::string Scenario::Stats() const {
  uint64_t dropped = 0;
  uint64_t skipped = 0;
  for (const auto& client : clients_) {
    dropped += client->dropped();
    skipped += client->skipped();
  }
  return Cat(" answers=", answers(), " dropped=", dropped, " skipped=", skipped,
             " decisions=", decisions_.decisions(), " planned_used=", decisions_.planned_used());
}

bool Scenario::Advance(int64_t us) {
  CHECK(us >= 0);
  const io_sim::SimDriver::Stop stop =
      driver_->RunUntil(nullptr, timeline_.now() + us, kStepsPerRunMax);
  return stop != io_sim::SimDriver::Stop::kStepLimit;
}

void Scenario::CrashNode(int64_t down_us, bool shutdown) {
  CHECK(down_us >= 0);
  if (!pg_.up()) return;
  shutdown ? node_.Shutdown() : node_.Crash();
  timeline_.ScheduleAfter(down_us, [this] { RestartNode(); });
}

void Scenario::PauseNode(int64_t us) {
  CHECK(us >= 0);
  const Instant until = timeline_.now() + us;
  if (until <= paused_until_) return;
  paused_until_ = until;
  if (!pg_.paused()) node_.Pause(true);
  timeline_.Schedule(until, [this] {
    if (timeline_.now() >= paused_until_ && pg_.paused()) node_.Pause(false);
  });
}

void Scenario::RestartNode() {
  if (pg_.up()) return;
  node_.Restart();
  ++node_restarts_;
}

void Scenario::Finish() {
  // Faults stop: no plan is left to strike, the network has no fault rates, the node is up.
  decisions_.Clear();
  network_.set_faults(io_sim::FaultConfig{});
  if (pg_.paused()) node_.Pause(false);
  RestartNode();
  node_.SetSlowness(0);

  for (auto& client : clients_) client->WindDown();
  const io_sim::SimDriver::Stop liveness =
      driver_->RunUntil([&] { return ClientsDone() && driver_->unit_count() == 0; },
                        timeline_.now() + kLivenessBoundUs, kStepsPerRunMax);
  if (liveness != io_sim::SimDriver::Stop::kDone) {
    for (auto& client : clients_) client->ReportIfOpen();
  }
  // A close the proxy sent down a black-holed connection reaches the node only when that
  // connection resets: until then the node still counts a session the proxy let go of.
  driver_->RunUntil(nullptr, timeline_.now() + kBlackHoleResetUs + kDelayMaxUs, kStepsPerRunMax);
  oracles_.OnQuiescent(Quiescence{driver_->unit_count(), services_.counters().clients_active});

  // As many probes as the pool holds must all get in at once.
  probes_->StartProbes(options_.pool_size);
  const io_sim::SimDriver::Stop probes =
      driver_->RunUntil([&] { return probes_->ProbesDone() && driver_->unit_count() == 0; },
                        timeline_.now() + kLivenessBoundUs, kStepsPerRunMax);
  if (probes != io_sim::SimDriver::Stop::kDone) probes_->ReportOpenSessions();
  oracles_.Finish();
  pg_.CheckInvariants();
  phases_ = Cat("liveness=", io_sim::StopName(liveness), " probes=", io_sim::StopName(probes));
}

std::string Scenario::Report() const {
  std::string text = Cat(violations_.count(), " violation(s) at t=", timeline_.now().us, "us",
                         phases_.empty() ? "" : Cat(" (", phases_, ")"), Stats(),
                         " run hash=", hash_.value(), "\n");
  for (const Violation& v : violations_.list()) {
    text += Cat("  ", v.oracle, " t=", v.at.us, "us ", v.client.empty() ? "" : Cat(v.client, ": "),
                v.what, "\n");
  }
  for (const auto& client : clients_) {
    if (!client->Done()) text += Cat("  open: ", client->Describe(), "\n");
  }
  return text;
}

}  // namespace switchyard::sim
