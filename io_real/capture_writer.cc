// The capture log's writer thread: see capture_writer.h.
#include "io_real/capture_writer.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <utility>

#include "absl/strings/str_format.h"
#include "core/base/check.h"
#include "core/base/strings.h"
#include "io_real/log.h"

namespace switchyard::io_real {
namespace {

constexpr std::string_view kFilePrefix = "capture-";
constexpr std::string_view kFileSuffix = ".trace";

// The driver's clock (io_real Now()): monotonic microseconds.
Instant MonotonicNow() {
  using std::chrono::duration_cast;
  using std::chrono::microseconds;
  using std::chrono::steady_clock;
  return Instant{duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count()};
}

}  // namespace

std::string CaptureFileName(int64_t start_unix_us, uint64_t epoch) {
  const time_t seconds = static_cast<time_t>(start_unix_us / 1'000'000);
  tm utc{};
  ::gmtime_r(&seconds, &utc);
  // Milliseconds too: a proxy restarted within the second must not meet its old names.
  return absl::StrFormat("%s%04d%02d%02dT%02d%02d%02d.%03dZ-%06d%s", kFilePrefix,
                         utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min,
                         utc.tm_sec, start_unix_us / 1000 % 1000, epoch, kFileSuffix);
}

bool IsCaptureFileName(std::string_view name) {
  return name.size() > kFilePrefix.size() + kFileSuffix.size() && name.starts_with(kFilePrefix) &&
         name.ends_with(kFileSuffix);
}

CaptureWriter::CaptureWriter(CaptureConfig config, std::function<void()> wake)
    : config_(std::move(config)), wake_(std::move(wake)), encoder_(config_.record_body_size_max) {
  // The writer thread takes no signals: the driver reads them from its signalfd, which only
  // works while every thread blocks them, and this thread may start before the driver blocks.
  sigset_t all;
  sigset_t old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_BLOCK, &all, &old);
  thread_ = std::thread([this] { WriterMain(); });
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

CaptureWriter::~CaptureWriter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    blocked_ = false;
  }
  cv_.notify_one();
  thread_.join();
}

// ---------------------------------------------------------------- the driver's side

void CaptureWriter::Push(Item item) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(item));
    control_pending_ = true;
  }
  cv_.notify_one();
}

uint64_t CaptureWriter::Begin(Instant start, int64_t start_unix_us) {
  const uint64_t epoch = ++next_epoch_;
  Item item;
  item.kind = Item::Kind::kBegin;
  item.epoch = epoch;
  item.start = start;
  item.start_unix_us = start_unix_us;
  Push(std::move(item));
  return epoch;
}

void CaptureWriter::End() {
  Item item;
  item.kind = Item::Kind::kEnd;
  Push(std::move(item));
}

void CaptureWriter::WaitIdle() {
  std::unique_lock<std::mutex> lock(mu_);
  control_pending_ = true;  // no waiting for the interval
  cv_.notify_one();
  idle_cv_.wait(lock, [&] { return (queue_.empty() || blocked_) && !busy_; });
}

std::vector<CaptureWriter::Notice> CaptureWriter::TakeNotices() {
  std::lock_guard<std::mutex> lock(mu_);
  has_notices_.store(false, std::memory_order_release);
  return std::exchange(notices_, {});
}

bool CaptureWriter::Offer(uint64_t epoch, std::string bytes, uint64_t records, uint64_t refused) {
  bool accepted = true;
  bool notify = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    dropped_unreported_ += refused;
    records_dropped_.fetch_add(refused, std::memory_order_relaxed);
    if (records > 0) {
      if (queued_bytes_ + bytes.size() > config_.queue_bytes) {
        // Full: the proxy never waits for its log. The writer says so in the file later.
        dropped_unreported_ += records;
        records_dropped_.fetch_add(records, std::memory_order_relaxed);
        accepted = false;
      } else {
        queued_bytes_ += bytes.size();
        Item item;
        item.epoch = epoch;
        item.bytes = std::move(bytes);
        item.records = records;
        queue_.push_back(std::move(item));
        // The writer comes by itself every kCaptureWriteIntervalMs; waking it for every batch
        // would cost a futex call and a context switch per unit run.
        // An idle writer (nothing was queued) is woken once, to start its interval.
        notify = writer_idle_ || (writer_waiting_ && queued_bytes_ >= kCaptureWakeBytes);
        if (notify) writer_waiting_ = writer_idle_ = false;  // one wake-up is enough
      }
    }
  }
  if (notify) cv_.notify_one();
  return accepted;
}

CaptureWriter::Current CaptureWriter::current() const {
  Current current;
  current.epoch = published_epoch_.load(std::memory_order_acquire);
  current.capture = published_capture_.load(std::memory_order_relaxed);
  current.start = Instant{published_start_us_.load(std::memory_order_relaxed)};
  return current;
}

