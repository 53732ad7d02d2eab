// SimNetwork: bytes arrive intact and in order however writes are cut and delayed; a reset at
// byte k delivers exactly k bytes; a black hole hangs; refused and timed-out connects; the
// window pushes back; a run's hash replays with its seed.
#include "io_sim/network.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "io_sim/decision.h"
#include "io_sim/event_queue.h"
#include "io_sim/run_hash.h"

namespace switchyard::io_sim {
namespace {

constexpr NodeId kNode{0};
constexpr PeerId kNodePeer{100};
constexpr ConnId kConn{1, 1};

// Stands in for the driver: names accepted connections and remembers change notices.
class FakeProxy : public ProxyEndpoint {
 public:
  ConnId OnAccept(LinkId link, PeerId client) override {
    accepted.emplace_back(link, client);
    return ConnId{next_index_++, 1};
  }
  void OnChanged(ConnId conn) override { ++changes[conn]; }

  std::vector<std::pair<LinkId, PeerId>> accepted;
  std::map<ConnId, int> changes;

 private:
  uint32_t next_index_ = 500;
};

// Reads everything it is offered (in small reads, to exercise partial reads) and records it.
class RecordingPeer : public Peer {
 public:
  explicit RecordingPeer(SimNetwork& network) : network_(network) {}
  void OnAccepted(LinkId link) override { accepted.push_back(link); }
  void OnConnected(LinkId link) override { connected.push_back(link); }
  void OnReadable(LinkId link) override {
    ++notices;
    if (!reading) return;
    for (;;) {
      ReadResult read = network_.PeerRead(link, 7);
      if (read.kind == ReadResult::Kind::kData) {
        received[link] += read.bytes;
        continue;
      }
      if (read.kind == ReadResult::Kind::kEof) eof.insert(link);
      if (read.kind == ReadResult::Kind::kReset) resets[link] = read.why;
      return;
    }
  }
  void OnWritable(LinkId link) override { writable.push_back(link); }

  bool reading = true;
  int notices = 0;
  std::vector<LinkId> accepted;
  std::vector<LinkId> connected;
  std::vector<LinkId> writable;
  std::map<LinkId, std::string> received;
  std::set<LinkId> eof;
  std::map<LinkId, std::string> resets;

 private:
  SimNetwork& network_;
};

// One network with a node listening and a fake proxy attached.
struct World {
  explicit World(NetworkConfig config, DecisionSource& decisions)
      : network(config, timeline, decisions, &hash), node(network) {
    network.Attach(&proxy);
    network.Listen(kNode, kNodePeer, &node);
  }
  void RunAll() {
    while (auto entry = timeline.PopNext()) entry->payload();
  }
  // Connects kConn to the node and runs until the proxy side is connected.
  LinkId Open() {
    network.Connect(kConn, kNode);
    RunAll();
    EXPECT_EQ(network.ConnectStatus(kConn), SimNetwork::ConnectState::kConnected);
    EXPECT_EQ(node.accepted.size(), 1u);
    return node.accepted.at(0);
  }
  // Everything the proxy side can read now, and how the stream ended (if it did).
  std::string ProxyReadAll(ReadResult::Kind* end = nullptr) {
    std::string all;
    for (;;) {
      ReadResult read = network.Read(kConn, 5);
      if (read.kind != ReadResult::Kind::kData) {
        if (end != nullptr) *end = read.kind;
        return all;
      }
      all += read.bytes;
    }
  }

  Timeline timeline;
  RunHash hash;
  FakeProxy proxy;
  SimNetwork network;
  RecordingPeer node;
};

std::string Pattern(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 31 % 251);
  return s;
}

NetworkConfig Choppy() {
  NetworkConfig config;
  config.cut_ppm = 700'000;
  config.latency.base_us = 50;
  config.latency.jitter_us = 2'000;
  config.latency.spike_ppm = 50'000;
  config.latency.spike_us_max = 20'000;
  return config;
}

TEST(SimNetwork, DeliversBytesInOrderWithRandomCutsUnderManySeeds) {
  int cut_runs = 0;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    PrngDecisions decisions(seed);
    World world(Choppy(), decisions);
    const LinkId link = world.Open();
    std::string sent_down;
    std::string sent_up;
    for (int i = 0; i < 5; ++i) {
      const std::string down = Pattern(40 + i * 13, static_cast<char>('a' + i));
      ASSERT_EQ(world.network.Write(kConn, down).accepted, down.size());
      sent_down += down;
      const std::string up = Pattern(25 + i * 7, static_cast<char>('A' + i));
      ASSERT_EQ(world.network.PeerWrite(link, up).accepted, up.size());
      sent_up += up;
    }
    const int notices_before = world.node.notices;
    world.RunAll();
    EXPECT_EQ(world.node.received[link], sent_down) << "seed " << seed;
    EXPECT_EQ(world.ProxyReadAll(), sent_up) << "seed " << seed;
    // More arrivals than writes means some write was cut into pieces.
    if (world.node.notices - notices_before > 5) ++cut_runs;
    EXPECT_GT(world.timeline.now().us, 0);
  }
  EXPECT_GT(cut_runs, 150);
}

