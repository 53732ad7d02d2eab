// Capture in the epoll driver, with a fake unit that records what its client sends: a unit
// admitted while capture is on hears of it at once, ToggleCapture() (SIGUSR1) switches it off
// and on for every live unit, a full file makes every unit hear of the next one, and what the
// units emitted is in the files, in order, when the driver has shut down.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/capture.h"
#include "core/trace/reader.h"
#include "io_real/driver.h"
#include "io_real/environment.h"

namespace switchyard::io_real {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

class NoServices final : public ServicesLike {
 public:
  Services::Outcome Handle(Instant, UnitId, ServiceRequest) override { return {}; }
  Services::Outcome Tick(Instant) override { return {}; }
  std::optional<Instant> NextDeadline() const override { return std::nullopt; }
  Services::Outcome IdleConnectionLost(Instant, ConnId) override { return {}; }
  bool AdmitClient() override { return true; }
  void ClientGone(UnitId) override {}
};

std::string QueryMessage(std::string_view sql) {
  std::string bytes = "Q";
  const uint32_t length = static_cast<uint32_t>(4 + sql.size() + 1);
  for (int shift : {24, 16, 8, 0}) bytes.push_back(static_cast<char>(length >> shift));
  bytes.append(sql);
  bytes.push_back('\0');
  return bytes;
}

// Echoes its client; while capture is on, records each read as a Query message, and marks
// every capture file it hears of (as a real unit writes its snapshot there).
class RecordingUnit final : public UnitLike {
 public:
  RecordingUnit(UnitId id, std::atomic<int>& changes) : id_(id), changes_(changes) {}

  void Handle(Instant now, const Event& event) override {
    if (auto* accepted = std::get_if<Accepted>(&event)) {
      client_ = accepted->conn;
      open_ = true;
    } else if (auto* change = std::get_if<CaptureChanged>(&event)) {
      if (change->on && change->epoch != epoch_) {
        on_ = true;
        epoch_ = change->epoch;
        start_ = change->start;
        trace::Record marker = Metadata(now, trace::Direction::kNone);
        marker.body = trace::Marker{"file " + std::to_string(epoch_)};
        Emit(marker, "");
      } else if (!change->on) {
        on_ = false;
      }
      ++changes_;
    } else if (auto* received = std::get_if<Received>(&event)) {
      const std::string text(received->bytes);
      if (on_) Emit(Metadata(now, trace::Direction::kClientToProxy), QueryMessage(text));
      outbox_.push_back(Send{client_, text});
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
  std::optional<Instant> NextDeadline() const override { return std::nullopt; }
  std::vector<ConnId> Conns() const override {
    return open_ ? std::vector<ConnId>{client_} : std::vector<ConnId>{};
  }
  bool WantsRead(ConnId) const override { return true; }
  bool Finished() const override { return !open_; }
  void BeginDrain(Instant) override {
    if (!open_) return;
    outbox_.push_back(Close{client_, "shutting down"});
    open_ = false;
  }

 private:
  trace::Record Metadata(Instant now, trace::Direction direction) {
    trace::Record record;
    record.direction = direction;
    record.session = id_.value;
    record.sequence = sequence_++;
    record.time_us = std::max<int64_t>(0, now.us - start_.us);
    return record;
  }
  void Emit(const trace::Record& record, std::string_view message) {
    Trace trace{epoch_, "", 1, 0};
    if (message.empty()) {
      EXPECT_TRUE(trace::TraceEncoder().Append(record, trace.records).ok());
    } else {
      EXPECT_TRUE(
          AppendMessageRecord(record, message, trace::kRecordBodySizeMaxDefault, trace.records));
    }
    outbox_.push_back(std::move(trace));
  }

  const UnitId id_;
  std::atomic<int>& changes_;
  std::deque<Action> outbox_;
  ConnId client_;
  bool open_ = false;
  bool on_ = false;
  uint64_t epoch_ = 0;
  Instant start_;
  uint64_t sequence_ = 0;
};

int ConnectTo(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  return fd;
}

// Sends `text` and waits for its echo, so the unit has handled it.
void RoundTrip(int fd, const std::string& text) {
  ASSERT_EQ(::send(fd, text.data(), text.size(), MSG_NOSIGNAL), static_cast<ssize_t>(text.size()));
  std::string echo(text.size(), '\0');
  size_t got = 0;
  while (got < echo.size()) {
    const ssize_t n = ::read(fd, echo.data() + got, echo.size() - got);
    ASSERT_GT(n, 0);
    got += static_cast<size_t>(n);
  }
  EXPECT_EQ(echo, text);
}

bool WaitFor(const std::function<bool()>& done) {
  const auto deadline = steady_clock::now() + milliseconds(10'000);
  while (!done()) {
    if (steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(2));
  }
  return true;
}

// What each file holds: markers as "file N", messages as their text.
std::vector<std::vector<std::string>> ReadFiles(const std::string& dir) {
  std::vector<std::string> paths;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) paths.push_back(entry.path());
  std::sort(paths.begin(), paths.end());
  std::vector<std::vector<std::string>> files;
  for (const std::string& path : paths) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    trace::TraceContents contents = trace::ReadTrace(bytes.str());
    EXPECT_TRUE(contents.status.ok()) << path << ": " << contents.status;
    files.emplace_back();
    for (const trace::Record& record : contents.records) {
      if (const auto* marker = std::get_if<trace::Marker>(&record.body)) {
        files.back().push_back(marker->text);
      } else if (const auto* message = std::get_if<trace::Message>(&record.body)) {
        files.back().push_back(message->bytes.substr(5, message->bytes.size() - 6));
      }
    }
  }
  return files;
}

struct CaptureProxy {
  explicit CaptureProxy(uint64_t file_bytes) {
    char name[] = "/tmp/capture_driver_test.XXXXXX";
    dir = ::mkdtemp(name);
    DriverConfig config;
    config.listen = *Resolve("127.0.0.1:0", true);
    config.workers = 2;
    config.handle_signals = false;
    config.drain_timeout_ms = 2000;
    config.capture.dir = dir;
    config.capture.file_bytes = file_bytes;
    driver = std::make_unique<Driver>(
        std::move(config), services, env,
        [this](UnitId id, ConnId, bool) { return std::make_unique<RecordingUnit>(id, changes); });
    EXPECT_TRUE(driver->Listen().ok());
    runner = std::thread([this] { EXPECT_TRUE(driver->Run().ok()); });
  }
  ~CaptureProxy() { std::filesystem::remove_all(dir); }
  void Stop() {
    driver->Shutdown();
    runner.join();
  }