void CaptureWriter::Publish() {
  const bool writing = capture_ != 0 && current_.open();
  published_capture_.store(writing ? capture_ : 0, std::memory_order_relaxed);
  published_start_us_.store(capture_start_.us, std::memory_order_relaxed);
  published_epoch_.store(writing ? current_.epoch : 0, std::memory_order_release);
}

CaptureStats CaptureWriter::stats() const {
  CaptureStats stats;
  stats.records_written = records_written_.load(std::memory_order_relaxed);
  stats.records_dropped = records_dropped_.load(std::memory_order_relaxed);
  stats.records_discarded = records_discarded_.load(std::memory_order_relaxed);
  stats.bytes_written = bytes_written_.load(std::memory_order_relaxed);
  stats.files_opened = files_opened_.load(std::memory_order_relaxed);
  stats.files_removed = files_removed_.load(std::memory_order_relaxed);
  return stats;
}

void CaptureWriter::BlockForTest(bool blocked) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    blocked_ = blocked;
    control_pending_ = true;
  }
  cv_.notify_one();
}

void CaptureWriter::Notify(Notice notice) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    notices_.push_back(std::move(notice));
    has_notices_.store(true, std::memory_order_release);
  }
  wake_();
}

// ---------------------------------------------------------------- the writer thread

void CaptureWriter::WriterMain() {
  const auto grace = std::chrono::milliseconds(kCapturePreviousFileOpenMs);
  auto close_stale_previous = [&] {
    if (previous_.open() &&
        MonotonicNow().us - previous_.superseded_at.us >= MsToUs(kCapturePreviousFileOpenMs)) {
      if (target_ == &previous_) FlushPending();
      CloseFile(&previous_);
      RemoveOldFiles();
    }
  };
  const auto interval = std::chrono::milliseconds(kCaptureWriteIntervalMs);
  bool interval_passed = false;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (stopping_ && queue_.empty() && !blocked_) break;
    const bool due =
        !blocked_ && !queue_.empty() &&
        (stopping_ || control_pending_ || interval_passed || queued_bytes_ >= kCaptureWakeBytes);
    if (!due) {
      // Records wait at most an interval; a start, an end or a full megabyte wakes it at once.
      writer_waiting_ = true;
      if (!queue_.empty()) {
        interval_passed = cv_.wait_for(lock, interval) == std::cv_status::timeout;
      } else {
        writer_idle_ = true;
        if (previous_.open()) {
          cv_.wait_for(lock, grace);
        } else {
          cv_.wait(lock);
        }
      }
      writer_waiting_ = writer_idle_ = false;
      lock.unlock();
      close_stale_previous();
      lock.lock();
      continue;
    }
    interval_passed = false;
    control_pending_ = false;
    busy_ = true;
    std::deque<Item> items;
    items.swap(queue_);
    const size_t taken = queued_bytes_;
    const uint64_t dropped = std::exchange(dropped_unreported_, 0);
    lock.unlock();
    // The drops happened after these items were queued: reported after them (or at the end
    // of their capture, should one of them end it).
    dropped_to_report_ += dropped;
    for (Item& item : items) Process(item);
    if (dropped_to_report_ > 0 && current_.open()) WriteDropped(dropped_to_report_);
    FlushPending();
    close_stale_previous();
    lock.lock();
    // Counted out only now: the bound covers the bytes being written too.
    queued_bytes_ -= taken;
    busy_ = false;
    if (queue_.empty()) idle_cv_.notify_all();
  }
  lock.unlock();
  EndCapture();
}

void CaptureWriter::Process(Item& item) {
  switch (item.kind) {
    case Item::Kind::kRecords:
      return ProcessRecords(item);
    case Item::Kind::kBegin:
      return BeginCapture(item);
    case Item::Kind::kEnd:
      return EndCapture();
  }
}

void CaptureWriter::ProcessRecords(Item& item) {
  File* file = nullptr;
  if (capture_ != 0 && item.epoch >= capture_ && current_.open()) {
    if (item.epoch == current_.epoch) {
      file = &current_;
    } else if (previous_.open() && item.epoch <= previous_.epoch) {
      file = &previous_;  // made before its unit heard of the newer file
    } else {
      file = &current_;  // older still, and its file is closed: the nearest open one
    }
  }
  if (file == nullptr) {
    // Made for a capture that has ended (or failed): nowhere to go.
    records_discarded_.fetch_add(item.records, std::memory_order_relaxed);
    return;
  }
  if (target_ != file && !FlushPending()) return;
  target_ = file;
  pending_.append(item.bytes);
  records_written_.fetch_add(item.records, std::memory_order_relaxed);
  if (pending_.size() >= kCaptureWriteBytesMax && !FlushPending()) return;
  if (file == &previous_ &&
      previous_.bytes + pending_.size() >= config_.file_bytes + config_.queue_bytes) {
    // More than a full queue after its end: something is wrong with its units, not with the
    // writer. The old file has had its share; the rest of its epoch goes to the new one.
    if (!FlushPending()) return;
    CloseFile(&previous_);
    RemoveOldFiles();
    return;
  }
  // Rotation happens between batches, so never inside a record.
  if (file == &current_ && current_.bytes + pending_.size() >= config_.file_bytes) Rotate();
}