TEST(SimNetwork, PeerCloseArrivesAfterItsBytes) {
  PrngDecisions decisions(9);
  World world(Choppy(), decisions);
  const LinkId link = world.Open();
  world.network.PeerSend(link, "last words");
  world.network.PeerClose(link);
  world.RunAll();
  ReadResult::Kind end = ReadResult::Kind::kData;
  EXPECT_EQ(world.ProxyReadAll(&end), "last words");
  EXPECT_EQ(end, ReadResult::Kind::kEof);
  EXPECT_TRUE(world.network.Readable(kConn));
  EXPECT_FALSE(world.network.HungUp(kConn));
  world.network.Close(kConn);
  world.RunAll();
  EXPECT_EQ(world.network.link_count(), 0u);
}

TEST(SimNetwork, ProxyCloseDeliversWhatWasWrittenThenEof) {
  PrngDecisions decisions(10);
  World world(Choppy(), decisions);
  const LinkId link = world.Open();
  world.network.Write(kConn, "goodbye");
  world.network.Close(kConn);
  EXPECT_FALSE(world.network.HasConn(kConn));
  world.RunAll();
  EXPECT_EQ(world.node.received[link], "goodbye");
  EXPECT_TRUE(world.node.eof.contains(link));
}

TEST(SimNetwork, ResetAtByteKTruncatesExactlyThere) {
  const std::string message = Pattern(50, 'x');
  for (size_t k : {size_t{0}, size_t{1}, size_t{17}, size_t{49}, size_t{50}}) {
    NetworkConfig config;
    config.faults.reset_ppm = kPpm;  // certain: the one decision is where
    ScriptedDecisions decisions({k});
    World world(config, decisions);
    const LinkId link = world.Open();
    ASSERT_EQ(world.network.Write(kConn, message).accepted, message.size());
    world.RunAll();
    EXPECT_EQ(world.node.received[link], message.substr(0, k)) << "k=" << k;
    EXPECT_EQ(world.node.resets[link], "connection reset by peer") << "k=" << k;
    // The proxy's side broke too: it reads a reset, and writes fail.
    ReadResult::Kind end = ReadResult::Kind::kData;
    EXPECT_EQ(world.ProxyReadAll(&end), "");
    EXPECT_EQ(end, ReadResult::Kind::kReset);
    EXPECT_TRUE(world.network.HungUp(kConn));
    EXPECT_TRUE(world.network.Write(kConn, "more").broken);
    EXPECT_GT(world.proxy.changes[kConn], 1);  // connected, then the reset
  }
}

TEST(SimNetwork, ResetFromThePeerSideTruncatesTowardTheProxy) {
  NetworkConfig config;
  config.faults.reset_ppm = kPpm;
  ScriptedDecisions decisions({3});
  World world(config, decisions);
  const LinkId link = world.Open();
  world.network.PeerSend(link, "abcdefgh");
  world.RunAll();
  ReadResult::Kind end = ReadResult::Kind::kData;
  EXPECT_EQ(world.ProxyReadAll(&end), "abc");
  EXPECT_EQ(end, ReadResult::Kind::kReset);
  EXPECT_EQ(world.node.resets[link], "connection reset by peer");
}

TEST(SimNetwork, BlackHoleSwallowsBytesAndNeverCloses) {
  NetworkConfig config;
  config.window_bytes = 100;
  config.faults.black_hole_ppm = kPpm;
  ScriptedDecisions decisions({4});
  World world(config, decisions);
  const LinkId link = world.Open();
  EXPECT_EQ(world.network.Write(kConn, Pattern(60, 'q')).accepted, 60u);
  world.network.PeerSend(link, "reply that never arrives");
  world.RunAll();
  EXPECT_EQ(world.node.received[link], Pattern(60, 'q').substr(0, 4));
  // The window fills with bytes that go nowhere: the writer blocks, as on a dead path. (The
  // four delivered bytes were read, so they left the window.)
  EXPECT_EQ(world.network.Write(kConn, Pattern(60, 'r')).accepted, 44u);
  EXPECT_EQ(world.network.Write(kConn, "x").accepted, 0u);
  EXPECT_FALSE(world.network.Writable(kConn));
  world.network.PeerClose(link);
  world.RunAll();
  EXPECT_TRUE(world.timeline.empty());
  EXPECT_FALSE(world.network.Readable(kConn));
  EXPECT_FALSE(world.network.HungUp(kConn));
  EXPECT_TRUE(world.node.resets.empty());
  EXPECT_TRUE(world.node.eof.empty());
}

