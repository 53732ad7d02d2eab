// Lingering close on real loopback sockets: a Close delivers everything already sent to a client
// that reads slowly, ends in a FIN rather than a reset, and a client that never reads is cut
// off at the deadline, at the set's bound, and at shutdown.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "io_real/driver.h"
#include "io_real/environment.h"

namespace switchyard::io_real {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// Far above any socket buffer on either side (tcp_wmem's default maximum is 4 MiB), so most of
// it is still in the driver when the Close is applied.
const std::string& BigReply() {
  static const std::string* reply = [] {
    auto* bytes = new std::string(16 << 20, '\0');
    for (size_t i = 0; i < bytes->size(); ++i) (*bytes)[i] = static_cast<char>('a' + i % 23);
    return bytes;
  }();
  return *reply;
}

// Admits everyone; these units never ask for a service.
class NoServices final : public ServicesLike {
 public:
  Services::Outcome Handle(Instant, UnitId, ServiceRequest) override { return {}; }
  Services::Outcome Tick(Instant) override { return {}; }
  std::optional<Instant> NextDeadline() const override { return std::nullopt; }
  Services::Outcome IdleConnectionLost(Instant, ConnId) override { return {}; }
  bool AdmitClient() override { return true; }
  void ClientGone(UnitId) override {}
};

// "big\n": answers BigReply() and closes at once. "quit\n": answers "ok\n", stops reading (so
// what the client sends next stays unread), and 100 ms later says "goodbye\n" and closes.
class ReplyThenCloseUnit final : public UnitLike {
 public:
  void Handle(Instant now, const Event& event) override {
    if (auto* accepted = std::get_if<Accepted>(&event)) {
      client_ = accepted->conn;
      open_ = true;
    } else if (auto* received = std::get_if<Received>(&event)) {
      if (received->bytes == "big\n") {
        outbox_.push_back(Send{client_, BigReply()});
        CloseClient("reply sent");
      } else if (received->bytes == "quit\n") {
        outbox_.push_back(Send{client_, "ok\n"});
        reading_ = false;
        deadline_ = now + 100'000;
      }
    } else if (std::holds_alternative<TimerFired>(event)) {
      deadline_.reset();
      outbox_.push_back(Send{client_, "goodbye\n"});
      CloseClient("goodbye");
    } else if (std::holds_alternative<Closed>(event)) {
      open_ = false;
    }
  }
  std::optional<Action> PollAction() override {
    if (outbox_.empty()) return std::nullopt;
    Action action = std::move(outbox_.front());
    outbox_.pop_front();
    return action;
  }
  std::optional<Instant> NextDeadline() const override { return deadline_; }
  std::vector<ConnId> Conns() const override {
    return open_ ? std::vector<ConnId>{client_} : std::vector<ConnId>{};
  }
  bool WantsRead(ConnId) const override { return reading_; }
  bool Finished() const override { return !open_; }
  void BeginDrain(Instant) override {
    if (open_) CloseClient("shutting down");
  }

 private:
  void CloseClient(std::string why) {
    outbox_.push_back(Close{client_, std::move(why)});
    open_ = false;
    deadline_.reset();
  }

  ConnId client_;
  bool open_ = false;
  bool reading_ = true;
  std::optional<Instant> deadline_;
  std::deque<Action> outbox_;
};

class LingeringHarness {
 public:
  explicit LingeringHarness(DriverConfig config) {
    absl::StatusOr<SocketAddress> address = Resolve("127.0.0.1:0", true);
    EXPECT_TRUE(address.ok());
    config.listen = *address;
    config.handle_signals = false;
    config.check_scheduler_invariants = true;
    driver_ = std::make_unique<Driver>(
        std::move(config), services_, env_,
        [](UnitId, ConnId, bool) { return std::make_unique<ReplyThenCloseUnit>(); });
    EXPECT_TRUE(driver_->Listen().ok());
    runner_ = std::thread([this] { EXPECT_TRUE(driver_->Run().ok()); });
  }
  ~LingeringHarness() {
    if (runner_.joinable()) Stop();
  }
  // Shutdown() and wait for Run() to return; returns how long that took.
  milliseconds Stop() {
    const auto start = steady_clock::now();
    driver_->Shutdown();
    runner_.join();
    return std::chrono::duration_cast<milliseconds>(steady_clock::now() - start);
  }
  Driver& driver() { return *driver_; }