void CaptureWriter::BeginCapture(const Item& item) {
  EndCapture();
  capture_ = item.epoch;
  capture_start_ = item.start;
  capture_start_unix_us_ = item.start_unix_us;
  marker_sequence_ = 0;
  if (OpenFile(item.epoch, &current_)) RemoveOldFiles();
  Publish();
}

void CaptureWriter::EndCapture() {
  FlushPending();
  if (dropped_to_report_ > 0 && current_.open()) {
    WriteDropped(dropped_to_report_);
    FlushPending();
  }
  CloseFile(&previous_);
  CloseFile(&current_);
  target_ = nullptr;
  capture_ = 0;
  Publish();
}

void CaptureWriter::Rotate() {
  if (!FlushPending()) return;
  if (previous_.open()) CloseFile(&previous_);
  previous_ = std::exchange(current_, File{});
  previous_.superseded_at = MonotonicNow();
  target_ = nullptr;
  const uint64_t epoch = ++next_epoch_;
  if (!OpenFile(epoch, &current_)) return;
  Publish();
  RemoveOldFiles();
  Notify(Notice{Notice::Kind::kNewFile, capture_, epoch, {}});
}

bool CaptureWriter::OpenFile(uint64_t epoch, File* file) {
  CHECK(!file->open());
  const std::string path =
      (std::filesystem::path(config_.dir) / CaptureFileName(capture_start_unix_us_, epoch))
          .string();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    Fail(Cat("cannot create ", path, ": ", std::strerror(errno)));
    return false;
  }
  ::fchmod(fd, 0600);  // whatever the umask left
  file->fd = fd;
  file->epoch = epoch;
  file->bytes = 0;
  file->path = path;
  trace::TraceHeader header;
  header.capture_start_unix_us = capture_start_unix_us_;
  header.record_body_size_max = config_.record_body_size_max;
  header.proxy_id = config_.proxy_id;
  header.settings = config_.settings;
  std::string bytes;
  const absl::Status status = trace::AppendHeader(header, bytes);
  CHECK(status.ok()) << "capture header: " << status;
  files_opened_.fetch_add(1, std::memory_order_relaxed);
  if (!WriteAll(*file, bytes)) {
    Fail(Cat("cannot write ", path, ": ", std::strerror(errno)));
    return false;
  }
  Log("event=capture_file path=%s epoch=%d", LogValue(path), epoch);
  return true;
}

void CaptureWriter::CloseFile(File* file) {
  if (!file->open()) return;
  if (target_ == file) target_ = nullptr;
  ::close(file->fd);
  *file = File{};
}

bool CaptureWriter::FlushPending() {
  if (pending_.empty()) return true;
  if (target_ == nullptr || !target_->open()) {
    pending_.clear();
    return true;
  }
  const bool ok = WriteAll(*target_, pending_);
  pending_.clear();
  if (!ok) Fail(Cat("cannot write ", target_->path, ": ", std::strerror(errno)));
  return ok;
}

bool CaptureWriter::WriteAll(File& file, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(file.fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
    file.bytes += static_cast<uint64_t>(n);
    bytes_written_.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
  }
  return true;
}

void CaptureWriter::WriteDropped(uint64_t count) {
  trace::Record record;
  record.sequence = marker_sequence_++;
  record.time_us = std::max<int64_t>(0, MonotonicNow().us - capture_start_.us);
  record.body = trace::RecordsDropped{count};
  if (target_ != &current_ && !FlushPending()) return;
  target_ = &current_;
  CHECK(encoder_.Append(record, pending_).ok());
  dropped_to_report_ = 0;
}

void CaptureWriter::Fail(std::string error) {
  Log("event=capture_failed error=%s", LogValue(error));
  pending_.clear();
  target_ = nullptr;
  CloseFile(&previous_);
  CloseFile(&current_);
  const uint64_t capture = std::exchange(capture_, 0);
  Publish();
  Notify(Notice{Notice::Kind::kFailed, capture, 0, std::move(error)});
}

void CaptureWriter::RemoveOldFiles() {
  std::error_code error;
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(config_.dir, error)) {
    const std::string name = entry.path().filename().string();
    if (IsCaptureFileName(name)) names.push_back(name);
  }
  if (error || names.size() <= static_cast<size_t>(config_.files_kept)) return;
  std::sort(names.begin(), names.end());
  size_t excess = names.size() - static_cast<size_t>(config_.files_kept);
  for (const std::string& name : names) {
    if (excess == 0) break;
    const std::string path = (std::filesystem::path(config_.dir) / name).string();
    if (path == current_.path || path == previous_.path) continue;  // still being written
    if (::unlink(path.c_str()) == 0) files_removed_.fetch_add(1, std::memory_order_relaxed);
    --excess;
  }
}

}  // namespace switchyard::io_real