TEST(SimNetwork, BlackHoleCanResetLikeATcpTimeout) {
  NetworkConfig config;
  config.faults.black_hole_ppm = kPpm;
  config.faults.black_hole_reset_after_us = 30'000'000;
  ScriptedDecisions decisions({0});
  World world(config, decisions);
  const LinkId link = world.Open();
  const int64_t start = world.timeline.now().us;
  world.network.Write(kConn, "lost");
  world.RunAll();
  EXPECT_EQ(world.node.received[link], "");
  EXPECT_EQ(world.node.resets[link], "connection timed out");
  EXPECT_TRUE(world.network.HungUp(kConn));
  EXPECT_GE(world.timeline.now().us - start, 30'000'000);
}

TEST(SimNetwork, ConnectToAMissingOrDownNodeIsRefused) {
  PrngDecisions decisions(1);
  World world(NetworkConfig{}, decisions);
  world.network.Connect(kConn, NodeId{7});  // nobody listens there
  world.RunAll();
  std::string why;
  EXPECT_EQ(world.network.ConnectStatus(kConn, &why), SimNetwork::ConnectState::kFailed);
  EXPECT_EQ(why, "connection refused");
  EXPECT_TRUE(world.network.Readable(kConn));
  EXPECT_TRUE(world.network.Writable(kConn));  // epoll reports the error either way
  EXPECT_TRUE(world.network.HungUp(kConn));
  EXPECT_EQ(world.proxy.changes[kConn], 1);

  world.network.SetNodeUp(kNode, false);
  const ConnId other{2, 1};
  world.network.Connect(other, kNode);
  world.RunAll();
  EXPECT_EQ(world.network.ConnectStatus(other), SimNetwork::ConnectState::kFailed);
  EXPECT_TRUE(world.node.accepted.empty());
}

TEST(SimNetwork, RefusedConnectFault) {
  NetworkConfig config;
  config.faults.connect_refused_ppm = kPpm;
  PrngDecisions decisions(1);
  World world(config, decisions);
  world.network.Connect(kConn, kNode);
  world.RunAll();
  EXPECT_EQ(world.network.ConnectStatus(kConn), SimNetwork::ConnectState::kFailed);
  EXPECT_TRUE(world.node.accepted.empty());
}

TEST(SimNetwork, TimedOutConnectNeverAnswers) {
  NetworkConfig config;
  config.faults.connect_timeout_ppm = kPpm;
  PrngDecisions decisions(1);
  World world(config, decisions);
  world.network.Connect(kConn, kNode);
  world.RunAll();
  EXPECT_TRUE(world.timeline.empty());  // nothing will ever happen
  EXPECT_EQ(world.network.ConnectStatus(kConn), SimNetwork::ConnectState::kPending);
  EXPECT_FALSE(world.network.Writable(kConn));
  EXPECT_FALSE(world.network.Readable(kConn));
  EXPECT_TRUE(world.node.accepted.empty());
  EXPECT_EQ(world.proxy.changes[kConn], 0);
  // The proxy's own timer gives up; closing releases everything.
  world.network.Close(kConn);
  world.RunAll();
  EXPECT_EQ(world.network.link_count(), 0u);
}

TEST(SimNetwork, WindowPushesBackUntilTheReaderReads) {
  NetworkConfig config;
  config.window_bytes = 64;
  PrngDecisions decisions(4);
  World world(config, decisions);
  const LinkId link = world.Open();
  world.node.reading = false;  // a slow peer
  EXPECT_EQ(world.network.Write(kConn, Pattern(100, 'w')).accepted, 64u);
  world.RunAll();
  EXPECT_FALSE(world.network.Writable(kConn));
  const int changes = world.proxy.changes[kConn];
  ReadResult read = world.network.PeerRead(link, 10);
  EXPECT_EQ(read.bytes, Pattern(100, 'w').substr(0, 10));
  EXPECT_TRUE(world.network.Writable(kConn));
  EXPECT_EQ(world.proxy.changes[kConn], changes + 1);  // told once that the window opened
  EXPECT_EQ(world.network.Write(kConn, Pattern(100, 'w').substr(64)).accepted, 10u);
}

