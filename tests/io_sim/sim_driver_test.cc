// SimDriver running the real core (Unit, Services) on the simulated network: clients get every
// answer through the proxy under many seeds, cuts and latencies, with 1, 2 or 4 virtual
// workers; a seed replays to the same run hash; faults reach clients as PostgreSQL errors;
// pooled connections are reused, lost and drained as io_real does it.
#include "io_sim/sim_driver.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/proxy.h"
#include "io_sim/decision.h"
#include "io_sim/environment.h"
#include "io_sim/event_queue.h"
#include "io_sim/network.h"
#include "io_sim/prng.h"
#include "io_sim/run_hash.h"
#include "tests/io_sim/fake_peers.h"

namespace switchyard::io_sim {
namespace {

using testing::FakeClient;
using testing::FakeServerNode;

constexpr int64_t kSecondUs = 1'000'000;

ProxyConfig SmallPool() {
  ProxyConfig config;
  config.auth_type = auth::AuthType::kTrust;
  config.pool_size = 2;
  config.max_server_connections = 4;
  return config;
}

NetworkConfig Choppy() {
  NetworkConfig config;
  config.cut_ppm = 500'000;
  config.latency.base_us = 50;
  config.latency.jitter_us = 3'000;
  config.latency.spike_ppm = 20'000;
  config.latency.spike_us_max = 50'000;
  return config;
}

struct SimOptions {
  uint64_t seed = 1;
  int workers = 1;
  sched::DisarmPolicy disarm_policy = sched::DisarmPolicy::kExplicit;
  NetworkConfig network;
  ProxyConfig proxy = SmallPool();
  int clients = 1;
  int queries = 5;
  int64_t client_start_spread_us = 5'000;
  // When set, these feed the network's and the scheduler's choices instead of the seed.
  DecisionSource* network_decisions = nullptr;
  DecisionSource* scheduler_decisions = nullptr;
};

// One simulated world: seeds, network, one node, the real core behind the simulated driver,
// and the clients of a small workload.
class Sim {
 public:
  explicit Sim(const SimOptions& options)
      : seeds_(SimSeeds::FromRoot(options.seed)),
        network_decisions_(seeds_.network),
        scheduler_decisions_(seeds_.scheduler),
        environment_decisions_(seeds_.environment),
        workload_decisions_(seeds_.workload),
        proxy_config_(options.proxy),
        network(options.network, timeline,
                options.network_decisions ? *options.network_decisions : network_decisions_, &hash),
        node(network),
        env_(environment_decisions_),
        services(proxy_config_),
        driver(
            DriverConfig(options), timeline, network, services, env_,
            options.scheduler_decisions ? *options.scheduler_decisions : scheduler_decisions_,
            [this](UnitId id, ConnId client, bool admitted) {
              return std::make_unique<Unit>(id, client, proxy_config_, env_, admitted);
            },
            &hash) {
    network.Listen(NodeId{0}, PeerId{1000}, &node);
    for (int i = 0; i < options.clients; ++i) {
      std::vector<std::string> queries;
      for (int q = 0; q < options.queries; ++q) {
        queries.push_back("SELECT " + std::to_string(i) + ", " + std::to_string(q));
      }
      clients.push_back(std::make_unique<FakeClient>(network, PeerId{static_cast<uint32_t>(i + 1)},
                                                     std::move(queries)));
      StartAt(*clients.back(),
              workload_decisions_.Between(0, options.client_start_spread_us, "workload.start"));
    }
  }

  void StartAt(FakeClient& client, int64_t at_us) {
    timeline.Schedule(Instant{at_us}, [&client] { client.Start(); });
  }

  bool AllClientsClosed() const {
    for (const auto& client : clients) {
      if (!client->closed) return false;
    }
    return true;
  }

  // Until every client has left and every unit retired (or a limit: a hang is a failure).
  SimDriver::Stop RunToEnd(int64_t until_us = 600 * kSecondUs) {
    return driver.RunUntil([this] { return AllClientsClosed() && driver.unit_count() == 0; },
                           Instant{until_us}, 5'000'000);
  }

  std::string Report() const {
    std::string text = seeds_.Describe() + " t=" + std::to_string(timeline.now().us) +
                       " units=" + std::to_string(driver.unit_count()) + "\n";
    for (size_t i = 0; i < clients.size(); ++i) {
      text += "  client " + std::to_string(i) + ": " + clients[i]->Summary() + "\n";
    }
    return text;
  }

