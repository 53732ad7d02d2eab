// The epoll driver on real loopback sockets, with small fake units and services: bytes flow,
// server connections are opened, pooled and reused, timers fire, the drain at shutdown ends
// every session, and an echo round trip costs few syscalls.
#include "io_real/driver.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "io_real/environment.h"

namespace switchyard::io_real {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// --- Loopback helpers ---

SocketAddress Loopback(uint16_t port) {
  absl::StatusOr<SocketAddress> address = Resolve("127.0.0.1:" + std::to_string(port), true);
  EXPECT_TRUE(address.ok());
  return *address;
}

int ConnectTo(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  timeval timeout{10, 0};  // a hung driver fails the test instead of hanging it
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

void WriteAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    ASSERT_GT(n, 0) << "send failed";
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

// Reads exactly `n` bytes; returns fewer on EOF, error or timeout.
std::string ReadExactly(int fd, size_t n) {
  std::string out(n, '\0');
  size_t done = 0;
  while (done < n) {
    const ssize_t got = ::read(fd, out.data() + done, n - done);
    if (got <= 0) break;
    done += static_cast<size_t>(got);
  }
  out.resize(done);
  return out;
}

// True when the peer closed the connection (EOF or reset) before the timeout.
bool SeesEof(int fd) {
  char byte;
  return ::read(fd, &byte, 1) <= 0 && errno != EAGAIN;
}

// A blocking TCP server that echoes in upper case, standing in for PostgreSQL.
class UpperCaseServer {
 public:
  UpperCaseServer() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    EXPECT_EQ(::listen(listen_fd_, 64), 0);
    socklen_t length = sizeof(address);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }
  ~UpperCaseServer() {
    stop_ = true;
    acceptor_.join();
    ResetAll();
    for (std::thread& t : handlers_) t.join();
    ::close(listen_fd_);
  }
  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }
  // Closes every connection from the server side, as a restarted server would.
  void ResetAll() {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
  }

 private:
  void AcceptLoop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      ++accepted_;
      std::lock_guard<std::mutex> lock(mu_);
      fds_.push_back(fd);
      handlers_.emplace_back([fd] {
        char buffer[4096];
        ssize_t n;
        while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) {
          for (ssize_t i = 0; i < n; ++i) buffer[i] = static_cast<char>(std::toupper(buffer[i]));
          if (::send(fd, buffer, static_cast<size_t>(n), MSG_NOSIGNAL) != n) break;
        }
        ::close(fd);
      });
    }
  }

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<int> fds_;
  std::vector<std::thread> handlers_;
};

// --- Fakes ---

// A pool of one kind of connection, at most `max_servers` of them: checkouts reuse an idle
// one, ask for a connect, or wait for one to be released (then handed over directly).
class FakeServices final : public ServicesLike {
 public:
  explicit FakeServices(int max_clients = 1000, int max_servers = 1000)
      : max_clients_(max_clients), max_servers_(max_servers) {}

  Services::Outcome Handle(Instant, UnitId from, ServiceRequest request) override {
    Services::Outcome outcome;
    if (std::holds_alternative<CheckoutRequest>(request)) {
      if (!idle_.empty()) {
        outcome.deliveries.push_back(Services::Delivery{from, Reuse(idle_.front())});
        idle_.pop_front();
      } else if (servers_ < max_servers_) {
        ++servers_;
        outcome.deliveries.push_back(Services::Delivery{from, CheckoutReply{}});
      } else {
        waiting_.push_back(from);
      }
    } else if (auto* release = std::get_if<ReleaseRequest>(&request)) {
      if (!waiting_.empty()) {
        // Straight to the next waiting unit, which may be running on another worker now.
        outcome.deliveries.push_back(
            Services::Delivery{waiting_.front(), Reuse(release->connection)});
        waiting_.pop_front();
      } else {
        idle_.push_back(release->connection);
        outcome.now_idle.push_back(release->connection.conn);
      }
    } else if (std::holds_alternative<ForgetRequest>(request)) {
      --servers_;
      if (!waiting_.empty()) {
        ++servers_;
        outcome.deliveries.push_back(Services::Delivery{waiting_.front(), CheckoutReply{}});
        waiting_.pop_front();
      }
    } else if (std::holds_alternative<CancelCheckoutRequest>(request)) {
      std::erase(waiting_, from);
    }
    return outcome;
  }
  Services::Outcome Tick(Instant) override { return {}; }
  std::optional<Instant> NextDeadline() const override { return std::nullopt; }
  Services::Outcome IdleConnectionLost(Instant, ConnId conn) override {
    Services::Outcome outcome;
    for (auto it = idle_.begin(); it != idle_.end(); ++it) {
      if (it->conn == conn) {
        idle_.erase(it);
        outcome.close.push_back(conn);
        --servers_;
        ++lost_;
        break;
      }
    }
    return outcome;
  }
  bool AdmitClient() override { return admitted_++ < max_clients_; }
  void ClientGone(UnitId) override { ++gone_; }