  // A client with a small receive window (set before connecting, so the kernel does not grow
  // it): the driver cannot push the reply into the client's buffers ahead of the reads.
  int Connect() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int window = 64 * 1024;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &window, sizeof(window));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(driver_->listen_port());
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    timeval timeout{10, 0};  // a hung driver fails the test instead of hanging it
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    return fd;
  }

 private:
  RealEnvironment env_;
  NoServices services_;
  std::unique_ptr<Driver> driver_;
  std::thread runner_;
};

DriverConfig TwoWorkers(sched::DisarmPolicy policy = sched::DisarmPolicy::kUnitSet) {
  DriverConfig config;
  config.workers = 2;
  config.disarm_policy = policy;
  config.drain_timeout_ms = 5'000;
  return config;
}

bool WaitFor(const std::function<bool()>& done, milliseconds limit = milliseconds(5'000)) {
  const auto until = steady_clock::now() + limit;
  while (!done()) {
    if (steady_clock::now() > until) return false;
    std::this_thread::sleep_for(milliseconds(2));
  }
  return true;
}

void SendAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    ASSERT_GT(n, 0) << "send failed";
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

// Everything the client receives until the connection ends, and how it ended: 0 for a FIN,
// else the errno of the failed read (ECONNRESET for a reset, EAGAIN for our 10 s timeout).
struct ReadResult {
  std::string bytes;
  int end = 0;
};

ReadResult ReadToEnd(int fd) {
  ReadResult received;
  std::string buffer(256 * 1024, '\0');
  while (true) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n > 0) {
      received.bytes.append(buffer.data(), static_cast<size_t>(n));
      continue;
    }
    received.end = n == 0 ? 0 : errno;
    return received;
  }
}

class LingeringPolicyTest : public ::testing::TestWithParam<sched::DisarmPolicy> {};

INSTANTIATE_TEST_SUITE_P(Policies, LingeringPolicyTest,
                         ::testing::Values(sched::DisarmPolicy::kUnitSet,
                                           sched::DisarmPolicy::kExplicit,
                                           sched::DisarmPolicy::kLazy));