  Timeline timeline;
  RunHash hash;

 private:
  static SimDriverConfig DriverConfig(const SimOptions& options) {
    SimDriverConfig config;
    config.workers = options.workers;
    config.disarm_policy = options.disarm_policy;
    config.read_chunk_bytes = 1024;  // small, so big replies take several reads
    return config;
  }

  SimSeeds seeds_;
  PrngDecisions network_decisions_;
  PrngDecisions scheduler_decisions_;
  PrngDecisions environment_decisions_;
  PrngDecisions workload_decisions_;
  ProxyConfig proxy_config_;

 public:
  SimNetwork network;
  FakeServerNode node;

 private:
  SimEnvironment env_;

 public:
  Services services;
  SimDriver driver;
  std::vector<std::unique_ptr<FakeClient>> clients;
};

TEST(SimDriver, OneClientGetsEveryAnswerThroughTheRealUnit) {
  SimOptions options;
  options.queries = 5;
  Sim sim(options);
  ASSERT_EQ(sim.RunToEnd(), SimDriver::Stop::kDone) << sim.Report();
  const FakeClient& client = *sim.clients[0];
  EXPECT_TRUE(client.succeeded()) << sim.Report();
  EXPECT_EQ(client.completes, 5);
  EXPECT_EQ(client.close_why, "eof");  // the proxy closed after Terminate
  // The server saw the five queries, then the reset that makes the connection poolable.
  ASSERT_EQ(sim.node.query_texts.size(), 6u);
  EXPECT_EQ(sim.node.query_texts[0], "SELECT 0, 0");
  EXPECT_EQ(sim.node.query_texts[5], "DISCARD ALL");
  EXPECT_EQ(sim.services.counters().server_connections_opened, 1u);
  EXPECT_EQ(sim.services.counters().queries, 5u);
  EXPECT_EQ(sim.driver.stats().units_retired, 1u);
}

TEST(SimDriver, ManySeedsWithCutsAndLatencyAllSucceed) {
  int interleaved_runs = 0;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    SimOptions options;
    options.seed = seed;
    options.workers = std::vector<int>{1, 2, 4}[seed % 3];
    options.network = Choppy();
    options.clients = 3;
    options.queries = 4;
    Sim sim(options);
    ASSERT_EQ(sim.RunToEnd(), SimDriver::Stop::kDone) << "seed " << seed << "\n" << sim.Report();
    for (const auto& client : sim.clients) {
      ASSERT_TRUE(client->succeeded()) << "seed " << seed << "\n" << sim.Report();
    }
    EXPECT_EQ(sim.services.counters().queries, 12u) << "seed " << seed;
    // Three clients, at most two pooled connections for the key: some queue or reuse.
    EXPECT_LE(sim.node.accepted, 4) << "seed " << seed;
    if (sim.driver.stats().max_concurrent_runs > 1) ++interleaved_runs;
  }
  // With 2 or 4 workers, runs of different units really do overlap.
  EXPECT_GT(interleaved_runs, 50);
}

struct RunSummary {
  uint64_t hash = 0;
  uint64_t events = 0;
  int64_t end_us = 0;
  uint64_t steps = 0;
};

RunSummary RunOnce(uint64_t seed, int workers) {
  SimOptions options;
  options.seed = seed;
  options.workers = workers;
  options.network = Choppy();
  options.network.faults.reset_ppm = 20'000;  // faults too: they must replay as well
  options.clients = 4;
  options.queries = 3;
  Sim sim(options);
  sim.RunToEnd();
  return RunSummary{sim.hash.value(), sim.hash.events(), sim.timeline.now().us,
                    sim.driver.stats().steps};
}

TEST(SimDriver, RunHashReplaysWithItsSeedAndDiffersForAnother) {
  const RunSummary first = RunOnce(7, 2);
  const RunSummary again = RunOnce(7, 2);
  EXPECT_EQ(first.hash, again.hash);
  EXPECT_EQ(first.events, again.events);
  EXPECT_EQ(first.end_us, again.end_us);
  EXPECT_EQ(first.steps, again.steps);
  EXPECT_GT(first.events, 100u);
  // Printed so that two processes (and the sanitized build) can be compared by hand or by CI.
  std::cout << "run_hash seed=7 workers=2 hash=" << first.hash << " events=" << first.events
            << "\n";
  // Other seeds make other runs. (Another worker count need not: K only matters once more
  // than K units are runnable at one instant.)
  std::set<uint64_t> hashes = {first.hash};
  for (uint64_t seed = 8; seed < 18; ++seed) hashes.insert(RunOnce(seed, 2).hash);
  EXPECT_EQ(hashes.size(), 11u);
}

TEST(SimDriver, EveryWorkerCountServesEveryClient) {
  for (int workers : {1, 2, 4}) {
    for (sched::DisarmPolicy policy :
         {sched::DisarmPolicy::kExplicit, sched::DisarmPolicy::kLazy}) {
      uint64_t most_concurrent = 0;
      for (uint64_t seed = 1; seed <= 15; ++seed) {
        SimOptions options;
        options.seed = seed;
        options.workers = workers;
        options.disarm_policy = policy;
        options.network = Choppy();
        options.clients = 6;
        options.queries = 3;
        options.client_start_spread_us = 500;
        Sim sim(options);
        ASSERT_EQ(sim.RunToEnd(), SimDriver::Stop::kDone)
            << "workers " << workers << " seed " << seed << "\n"
            << sim.Report();
        for (const auto& client : sim.clients) {
          ASSERT_TRUE(client->succeeded()) << "workers " << workers << "\n" << sim.Report();
        }
        most_concurrent = std::max(most_concurrent, sim.driver.stats().max_concurrent_runs);
      }
      EXPECT_LE(most_concurrent, static_cast<uint64_t>(workers));
      if (workers > 1) EXPECT_GE(most_concurrent, 2u) << "workers " << workers;
    }
  }
}

TEST(SimDriver, PooledConnectionIsReusedByTheNextClient) {
  SimOptions options;
  options.clients = 0;
  Sim sim(options);
  FakeClient first(sim.network, PeerId{1}, {"SELECT 1"});
  FakeClient second(sim.network, PeerId{2}, {"SELECT 2", "SELECT 3"});
  sim.StartAt(first, 0);
  sim.StartAt(second, kSecondUs);  // long after the first has left
  ASSERT_EQ(sim.driver.RunUntil([&] { return first.closed && second.closed; },
                                Instant{60 * kSecondUs}, 1'000'000),
            SimDriver::Stop::kDone);
  EXPECT_TRUE(first.succeeded()) << first.Summary();
  EXPECT_TRUE(second.succeeded()) << second.Summary();
  EXPECT_EQ(sim.node.accepted, 1);
  EXPECT_EQ(sim.services.counters().server_connections_opened, 1u);
  EXPECT_EQ(sim.services.counters().server_connections_reused, 1u);
}

TEST(SimDriver, IdlePooledConnectionClosedByTheServerIsForgotten) {
  SimOptions options;
  options.clients = 0;
  Sim sim(options);
  FakeClient first(sim.network, PeerId{1}, {"SELECT 1"});
  FakeClient second(sim.network, PeerId{2}, {"SELECT 2"});
  sim.StartAt(first, 0);
  sim.timeline.Schedule(Instant{kSecondUs}, [&] { sim.node.CloseAll(); });
  sim.StartAt(second, 2 * kSecondUs);
  ASSERT_EQ(sim.driver.RunUntil([&] { return second.closed; }, Instant{60 * kSecondUs}, 1'000'000),
            SimDriver::Stop::kDone);
  EXPECT_TRUE(first.succeeded()) << first.Summary();
  EXPECT_TRUE(second.succeeded()) << second.Summary();
  // The stale connection was dropped, not handed to the second client.
  EXPECT_EQ(sim.node.accepted, 2);
  EXPECT_EQ(sim.services.counters().server_connections_reused, 0u);
}

TEST(SimDriver, RefusedServerConnectReachesTheClientAsAnError) {
  SimOptions options;
  Sim sim(options);
  sim.network.SetNodeUp(NodeId{0}, false);
  ASSERT_EQ(sim.RunToEnd(), SimDriver::Stop::kDone) << sim.Report();
  const FakeClient& client = *sim.clients[0];
  EXPECT_FALSE(client.logged_in);
  ASSERT_EQ(client.errors.size(), 1u);
  EXPECT_EQ(client.errors[0].substr(0, 5), "08006");
  EXPECT_NE(client.errors[0].find("connection refused"), std::string::npos);
}

TEST(SimDriver, TimedOutServerConnectEndsAtTheConnectTimeout) {
  SimOptions options;
  options.network.faults.connect_timeout_ppm = kPpm;
  Sim sim(options);
  ASSERT_EQ(sim.RunToEnd(), SimDriver::Stop::kDone) << sim.Report();
  const FakeClient& client = *sim.clients[0];
  ASSERT_EQ(client.errors.size(), 1u) << sim.Report();
  EXPECT_EQ(client.errors[0].substr(0, 5), "08006");
  // Virtual time: the proxy's 5 s connect timer fired, and nothing ran long after it.
  EXPECT_GE(sim.timeline.now().us, MsToUs(5'000));
  EXPECT_LT(sim.timeline.now().us, MsToUs(5'000) + kSecondUs);
}

TEST(SimDriver, ServerCrashMidSessionIsSurvivedByTheClientSession) {
  SimOptions options;
  options.queries = 1000;
  Sim sim(options);
  ASSERT_EQ(sim.driver.RunUntil([&] { return sim.clients[0]->answers >= 10; },
                                Instant{60 * kSecondUs}, 1'000'000),
            SimDriver::Stop::kDone);
  sim.network.ResetPeer(PeerId{1000}, "node crashed");
  ASSERT_EQ(sim.RunToEnd(), SimDriver::Stop::kDone) << sim.Report();
  // DESIGN.md section 5: the lost connection does not end the session. What was in flight is
  // retried (a read whose answer had not started) or answered 08006; every later query runs on
  // a new server connection.
  const FakeClient& client = *sim.clients[0];
  EXPECT_TRUE(client.done) << sim.Report();
  EXPECT_EQ(client.answers, 1000) << sim.Report();
  for (const std::string& error : client.errors) EXPECT_EQ(error.substr(0, 5), "08006") << error;
  EXPECT_LE(client.errors.size(), 1u);
  EXPECT_EQ(sim.services.counters().server_losses, 1u);
  EXPECT_EQ(sim.node.accepted, 2) << "a second server connection took over";
}

TEST(SimDriver, ResetsAtAnyByteNeverWedgeTheProxy) {
  // Connections break at random bytes; a client may fail, but every client hears an answer or
  // a close, and every unit is gone at the end.
  int failed_clients = 0;
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    SimOptions options;
    options.seed = seed;
    options.workers = 1 + static_cast<int>(seed % 3);
    options.network = Choppy();
    options.network.faults.reset_ppm = 30'000;
    options.network.faults.connect_refused_ppm = 50'000;
    options.clients = 3;
    options.queries = 4;
    Sim sim(options);
    ASSERT_EQ(sim.RunToEnd(), SimDriver::Stop::kDone) << "seed " << seed << "\n" << sim.Report();
    for (const auto& client : sim.clients) failed_clients += client->succeeded() ? 0 : 1;
  }
  EXPECT_GT(failed_clients, 0);  // the faults did happen
}

TEST(SimDriver, SlowClientHoldsTheServerBackAndCatchesUp) {
  SimOptions options;
  options.proxy.client_output_high_bytes = 16 << 10;
  options.proxy.client_output_low_bytes = 4 << 10;
  options.network.window_bytes = 8 << 10;
  options.clients = 0;
  Sim sim(options);
  FakeClient client(sim.network, PeerId{1}, {"BIG 300"});
  sim.StartAt(client, 0);
  ASSERT_EQ(sim.driver.RunUntil([&] { return client.logged_in; }, Instant{kSecondUs}, 100'000),
            SimDriver::Stop::kDone);
  client.Pause();
  const size_t login_bytes = client.bytes_read;
  // While it does not read, the proxy stops reading the server (PauseRead) and the simulation
  // settles instead of buffering 300 KiB or spinning.
  const SimDriver::Stop paused = sim.driver.RunUntil({}, Instant{10 * kSecondUs}, 100'000);
  EXPECT_NE(paused, SimDriver::Stop::kStepLimit);
  EXPECT_EQ(client.bytes_read, login_bytes);
  // The server's rows wait in the network: the proxy is not reading its connection.
  ASSERT_EQ(sim.node.links.size(), 1u);
  const std::optional<ConnId> server = sim.network.ConnOf(sim.node.links[0]);
  ASSERT_TRUE(server.has_value());
  EXPECT_TRUE(sim.network.Readable(*server));
  const uint64_t handles = sim.driver.stats().handles;
  sim.driver.RunUntil({}, Instant{20 * kSecondUs}, 100'000);
  EXPECT_EQ(sim.driver.stats().handles, handles);
  client.Resume();
  ASSERT_EQ(sim.RunToEnd(), SimDriver::Stop::kDone) << client.Summary();
  EXPECT_TRUE(client.succeeded()) << client.Summary();
  EXPECT_EQ(client.rows, 300);
}

TEST(SimDriver, ShutdownDrainsIdleClientsAndStopsAccepting) {
  SimOptions options;
  options.clients = 2;
  options.queries = 1;
  Sim sim(options);
  for (auto& client : sim.clients) client->terminate_when_done = false;
  ASSERT_EQ(sim.driver.RunUntil([&] { return sim.clients[0]->done && sim.clients[1]->done; },
                                Instant{10 * kSecondUs}, 1'000'000),
            SimDriver::Stop::kDone);
  sim.driver.Shutdown();
  FakeClient late(sim.network, PeerId{9}, {"SELECT 1"});
  late.Start();
  ASSERT_EQ(sim.RunToEnd(), SimDriver::Stop::kDone) << sim.Report();
  for (const auto& client : sim.clients) {
    ASSERT_EQ(client->errors.size(), 1u) << client->Summary();
    EXPECT_EQ(client->errors[0].substr(0, 5), "57P01");
  }
  sim.driver.RunUntil({}, Instant{20 * kSecondUs}, 100'000);
  EXPECT_TRUE(late.closed);
  EXPECT_EQ(late.close_why, "connection refused");
}

// RapidCheck chooses every delivery, cut, latency and interleaving (so that a failure would
// shrink to the simplest schedule): two clients on two workers still get every answer.
RC_GTEST_PROP(SimDriverProperty, AnyScheduleServesEveryClient,
              (std::vector<uint64_t> network_choices, std::vector<uint64_t> scheduler_choices)) {
  ScriptedDecisions network_source(std::move(network_choices), /*fallback=*/999'999);
  ScriptedDecisions scheduler_source(std::move(scheduler_choices), /*fallback=*/0);
  SimOptions options;
  options.workers = 2;
  options.network = Choppy();
  options.clients = 2;
  options.queries = 2;
  options.network_decisions = &network_source;
  options.scheduler_decisions = &scheduler_source;
  Sim sim(options);
  RC_ASSERT(sim.RunToEnd() == SimDriver::Stop::kDone);
  for (const auto& client : sim.clients) RC_ASSERT(client->succeeded());
}

TEST(SimDriver, TracingPrintsTheTimelineAndChangesNothing) {
  auto run = [](bool trace) {
    SimOptions options;
    options.seed = 3;
    options.workers = 2;
    options.network = Choppy();
    options.clients = 2;
    options.queries = 2;
    Sim sim(options);
    std::vector<std::string> lines;
    if (trace) {
      auto sink = [&lines](std::string_view line) { lines.emplace_back(line); };
      sim.network.set_trace(sink);
      sim.driver.set_trace(sink);
    }
    EXPECT_EQ(sim.RunToEnd(), SimDriver::Stop::kDone);
    return std::make_pair(sim.hash.value(), lines);
  };
  const auto [plain_hash, no_lines] = run(false);
  const auto [traced_hash, lines] = run(true);
  EXPECT_TRUE(no_lines.empty());
  // Tracing draws nothing and decides nothing: the seed makes the same run.
  EXPECT_EQ(traced_hash, plain_hash);
  auto contains = [&lines = lines](std::string_view text) {
    return std::any_of(lines.begin(), lines.end(), [&](const std::string& line) {
      return line.find(text) != std::string::npos;
    });
  };
  EXPECT_TRUE(contains("net.accept link="));
  EXPECT_TRUE(contains("client_accepted unit=1"));
  EXPECT_TRUE(contains("handle unit=1 event=Accepted"));
  EXPECT_TRUE(contains("run.end unit=2"));
  EXPECT_TRUE(contains("net.deliver link="));
  EXPECT_EQ(lines.front().rfind("t=", 0), 0u);  // every line starts with the virtual time
}

TEST(SimDriver, ConfigDescribesItself) {
  SimDriverConfig config;
  config.workers = 4;
  EXPECT_NE(config.Describe().find("workers=4"), std::string::npos);
  EXPECT_EQ(StopName(SimDriver::Stop::kQuiescent), "quiescent");
}

}  // namespace
}  // namespace switchyard::io_sim