TEST(SimNetwork, PeerSendQueuesBeyondTheWindow) {
  NetworkConfig config;
  config.window_bytes = 16;
  PrngDecisions decisions(4);
  World world(config, decisions);
  const LinkId link = world.Open();
  const std::string big = Pattern(100, 'p');
  world.network.PeerSend(link, big);
  world.network.PeerClose(link);
  std::string got;
  ReadResult::Kind end = ReadResult::Kind::kData;
  for (int round = 0; round < 100 && end != ReadResult::Kind::kEof; ++round) {
    world.RunAll();
    got += world.ProxyReadAll(&end);
  }
  EXPECT_EQ(got, big);
  EXPECT_EQ(end, ReadResult::Kind::kEof);
}

TEST(SimNetwork, ClientsConnectToTheProxyUnlessItStoppedAccepting) {
  PrngDecisions decisions(2);
  World world(NetworkConfig{}, decisions);
  RecordingPeer client(world.network);
  const LinkId link = world.network.ConnectToProxy(PeerId{1}, &client);
  world.RunAll();
  ASSERT_EQ(world.proxy.accepted.size(), 1u);
  EXPECT_EQ(world.proxy.accepted[0].first, link);
  EXPECT_EQ(client.connected, std::vector<LinkId>{link});
  const ConnId conn{500, 1};
  EXPECT_EQ(world.network.LinkOf(conn), link);
  world.network.PeerSend(link, "hello proxy");
  world.RunAll();
  EXPECT_EQ(world.network.Read(conn, 100).bytes, "hello proxy");

  world.network.SetAccepting(false);
  const LinkId refused = world.network.ConnectToProxy(PeerId{2}, &client);
  world.RunAll();
  EXPECT_EQ(world.proxy.accepted.size(), 1u);
  EXPECT_EQ(client.resets[refused], "connection refused");
}

TEST(SimNetwork, ResetPeerBreaksEveryConnectionOfANode) {
  PrngDecisions decisions(6);
  World world(NetworkConfig{}, decisions);
  world.Open();
  const ConnId second{2, 1};
  world.network.Connect(second, kNode);
  world.RunAll();
  world.network.ResetPeer(kNodePeer, "node crashed");
  world.RunAll();
  for (ConnId conn : {kConn, second}) {
    ReadResult read = world.network.Read(conn, 10);
    EXPECT_EQ(read.kind, ReadResult::Kind::kReset);
    EXPECT_EQ(read.why, "node crashed");
  }
}

uint64_t RunHashOf(uint64_t seed) {
  PrngDecisions decisions(seed);
  World world(Choppy(), decisions);
  const LinkId link = world.Open();
  for (int i = 0; i < 10; ++i) {
    world.network.Write(kConn, Pattern(30 + i, 'h'));
    world.network.PeerSend(link, Pattern(20 + i, 'k'));
  }
  world.RunAll();
  world.ProxyReadAll();
  return world.hash.value();
}

TEST(SimNetwork, RunHashReplaysWithItsSeed) {
  EXPECT_EQ(RunHashOf(31), RunHashOf(31));
  EXPECT_NE(RunHashOf(31), RunHashOf(32));
}

TEST(SimNetwork, DescribePrintsEveryOption) {
  NetworkConfig config = Choppy();
  config.faults.reset_ppm = 123;
  const std::string text = config.Describe();
  EXPECT_NE(text.find("cut_ppm=700000"), std::string::npos);
  EXPECT_NE(text.find("reset_ppm=123"), std::string::npos);
  EXPECT_NE(text.find("latency_jitter_us=2000"), std::string::npos);
}

// Whatever the decisions (RapidCheck generates them, so a failure shrinks to the fewest),
// each direction delivers exactly what was written, in order, or a prefix of it followed by a
// reset when a reset was decided.
RC_GTEST_PROP(SimNetworkProperty, AnyDecisionsKeepStreamsInOrder,
              (std::vector<uint64_t> choices, std::vector<std::string> writes)) {
  NetworkConfig config = Choppy();
  config.faults.reset_ppm = 20'000;
  ScriptedDecisions decisions(std::move(choices), /*fallback=*/999'999);
  World world(config, decisions);
  const LinkId link = world.Open();
  std::string sent;
  for (const std::string& write : writes) {
    if (world.network.HungUp(kConn)) break;
    WriteResult result = world.network.Write(kConn, write);
    if (result.broken) break;
    sent += write.substr(0, result.accepted);
    if (auto entry = world.timeline.PopNext()) entry->payload();  // interleave some delivery
  }
  world.RunAll();
  const std::string& got = world.node.received[link];
  RC_ASSERT(sent.compare(0, got.size(), got) == 0);  // a prefix, in order
  if (!world.node.resets.contains(link)) RC_ASSERT(got == sent);
}

}  // namespace
}  // namespace switchyard::io_sim