  std::string dir;
  NoServices services;
  RealEnvironment env;
  std::atomic<int> changes{0};
  std::unique_ptr<Driver> driver;
  std::thread runner;
};

TEST(CaptureDriverTest, ToggleSwitchesEveryLiveUnitOffAndOnIntoANewFile) {
  CaptureProxy setup(uint64_t{64} << 20);
  const int fd = ConnectTo(setup.driver->listen_port());
  RoundTrip(fd, "one");  // captured: the unit was told at admission
  const int before_off = setup.changes.load();
  setup.driver->ToggleCapture();
  ASSERT_TRUE(WaitFor([&] { return setup.changes.load() > before_off; }));
  RoundTrip(fd, "two");  // not captured
  const int before_on = setup.changes.load();
  setup.driver->ToggleCapture();
  ASSERT_TRUE(WaitFor([&] { return setup.changes.load() > before_on; }));
  RoundTrip(fd, "three");
  ::close(fd);
  setup.Stop();
  const auto files = ReadFiles(setup.dir);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0], (std::vector<std::string>{"file 1", "one"}));
  EXPECT_EQ(files[1], (std::vector<std::string>{"file 2", "three"}));
  EXPECT_EQ(setup.driver->capture_stats().records_written, 4u)
      << "discarded " << setup.driver->capture_stats().records_discarded << " dropped "
      << setup.driver->capture_stats().records_dropped;
}

TEST(CaptureDriverTest, AFullFileIsFollowedByOneEveryUnitHearsOf) {
  CaptureProxy setup(70'000);
  const int busy = ConnectTo(setup.driver->listen_port());
  const int idle = ConnectTo(setup.driver->listen_port());
  RoundTrip(idle, "idle");
  const std::string chunk(1000, 'x');
  for (int i = 0; i < 100; ++i) RoundTrip(busy, chunk);  // about 100 kB of records
  // The idle unit hears of the new file too, without saying anything.
  ASSERT_TRUE(WaitFor([&] { return setup.changes.load() >= 4; }));
  ::close(busy);
  ::close(idle);
  setup.Stop();
  const auto files = ReadFiles(setup.dir);
  ASSERT_GE(files.size(), 2u);
  // Both units begin the second file with their marker, as every live session begins a new
  // file with its snapshot.
  ASSERT_GE(files[1].size(), 2u);
  EXPECT_EQ(files[1][0], "file 2");
  EXPECT_EQ(std::count(files[1].begin(), files[1].end(), "file 2"), 2);
  size_t chunks = 0;
  for (const auto& file : files) chunks += std::count(file.begin(), file.end(), chunk);
  EXPECT_EQ(chunks, 100u) << "every record is in some file";
}

}  // namespace
}  // namespace switchyard::io_real