  std::atomic<int> reused_{0};
  std::atomic<int> lost_{0};
  std::atomic<int> gone_{0};

 private:
  CheckoutReply Reuse(PooledConnection connection) {
    ++reused_;
    return CheckoutReply{CheckoutReply::Kind::kReuse, std::move(connection)};
  }

  const int max_clients_;
  const int max_servers_;
  std::atomic<int> admitted_{0};
  int servers_ = 0;
  std::deque<PooledConnection> idle_;
  std::deque<UnitId> waiting_;
};

class FakeUnit : public UnitLike {
 public:
  std::optional<Action> PollAction() override {
    if (outbox_.empty()) return std::nullopt;
    Action action = std::move(outbox_.front());
    outbox_.pop_front();
    return action;
  }
  std::optional<Instant> NextDeadline() const override { return std::nullopt; }
  bool WantsRead(ConnId) const override { return true; }

 protected:
  void Push(Action action) { outbox_.push_back(std::move(action)); }
  std::deque<Action> outbox_;
};

// Echoes the client's bytes. "tick\n" arms a 20 ms timer that answers "tock\n"; "spin\n" makes
// the unit busy forever (a timer due at once, whose run takes 200 us, re-armed each time). A
// refused (not admitted) client is told "full\n". On drain it says "bye\n" and closes, unless
// stubborn.
class EchoUnit final : public FakeUnit {
 public:
  EchoUnit(bool admitted, bool stubborn) : admitted_(admitted), stubborn_(stubborn) {}

  void Handle(Instant now, const Event& event) override {
    if (auto* accepted = std::get_if<Accepted>(&event)) {
      client_ = accepted->conn;
      open_ = true;
      if (!admitted_) {
        Push(Send{client_, "full\n"});
        Push(Close{client_, "too many clients"});
        open_ = false;
      }
    } else if (auto* received = std::get_if<Received>(&event)) {
      if (received->bytes == "tick\n") {
        deadline_ = now + 20'000;
      } else if (received->bytes == "spin\n") {
        spinning_ = true;
        deadline_ = now;
      } else {
        Push(Send{client_, std::string(received->bytes)});
      }
    } else if (std::holds_alternative<TimerFired>(event) && spinning_) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      deadline_ = now;
    } else if (std::holds_alternative<TimerFired>(event)) {
      deadline_.reset();
      Push(Send{client_, "tock\n"});
    } else if (std::holds_alternative<Closed>(event)) {
      open_ = false;  // the driver closes what the unit no longer lists
    }
  }
  std::optional<Instant> NextDeadline() const override { return deadline_; }
  std::vector<ConnId> Conns() const override {
    return open_ ? std::vector<ConnId>{client_} : std::vector<ConnId>{};
  }
  bool Finished() const override { return !open_; }
  void BeginDrain(Instant) override {
    if (!open_ || stubborn_) return;
    Push(Send{client_, "bye\n"});
    Push(Close{client_, "shutting down"});
    open_ = false;
  }

 private:
  const bool admitted_;
  const bool stubborn_;
  ConnId client_;
  bool open_ = false;
  bool spinning_ = false;
  std::optional<Instant> deadline_;
};

