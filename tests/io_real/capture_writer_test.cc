// The capture writer on a real directory: files read back with trace::ReadTrace, are mode 0600,
// rotate between records and keep only the newest; a blocked writer makes workers drop (never
// wait) and the file then says how many were dropped; late records of an old epoch go to the old
// file; a directory that cannot be written fails the capture with a notice.
#include "io_real/capture_writer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/trace/reader.h"

namespace switchyard::io_real {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

class TempDir {
 public:
  TempDir() {
    char name[] = "/tmp/capture_writer_test.XXXXXX";
    path_ = ::mkdtemp(name);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }
  // Capture files, oldest first.
  std::vector<std::string> Files() const {
    std::vector<std::string> files;
    for (const auto& entry : std::filesystem::directory_iterator(path_)) {
      if (IsCaptureFileName(entry.path().filename().string())) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    return files;
  }

 private:
  std::string path_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

trace::Record QueryRecord(uint64_t session, uint64_t sequence, size_t sql_bytes) {
  trace::Record record;
  record.direction = trace::Direction::kClientToProxy;
  record.session = session;
  record.sequence = sequence;
  std::string sql(sql_bytes, 'x');
  std::string bytes = "Q";
  const uint32_t length = static_cast<uint32_t>(4 + sql.size() + 1);
  for (int shift : {24, 16, 8, 0}) bytes.push_back(static_cast<char>(length >> shift));
  bytes += sql;
  bytes.push_back('\0');
  record.body = trace::Message{std::move(bytes)};
  return record;
}

// `count` records of one session, encoded as a worker would hand them in.
std::string Batch(uint64_t session, uint64_t first_sequence, int count, size_t sql_bytes = 100) {
  trace::TraceEncoder encoder;
  std::string bytes;
  for (int i = 0; i < count; ++i) {
    EXPECT_TRUE(encoder.Append(QueryRecord(session, first_sequence + i, sql_bytes), bytes).ok());
  }
  return bytes;
}

CaptureConfig Config(const std::string& dir) {
  CaptureConfig config;
  config.dir = dir;
  config.proxy_id = "test-proxy";
  config.settings = {{"sample_rate", "1.0"}, {"redact", "none"}};
  return config;
}

// Waits for the writer to publish epoch `epoch` (or a later one).
bool WaitForEpoch(const CaptureWriter& writer, uint64_t epoch) {
  const auto deadline = steady_clock::now() + milliseconds(5000);
  while (steady_clock::now() < deadline) {
    if (writer.current().epoch >= epoch) return true;
    std::this_thread::sleep_for(milliseconds(1));
  }
  return false;
}

// Waits for the writer to have taken `records` records (the writer comes every
// kCaptureWriteIntervalMs, or sooner when woken).
bool WaitForWritten(const CaptureWriter& writer, uint64_t records) {
  const auto deadline = steady_clock::now() + milliseconds(5000);
  while (steady_clock::now() < deadline) {
    if (writer.stats().records_written >= records) return true;
    std::this_thread::sleep_for(milliseconds(1));
  }
  return false;
}

TEST(CaptureWriterTest, FileReadsBackWithHeaderAndRecordsAndIsMode0600) {
  TempDir dir;
  const mode_t old_umask = ::umask(0);  // a permissive umask must not widen the mode
  {
    CaptureWriter writer(Config(dir.path()), [] {});
    const uint64_t epoch = writer.Begin(Instant{1000}, 1'700'000'000'000'000);
    EXPECT_TRUE(writer.Offer(epoch, Batch(7, 0, 10), 10));
    EXPECT_TRUE(writer.Offer(epoch, Batch(8, 0, 5), 5));
    writer.End();
  }  // the destructor writes what is queued
  ::umask(old_umask);
  ASSERT_EQ(dir.Files().size(), 1u);
  const std::string path = dir.Files()[0];
  EXPECT_NE(path.find("capture-20231114T221320.000Z-000001.trace"), std::string::npos) << path;
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  trace::TraceContents contents = trace::ReadTrace(ReadFile(path));
  ASSERT_TRUE(contents.status.ok()) << contents.status;
  ASSERT_TRUE(contents.header.has_value());
  EXPECT_EQ(contents.header->capture_start_unix_us, 1'700'000'000'000'000);
  EXPECT_EQ(contents.header->proxy_id, "test-proxy");
  EXPECT_EQ(contents.header->settings.size(), 2u);
  ASSERT_EQ(contents.records.size(), 15u);
  EXPECT_EQ(contents.records[0], QueryRecord(7, 0, 100));
  EXPECT_EQ(contents.records[14], QueryRecord(8, 4, 100));
}

TEST(CaptureWriterTest, RotatesBetweenRecordsAndKeepsOnlyTheNewestFiles) {
  TempDir dir;
  CaptureConfig config = Config(dir.path());
  config.file_bytes = 10'000;
  config.files_kept = 3;
  std::atomic<int> wakes{0};
  uint64_t offered = 0;
  std::vector<CaptureWriter::Notice> notices;
  {
    CaptureWriter writer(config, [&] { ++wakes; });
    writer.Begin(Instant{0}, 0);
    ASSERT_TRUE(WaitForEpoch(writer, 1));
    for (int i = 0; i < 30; ++i) {
      // As a unit does: records go to the newest file it has heard of.
      ASSERT_TRUE(writer.Offer(writer.current().epoch, Batch(1, offered, 7, 300), 7));
      offered += 7;
      ASSERT_TRUE(WaitForWritten(writer, offered));
      for (auto& notice : writer.TakeNotices()) notices.push_back(std::move(notice));
    }
    writer.End();
  }
  EXPECT_GT(wakes.load(), 0);
  ASSERT_FALSE(notices.empty());
  EXPECT_EQ(notices[0].kind, CaptureWriter::Notice::Kind::kNewFile);
  EXPECT_EQ(notices[0].capture, 1u);
  EXPECT_EQ(notices[0].epoch, 2u);
  const std::vector<std::string> files = dir.Files();
  ASSERT_EQ(files.size(), 3u) << "older files are removed";
  uint64_t previous_last = 0;
  size_t with_records = 0;
  for (const std::string& path : files) {
    trace::TraceContents contents = trace::ReadTrace(ReadFile(path));
    // A record split across files would show up as a truncated file.
    ASSERT_TRUE(contents.status.ok()) << path << ": " << contents.status;
    // The file the last batch's rotation began may hold nothing: the snapshots of live
    // sessions would have gone there.
    if (contents.records.empty()) continue;
    ++with_records;
    // The newest files hold the latest records, in order.
    EXPECT_GT(contents.records.front().sequence, previous_last);
    previous_last = contents.records.back().sequence;
  }
  EXPECT_GE(with_records, 2u);
  EXPECT_EQ(previous_last, offered - 1);
}

TEST(CaptureWriterTest, FullQueueDropsWithoutWaitingAndTheFileSaysHowMany) {
  TempDir dir;
  CaptureConfig config = Config(dir.path());
  config.queue_bytes = 64 << 10;
  uint64_t accepted = 0;
  uint64_t dropped = 0;
  {
    CaptureWriter writer(config, [] {});
    writer.BlockForTest(true);  // a writer stuck on a slow disk
    const uint64_t epoch = writer.Begin(Instant{0}, 0);
    const std::string batch = Batch(3, 0, 20, 300);  // about 7 KiB
    for (int i = 0; i < 40; ++i) {
      const auto before = steady_clock::now();
      const bool ok = writer.Offer(epoch, batch, 20);
      EXPECT_LT(steady_clock::now() - before, milliseconds(100)) << "a worker never waits";
      (ok ? accepted : dropped) += 20;
    }
    EXPECT_GT(accepted, 0u);
    EXPECT_GT(dropped, 0u);
    EXPECT_LE(accepted * 360, config.queue_bytes) << "the queue holds at most its bound";
    EXPECT_EQ(writer.stats().records_dropped, dropped);
    writer.BlockForTest(false);
    writer.End();
  }
  ASSERT_EQ(dir.Files().size(), 1u);
  trace::TraceContents contents = trace::ReadTrace(ReadFile(dir.Files()[0]));
  ASSERT_TRUE(contents.status.ok()) << contents.status;
  ASSERT_EQ(contents.records.size(), accepted + 1);
  const trace::Record& last = contents.records.back();
  ASSERT_EQ(last.kind(), trace::RecordKind::kRecordsDropped);
  EXPECT_EQ(std::get<trace::RecordsDropped>(last.body).count, dropped);
  EXPECT_EQ(last.session, 0u);
}

TEST(CaptureWriterTest, LateRecordsOfTheOldEpochGoToTheOldFile) {
  TempDir dir;
  CaptureConfig config = Config(dir.path());
  config.file_bytes = 10'000;
  {
    CaptureWriter writer(config, [] {});
    const uint64_t first = writer.Begin(Instant{0}, 0);
    ASSERT_TRUE(writer.Offer(first, Batch(1, 0, 40, 300), 40));  // fills the first file
    ASSERT_TRUE(WaitForEpoch(writer, first + 1));
    // A unit that has not heard of the new file yet, then one that has.
    ASSERT_TRUE(writer.Offer(first, Batch(1, 40, 2), 2));
    ASSERT_TRUE(writer.Offer(first + 1, Batch(2, 0, 3), 3));
    writer.End();
  }
  const std::vector<std::string> files = dir.Files();
  ASSERT_EQ(files.size(), 2u);
  trace::TraceContents old_file = trace::ReadTrace(ReadFile(files[0]));
  trace::TraceContents new_file = trace::ReadTrace(ReadFile(files[1]));
  ASSERT_TRUE(old_file.status.ok() && new_file.status.ok());
  EXPECT_EQ(old_file.records.size(), 42u);
  EXPECT_EQ(old_file.records.back().sequence, 41u);
  ASSERT_EQ(new_file.records.size(), 3u);
  EXPECT_EQ(new_file.records[0].session, 2u);
}

TEST(CaptureWriterTest, UnwritableDirectoryFailsTheCaptureWithANotice) {
  std::atomic<int> wakes{0};
  CaptureWriter writer(Config("/nonexistent/capture/dir"), [&] { ++wakes; });
  const uint64_t epoch = writer.Begin(Instant{0}, 0);
  const auto deadline = steady_clock::now() + milliseconds(5000);
  while (!writer.HasNotices() && steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  std::vector<CaptureWriter::Notice> notices = writer.TakeNotices();
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_EQ(notices[0].kind, CaptureWriter::Notice::Kind::kFailed);
  EXPECT_EQ(notices[0].capture, epoch);
  EXPECT_NE(notices[0].error.find("/nonexistent/capture/dir"), std::string::npos);
  EXPECT_GE(wakes.load(), 1);
  EXPECT_EQ(writer.current().capture, 0u);
  writer.Offer(epoch, Batch(1, 0, 3), 3);
  writer.End();
}

}  // namespace
}  // namespace switchyard::io_real
