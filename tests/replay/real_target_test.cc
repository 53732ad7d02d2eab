// The poll() driver over real sockets, against a small scripted server in a thread: several
// sessions through one slot, a refused connection, and a stall whose cancel reaches the server.
#include "replay/real_target.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "tests/replay/replay_test_util.h"

namespace switchyard::replay {
namespace {

using testing::Columns;
using testing::Q;
using testing::Row;
using testing::Tag;
using testing::TraceBuilder;
using testing::Z;

const std::vector<std::string> kAnswer = {Columns({"?column?"}), Row({"1"}), Tag("SELECT 1"), Z()};

// A listening socket on 127.0.0.1 and an ephemeral port.
struct Listener {
  int fd = -1;
  uint16_t port = 0;
  Listener() {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    socklen_t length = sizeof(address);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    port = ntohs(address.sin_port);
    EXPECT_EQ(::listen(fd, 16), 0);
  }
  ~Listener() { ::close(fd); }
};

bool ReadExactly(int fd, std::string& out, size_t size) {
  out.resize(size);
  size_t got = 0;
  while (got < size) {
    ssize_t n = ::recv(fd, out.data() + got, size - got, 0);
    if (n <= 0) return false;
    got += static_cast<size_t>(n);
  }
  return true;
}

// One message: the untyped startup family when `typed` is false.
bool ReadMessage(int fd, std::string& message, bool typed) {
  std::string header;
  if (!ReadExactly(fd, header, typed ? 5 : 4)) return false;
  std::string_view length_bytes = std::string_view(header).substr(typed ? 1 : 0);
  uint32_t length = (uint32_t{static_cast<uint8_t>(length_bytes[0])} << 24) |
                    (uint32_t{static_cast<uint8_t>(length_bytes[1])} << 16) |
                    (uint32_t{static_cast<uint8_t>(length_bytes[2])} << 8) |
                    uint32_t{static_cast<uint8_t>(length_bytes[3])};
  std::string rest;
  if (!ReadExactly(fd, rest, length - 4)) return false;
  message = header + rest;
  return true;
}

void SendAll(int fd, const std::vector<std::string>& messages) {
  for (const std::string& message : messages) {
    ASSERT_EQ(::send(fd, message.data(), message.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(message.size()));
  }
}

// Accepts a connection and logs it in with trust and backend key (pid, 7).
int AcceptAndLogin(const Listener& listener, int32_t pid) {
  int fd = ::accept(listener.fd, nullptr, nullptr);
  std::string startup;
  EXPECT_TRUE(ReadMessage(fd, startup, false));
  SendAll(fd, {testing::AuthOk(), testing::Key(pid, 7), Z()});
  return fd;
}

Capture Sessions(int count) {
  TraceBuilder trace;
  for (int s = 1; s <= count; ++s) {
    trace.Open(s, s);
    trace.Client(s, 10 + s, Q("SELECT 1"));
    for (const std::string& message : kAnswer) trace.Answer(s, 20 + s, message);
  }
  return trace.Capture();
}

RealTargetOptions Options(uint16_t port) {
  RealTargetOptions options;
  options.target = "127.0.0.1:" + std::to_string(port);
  options.pacing.no_waiting = true;
  options.settings.stall_timeout_us = 300'000;
  return options;
}

TEST(RealTargetTest, SessionsBeyondTheBoundWaitForASlot) {
  Listener listener;
  std::atomic<int> served = 0;
  std::thread server([&] {
    for (int i = 0; i < 3; ++i) {
      int fd = AcceptAndLogin(listener, 100 + i);
      std::string message;
      while (ReadMessage(fd, message, true) && message[0] != 'X') SendAll(fd, kAnswer);
      ::close(fd);
      ++served;
    }
  });
  RealTargetOptions options = Options(listener.port);
  options.sessions_max = 1;  // the server above serves one connection at a time
  ReplayReport report;
  Capture capture = Sessions(3);
  ASSERT_TRUE(ReplayAgainstServer(capture, options, report).ok());
  server.join();
  EXPECT_EQ(served, 3);
  EXPECT_EQ(report.SummaryLine(), "sessions=3 messages=3 divergences=0 errors=0 stalls=0");
}

TEST(RealTargetTest, ARefusedConnectionIsAnErrorNotAHang) {
  uint16_t port = 0;
  {
    Listener closed;  // bound, then closed: nobody listens there any more
    port = closed.port;
  }
  ReplayReport report;
  Capture capture = Sessions(1);
  ASSERT_TRUE(ReplayAgainstServer(capture, Options(port), report).ok());
  EXPECT_EQ(report.errors_by_sqlstate().at("08001").new_errors, 1u);
  EXPECT_EQ(report.SummaryLine(), "sessions=1 messages=0 divergences=0 errors=1 stalls=0");
}

TEST(RealTargetTest, AStalledSessionIsCancelledWithItsOwnKeyThenClosed) {
  Listener listener;
  std::string cancel;
  std::thread server([&] {
    int session = AcceptAndLogin(listener, 4242);
    std::string query;
    EXPECT_TRUE(ReadMessage(session, query, true));  // never answered
    int canceller = ::accept(listener.fd, nullptr, nullptr);
    EXPECT_TRUE(ReadMessage(canceller, cancel, false));
    ::close(canceller);
    std::string rest;
    while (ReadMessage(session, rest, true)) {
    }  // until the replay closes the connection
    ::close(session);
  });
  ReplayReport report;
  Capture capture = Sessions(1);
  ASSERT_TRUE(ReplayAgainstServer(capture, Options(listener.port), report).ok());
  server.join();
  EXPECT_EQ(cancel, (pg::CancelRequest{.pid = 4242, .secret = 7}.Encode()));
  EXPECT_EQ(report.stalls(), 1u);
  EXPECT_EQ(report.stall_records().at(0).statement, "SELECT 1");
}

TEST(RealTargetTest, ParseTarget) {
  auto v4 = ParseTarget("db.example:5432");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->host, "db.example");
  EXPECT_EQ(v4->port, 5432);
  auto v6 = ParseTarget("[::1]:6432");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_FALSE(ParseTarget("db.example").ok());
  EXPECT_FALSE(ParseTarget("db:0").ok());
  EXPECT_FALSE(ParseTarget("db:70000").ok());
  EXPECT_FALSE(ParseTarget(":5432").ok());
}

}  // namespace
}  // namespace switchyard::replay