// Forwards the client to a pooled server connection (node 0) and back; returns the server
// connection to the pool when the client leaves.
class ForwardUnit final : public FakeUnit {
 public:
  explicit ForwardUnit(Environment& env) : env_(env) {}

  void Handle(Instant now, const Event& event) override {
    now_ = now;
    if (auto* accepted = std::get_if<Accepted>(&event)) {
      client_ = accepted->conn;
      client_open_ = true;
      checkout_pending_ = true;
      Push(RequestService{CheckoutRequest{Key()}});
    } else if (std::holds_alternative<TimerFired>(event)) {
      // Busy for a moment, again and again while queued for a connection: a release elsewhere
      // then often hands the connection over while this unit runs (a race the driver handles).
      std::this_thread::sleep_for(std::chrono::microseconds(300));
    } else if (auto* replied = std::get_if<ServiceReplied>(&event)) {
      checkout_pending_ = false;
      const auto& reply = std::get<CheckoutReply>(replied->reply);
      if (reply.kind == CheckoutReply::Kind::kReuse) {
        server_ = reply.connection->conn;
        ServerReady();
      } else {
        server_ = env_.NewConnId();
        Push(Connect{server_, NodeId{0}});
      }
    } else if (std::holds_alternative<Connected>(event)) {
      ServerReady();
    } else if (std::holds_alternative<ConnectFailed>(event)) {
      Push(Send{client_, "connect failed\n"});
      Push(Close{client_, "no server"});
      Push(Close{server_, "failed"});
      Push(RequestService{ForgetRequest{Key(), server_}});
      client_open_ = false;
      server_ = ConnId{};
    } else if (auto* received = std::get_if<Received>(&event)) {
      if (received->conn == server_) {
        Push(Send{client_, std::string(received->bytes)});
      } else if (server_ready_) {
        Push(Send{server_, std::string(received->bytes)});
      } else {
        pending_ += received->bytes;
      }
    } else if (auto* closed = std::get_if<Closed>(&event)) {
      if (closed->conn == client_) {
        ClientGone();
      } else {  // the server went away: so does the client
        Push(Close{client_, "server lost"});
        Push(RequestService{ForgetRequest{Key(), server_}});
        client_open_ = false;
        server_ = ConnId{};
      }
    }
  }
  std::vector<ConnId> Conns() const override {
    std::vector<ConnId> conns;
    if (client_open_) conns.push_back(client_);
    if (server_.valid()) conns.push_back(server_);
    return conns;
  }
  bool Finished() const override { return !client_open_ && !server_.valid(); }
  std::optional<Instant> NextDeadline() const override {
    if (!checkout_pending_ || !client_open_) return std::nullopt;
    return now_ + 100;
  }
  void BeginDrain(Instant) override {
    if (!client_open_) return;
    Push(Close{client_, "shutting down"});
    ClientGone();
  }

 private:
  static PoolKey Key() { return PoolKey{NodeId{0}, "user", "db", {}}; }
  void ServerReady() {
    server_ready_ = true;
    if (!pending_.empty()) Push(Send{server_, std::exchange(pending_, "")});
  }
  void ClientGone() {
    client_open_ = false;
    if (server_ready_) {
      Push(RequestService{ReleaseRequest{PooledConnection{server_, Key(), {}, 0, 0, {}}}});
    } else if (server_.valid()) {
      Push(Close{server_, "client left while connecting"});
      Push(RequestService{ForgetRequest{Key(), server_}});
    } else {
      Push(RequestService{CancelCheckoutRequest{}});
    }
    server_ = ConnId{};
  }

  Environment& env_;
  Instant now_;
  bool checkout_pending_ = false;
  ConnId client_;
  bool client_open_ = false;
  ConnId server_;
  bool server_ready_ = false;
  std::string pending_;
};

// --- Fixture: a driver running on its own thread ---

enum class UnitKind { kEcho, kStubbornEcho, kForward };