TEST_P(LingeringPolicyTest, SlowClientReceivesEveryByteSentBeforeTheCloseThenEof) {
  LingeringHarness harness(TwoWorkers(GetParam()));
  const int fd = harness.Connect();
  SendAll(fd, "big\n");
  // The Close has been applied (the socket went to the lingering set, the unit is gone) before
  // the client reads a single byte.
  ASSERT_TRUE(WaitFor([&] { return harness.driver().stats().lingering_closes == 1; }));
  ASSERT_TRUE(WaitFor([&] { return harness.driver().unit_count() == 0; }));
  // Input that arrives after the Close is read and thrown away, so the final close is no reset.
  SendAll(fd, "a query nobody will answer\n");
  std::this_thread::sleep_for(milliseconds(50));

  const ReadResult received = ReadToEnd(fd);
  EXPECT_EQ(received.bytes.size(), BigReply().size());
  EXPECT_TRUE(received.bytes == BigReply());
  EXPECT_EQ(received.end, 0) << "the connection ended with: " << std::strerror(received.end);
  ::close(fd);
  EXPECT_EQ(harness.driver().stats().lingering_timeouts, 0u);
  // The client's own FIN lets the set close the socket at once: the shutdown waits for nothing.
  EXPECT_LT(harness.Stop(), milliseconds(1'000));
}

TEST(LingeringTest, FlushedCloseWithUnreadInputEndsInEofNotReset) {
  LingeringHarness harness(TwoWorkers());
  const int fd = harness.Connect();
  SendAll(fd, "quit\n");
  char ok[3];
  ASSERT_EQ(::read(fd, ok, sizeof(ok)), 3);
  // The unit has stopped reading: this is still unread in the driver's socket when it closes.
  SendAll(fd, "one more query\n");

  const ReadResult received = ReadToEnd(fd);
  EXPECT_EQ(received.bytes, "goodbye\n");
  EXPECT_EQ(received.end, 0) << "the connection ended with: " << std::strerror(received.end);
  EXPECT_EQ(harness.driver().stats().lingering_closes, 1u);
  ::close(fd);
}

TEST(LingeringTest, ClientThatNeverReadsIsCutOffAtTheDeadline) {
  DriverConfig config = TwoWorkers();
  config.lingering_timeout_ms = 300;
  LingeringHarness harness(config);
  const int fd = harness.Connect();
  SendAll(fd, "big\n");
  ASSERT_TRUE(WaitFor([&] { return harness.driver().stats().lingering_closes == 1; }));
  const auto lingering_since = steady_clock::now();
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(harness.driver().stats().lingering_timeouts, 0u);  // still trying

  ASSERT_TRUE(WaitFor([&] { return harness.driver().stats().lingering_timeouts == 1; }));
  const auto waited = steady_clock::now() - lingering_since;
  EXPECT_GE(waited, milliseconds(250));
  EXPECT_LT(waited, milliseconds(3'000));
  // What reached the client's buffers is readable; then the connection is gone (a reset: the
  // rest was abandoned), not merely silent.
  const ReadResult received = ReadToEnd(fd);
  EXPECT_LT(received.bytes.size(), BigReply().size());
  EXPECT_TRUE(received.bytes == BigReply().substr(0, received.bytes.size()));
  EXPECT_NE(received.end, EAGAIN) << "the connection was never closed";
  ::close(fd);
}

TEST(LingeringTest, BeyondTheBoundACloseClosesAtOnce) {
  DriverConfig config = TwoWorkers();
  config.lingering_sockets_max = 1;
  LingeringHarness harness(config);
  const int first = harness.Connect();
  SendAll(first, "big\n");
  ASSERT_TRUE(WaitFor([&] { return harness.driver().stats().lingering_closes == 1; }));
  const int second = harness.Connect();
  SendAll(second, "big\n");
  ASSERT_TRUE(WaitFor([&] { return harness.driver().stats().lingering_refused == 1; }));
  // The second client gets what its socket took and then the end, without waiting for anyone.
  const ReadResult cut = ReadToEnd(second);
  EXPECT_LT(cut.bytes.size(), BigReply().size());
  EXPECT_NE(cut.end, EAGAIN);
  // The first is still served in full.
  const ReadResult whole = ReadToEnd(first);
  EXPECT_TRUE(whole.bytes == BigReply());
  EXPECT_EQ(whole.end, 0);
  ::close(first);
  ::close(second);
}

TEST(LingeringTest, ShutdownWaitsForLingeringSocketsAtMostUntilTheDrainDeadline) {
  DriverConfig config = TwoWorkers();
  config.drain_timeout_ms = 400;  // shorter than the lingering deadline (5 s)
  LingeringHarness harness(config);
  const int fd = harness.Connect();
  SendAll(fd, "big\n");
  ASSERT_TRUE(WaitFor([&] { return harness.driver().stats().lingering_closes == 1; }));
  const milliseconds took = harness.Stop();
  EXPECT_GE(took, milliseconds(300));    // it did linger during the drain...
  EXPECT_LT(took, milliseconds(2'000));  // ...but not past the drain deadline
  EXPECT_EQ(harness.driver().stats().lingering_timeouts, 1u);
  const ReadResult received = ReadToEnd(fd);
  EXPECT_LT(received.bytes.size(), BigReply().size());
  EXPECT_NE(received.end, EAGAIN);
  ::close(fd);
}

}  // namespace
}  // namespace switchyard::io_real