class DriverHarness {
 public:
  DriverHarness(UnitKind kind, DriverConfig config, int max_clients = 1000, int max_servers = 1000)
      : services_(max_clients, max_servers) {
    config.listen = Loopback(0);
    config.handle_signals = false;
    driver_ = std::make_unique<Driver>(
        std::move(config), services_, env_,
        [this, kind](UnitId, ConnId, bool admitted) -> std::unique_ptr<UnitLike> {
          if (kind == UnitKind::kForward) return std::make_unique<ForwardUnit>(env_);
          return std::make_unique<EchoUnit>(admitted, kind == UnitKind::kStubbornEcho);
        });
    EXPECT_TRUE(driver_->Listen().ok());
    runner_ = std::thread([this] {
      run_status_ = driver_->Run();
      returned_ = true;
    });
  }
  ~DriverHarness() {
    if (runner_.joinable()) Stop();
  }
  // Shutdown() and wait for Run() to return; returns how long that took.
  milliseconds Stop() {
    const auto start = steady_clock::now();
    driver_->Shutdown();
    runner_.join();
    return std::chrono::duration_cast<milliseconds>(steady_clock::now() - start);
  }
  uint16_t port() const { return driver_->listen_port(); }
  Driver& driver() { return *driver_; }
  FakeServices& services() { return services_; }
  bool returned() const { return returned_; }
  const absl::Status& run_status() const { return run_status_; }

 private:
  RealEnvironment env_;
  FakeServices services_;
  std::unique_ptr<Driver> driver_;
  std::thread runner_;
  absl::Status run_status_;
  std::atomic<bool> returned_{false};
};

DriverConfig TwoWorkers(sched::DisarmPolicy policy = sched::DisarmPolicy::kUnitSet) {
  DriverConfig config;
  config.workers = 2;
  config.disarm_policy = policy;
  config.drain_timeout_ms = 5'000;
  config.check_scheduler_invariants = true;
  return config;
}

// --- Tests ---

// The tests that race units against each other run under every disarm policy.
class DriverPolicyTest : public ::testing::TestWithParam<sched::DisarmPolicy> {};

INSTANTIATE_TEST_SUITE_P(Policies, DriverPolicyTest,
                         ::testing::Values(sched::DisarmPolicy::kUnitSet,
                                           sched::DisarmPolicy::kExplicit,
                                           sched::DisarmPolicy::kLazy));

TEST_P(DriverPolicyTest, EchoesEveryClientsBytesConcurrently) {
  DriverHarness harness(UnitKind::kEcho, TwoWorkers(GetParam()));
  constexpr int kClients = 8;
  constexpr int kMessages = 200;
  std::vector<std::thread> clients;
  std::atomic<int> correct{0};
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      const int fd = ConnectTo(harness.port());
      bool all_good = true;
      for (int m = 0; m < kMessages; ++m) {
        const std::string message =
            "client " + std::to_string(c) + " message " + std::to_string(m) + "\n";
        WriteAll(fd, message);
        all_good = all_good && ReadExactly(fd, message.size()) == message;
      }
      ::close(fd);
      if (all_good) ++correct;
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(correct.load(), kClients);
  EXPECT_EQ(harness.driver().stats().clients_accepted, static_cast<uint64_t>(kClients));
}

TEST_P(DriverPolicyTest, LargeTransfersSurviveTheReadBoundAndPartialWrites) {
  DriverConfig config = TwoWorkers(GetParam());
  config.read_bytes_per_run_max = 64 * 1024;  // forces many yields
  DriverHarness harness(UnitKind::kEcho, config);
  const int fd = ConnectTo(harness.port());
  std::string payload(8 << 20, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>('a' + i % 26);
  // Writing 8 MiB while nobody reads fills the socket buffers both ways, so the driver must
  // keep output pending and wait for EPOLLOUT.
  std::thread writer([&] { WriteAll(fd, payload); });
  const std::string echoed = ReadExactly(fd, payload.size());
  writer.join();
  EXPECT_EQ(echoed.size(), payload.size());
  EXPECT_TRUE(echoed == payload);
  ::close(fd);
}

TEST(DriverTest, UnitTimerFires) {
  DriverHarness harness(UnitKind::kEcho, TwoWorkers());
  const int fd = ConnectTo(harness.port());
  const auto start = steady_clock::now();
  WriteAll(fd, "tick\n");
  EXPECT_EQ(ReadExactly(fd, 5), "tock\n");
  EXPECT_GE(steady_clock::now() - start, milliseconds(20));
  ::close(fd);
}

TEST(DriverTest, UnitsThatKeepRequeueingDoNotStarveTheOthersReadiness) {
  DriverHarness harness(UnitKind::kEcho, TwoWorkers());
  // Eight units always due, each run taking 200 us: two workers hardly see an empty queue.
  std::vector<int> spinners;
  for (int i = 0; i < 8; ++i) {
    spinners.push_back(ConnectTo(harness.port()));
    WriteAll(spinners.back(), "spin\n");
  }
  std::this_thread::sleep_for(milliseconds(20));
  const int fd = ConnectTo(harness.port());
  constexpr int kRoundTrips = 50;
  const uint64_t runs_before = harness.driver().stats().runs;
  int answered = 0;
  for (int i = 0; i < kRoundTrips; ++i) {
    WriteAll(fd, "ping\n");
    if (ReadExactly(fd, 5) == "ping\n") ++answered;
  }
  EXPECT_EQ(answered, kRoundTrips);
  // Each round trip waits for about one pass over the queue (the spinners' runs), not for the
  // queue to run empty, which it hardly ever does.
  const double runs_per_round_trip =
      double(harness.driver().stats().runs - runs_before) / kRoundTrips;
  EXPECT_LT(runs_per_round_trip, 40.0);
  ::close(fd);
  for (int spinner : spinners) ::close(spinner);
}

TEST(DriverTest, ShutdownDrainsEveryClientAndReturns) {
  DriverHarness harness(UnitKind::kEcho, TwoWorkers());
  std::vector<int> fds;
  for (int i = 0; i < 5; ++i) {
    fds.push_back(ConnectTo(harness.port()));
    WriteAll(fds.back(), "hi\n");
    ASSERT_EQ(ReadExactly(fds.back(), 3), "hi\n");
  }
  const milliseconds took = harness.Stop();
  EXPECT_TRUE(harness.returned());
  EXPECT_TRUE(harness.run_status().ok());
  EXPECT_LT(took, milliseconds(2'000));  // drained, not timed out
  EXPECT_EQ(harness.driver().unit_count(), 0u);
  for (int fd : fds) {
    EXPECT_EQ(ReadExactly(fd, 4), "bye\n");
    EXPECT_TRUE(SeesEof(fd));
    ::close(fd);
  }
  // The listener is closed: nobody new gets in.
  const int late = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(harness.port());
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_NE(::connect(late, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ::close(late);
}

TEST(DriverTest, DrainTimeoutCutsUnitsThatDoNotFinish) {
  DriverConfig config = TwoWorkers();
  config.drain_timeout_ms = 300;
  DriverHarness harness(UnitKind::kStubbornEcho, config);
  const int fd = ConnectTo(harness.port());
  WriteAll(fd, "hi\n");
  ASSERT_EQ(ReadExactly(fd, 3), "hi\n");
  const milliseconds took = harness.Stop();
  EXPECT_GE(took, milliseconds(250));
  EXPECT_LT(took, milliseconds(3'000));
  EXPECT_TRUE(SeesEof(fd));  // cut off when the drain ran out
  ::close(fd);
}

TEST(DriverTest, ClientsOverTheLimitAreCreatedNotAdmitted) {
  DriverHarness harness(UnitKind::kEcho, TwoWorkers(), /*max_clients=*/1);
  const int first = ConnectTo(harness.port());
  WriteAll(first, "hi\n");
  ASSERT_EQ(ReadExactly(first, 3), "hi\n");
  const int second = ConnectTo(harness.port());
  EXPECT_EQ(ReadExactly(second, 5), "full\n");
  EXPECT_TRUE(SeesEof(second));
  ::close(second);
  ::close(first);
  harness.Stop();
  // Only the admitted client is reported gone to the services.
  EXPECT_EQ(harness.services().gone_.load(), 1);
}

TEST(DriverTest, ForwardsThroughAPooledServerConnectionAndReusesIt) {
  UpperCaseServer server;
  DriverConfig config = TwoWorkers();
  config.nodes.push_back(Loopback(server.port()));
  DriverHarness harness(UnitKind::kForward, config);

  const int first = ConnectTo(harness.port());
  WriteAll(first, "hello\n");  // sent before the server connection is up: buffered
  EXPECT_EQ(ReadExactly(first, 6), "HELLO\n");
  ::close(first);
  // The released connection sits in the pool; wait until the unit has returned it.
  for (int i = 0; i < 1000 && harness.driver().unit_count() > 0; ++i) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  const int second = ConnectTo(harness.port());
  WriteAll(second, "world\n");
  EXPECT_EQ(ReadExactly(second, 6), "WORLD\n");
  ::close(second);
  EXPECT_EQ(server.accepted(), 1);
  EXPECT_EQ(harness.services().reused_.load(), 1);
}

TEST_P(DriverPolicyTest, OneServerConnectionHandedFromClientToClient) {
  UpperCaseServer server;
  DriverConfig config = TwoWorkers(GetParam());
  config.nodes.push_back(Loopback(server.port()));
  DriverHarness harness(UnitKind::kForward, config, 1000, /*max_servers=*/1);
  // Clients queue for the single connection; each release hands it straight to a waiting unit,
  // often while that unit is running on the other worker.
  constexpr int kClients = 6;
  constexpr int kSessions = 30;
  std::atomic<int> answered{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; i < kSessions; ++i) {
        const int fd = ConnectTo(harness.port());
        const std::string message = "c" + std::to_string(c) + "s" + std::to_string(i) + "\n";
        WriteAll(fd, message);
        std::string expected = message;
        for (char& ch : expected) ch = static_cast<char>(std::toupper(ch));
        if (ReadExactly(fd, expected.size()) == expected) ++answered;
        ::close(fd);
      }
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(answered.load(), kClients * kSessions);
  EXPECT_EQ(server.accepted(), 1);
  EXPECT_GE(harness.services().reused_.load(), kClients * kSessions - 1);
}

TEST_P(DriverPolicyTest, IdlePooledConnectionClosedByTheServerIsDropped) {
  UpperCaseServer server;
  DriverConfig config = TwoWorkers(GetParam());
  config.nodes.push_back(Loopback(server.port()));
  DriverHarness harness(UnitKind::kForward, config);

  const int first = ConnectTo(harness.port());
  WriteAll(first, "a\n");
  ASSERT_EQ(ReadExactly(first, 2), "A\n");
  ::close(first);
  for (int i = 0; i < 1000 && harness.driver().unit_count() > 0; ++i) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  server.ResetAll();  // the idle pooled connection goes stale
  for (int i = 0; i < 1000 && harness.services().lost_.load() == 0; ++i) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  EXPECT_EQ(harness.services().lost_.load(), 1);
  const int second = ConnectTo(harness.port());
  WriteAll(second, "b\n");
  EXPECT_EQ(ReadExactly(second, 2), "B\n");  // over a fresh connection
  ::close(second);
  EXPECT_EQ(server.accepted(), 2);
}

TEST(DriverTest, FailedConnectIsReportedToTheUnit) {
  // A port nothing listens on: bind one, note it, close it.
  const int probe = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(probe, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  ::getsockname(probe, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(probe);

  DriverConfig config = TwoWorkers();
  config.nodes.push_back(Loopback(ntohs(address.sin_port)));
  DriverHarness harness(UnitKind::kForward, config);
  const int fd = ConnectTo(harness.port());
  EXPECT_EQ(ReadExactly(fd, 15), "connect failed\n");
  EXPECT_TRUE(SeesEof(fd));
  ::close(fd);
}

// Syscalls per request/response round trip, measured over many sequential round trips.
struct PerRoundTrip {
  double epoll_ctls = 0;
  double reads = 0;
  double writes = 0;
  double unit_set_polls = 0;
  double worker_wakes = 0;
};

PerRoundTrip MeasureRoundTrips(DriverHarness& harness, const std::string& request,
                               const std::string& response) {
  constexpr int kWarmUp = 20;
  constexpr int kRoundTrips = 500;
  const int fd = ConnectTo(harness.port());
  for (int i = 0; i < kWarmUp; ++i) {
    WriteAll(fd, request);
    EXPECT_EQ(ReadExactly(fd, response.size()), response);
  }
  const DriverStats before = harness.driver().stats();
  for (int i = 0; i < kRoundTrips; ++i) {
    WriteAll(fd, request);
    EXPECT_EQ(ReadExactly(fd, response.size()), response);
  }
  const DriverStats after = harness.driver().stats();
  ::close(fd);
  return PerRoundTrip{double(after.epoll_ctls - before.epoll_ctls) / kRoundTrips,
                      double(after.reads - before.reads) / kRoundTrips,
                      double(after.writes - before.writes) / kRoundTrips,
                      double(after.unit_set_polls - before.unit_set_polls) / kRoundTrips,
                      double(after.worker_wakes - before.worker_wakes) / kRoundTrips};
}

TEST(DriverTest, EchoRoundTripCostsOneReadOneWriteOneRearm) {
  DriverHarness harness(UnitKind::kEcho, TwoWorkers());
  const PerRoundTrip cost = MeasureRoundTrips(harness, "ping\n", "ping\n");
  EXPECT_LE(cost.reads, 1.05);
  EXPECT_LE(cost.writes, 1.05);
  EXPECT_LE(cost.epoll_ctls, 1.05);
  // A unit with one connection knows which one its set reported.
  EXPECT_LE(cost.unit_set_polls, 0.05);
  // The worker that is told of the readiness runs the unit: nobody else is woken for it.
  EXPECT_LE(cost.worker_wakes, 0.05);
}

TEST(DriverTest, ForwardedRoundTripSyscallsPerDisarmPolicy) {
  UpperCaseServer server;
  const sched::DisarmPolicy policies[] = {
      sched::DisarmPolicy::kExplicit, sched::DisarmPolicy::kLazy, sched::DisarmPolicy::kUnitSet};
  const char* names[] = {"explicit", "lazy", "unit_set"};
  PerRoundTrip cost[3];
  for (int i = 0; i < 3; ++i) {
    DriverConfig config = TwoWorkers(policies[i]);
    config.nodes.push_back(Loopback(server.port()));
    DriverHarness harness(UnitKind::kForward, config);
    cost[i] = MeasureRoundTrips(harness, "ping\n", "PING\n");
    std::printf(
        "policy=%s epoll_ctl=%.2f read=%.2f write=%.2f unit_set_polls=%.2f "
        "worker_wakes=%.2f per round trip\n",
        names[i], cost[i].epoll_ctls, cost[i].reads, cost[i].writes, cost[i].unit_set_polls,
        cost[i].worker_wakes);
  }
  // Client in, server out, server in, client out: two reads and two writes either way, and no
  // worker woken to run what another worker was told of.
  for (const PerRoundTrip& c : cost) {
    EXPECT_LE(c.reads, 2.1);
    EXPECT_LE(c.writes, 2.1);
    EXPECT_LE(c.worker_wakes, 0.05);
  }
  // Explicit: remove the other socket, re-add it, re-arm the one that fired, per direction.
  EXPECT_LE(cost[0].epoll_ctls, 6.1);
  // Lazy: only the socket that fired is re-armed.
  EXPECT_LE(cost[1].epoll_ctls, 2.1);
  // Unit set: only the unit's entry is re-armed, and the reply is read from the connection
  // the request went to without asking the set first.
  EXPECT_LE(cost[2].epoll_ctls, 2.1);
  EXPECT_LE(cost[2].unit_set_polls, 0.1);
}

}  // namespace
}  // namespace switchyard::io_real
