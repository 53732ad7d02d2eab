// The capture log's writer (DESIGN.md section 6): a thread that takes encoded trace records from
// a bounded queue and writes them into size-rotated files, mode 0600. Workers never wait for it:
// when the queue is full their records are dropped and counted, and the next write says how
// many with a records-dropped record.
//
// Files and epochs. Every file has an epoch number, and every record batch says which epoch its
// records were made for (the epoch the unit last heard of in a CaptureChanged). A capture that
// starts opens a file under a new epoch; a file that reaches file_bytes is followed, between two
// batches, by a new one under the next epoch, and the driver tells every unit, which answers
// with a snapshot of each live session. Batches of the old epoch still on their way (queued, or
// from units that have not heard yet) go on into the old file, kept open until the next rotation
// or for a second, so that in each file a session's records begin with its snapshot or its
// session-open. A file can therefore exceed file_bytes by what was queued when it filled (at
// most queue_bytes) and by what units made before they heard; one that grows past file_bytes +
// queue_bytes that way is closed all the same, and the rest of its epoch goes to the new file.
// Beyond files_kept files, the oldest in the directory are removed.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/base/types.h"
#include "core/trace/encoder.h"
#include "core/trace/record.h"

namespace switchyard::io_real {

inline constexpr uint64_t kCaptureFileBytesDefault = uint64_t{64} << 20;
inline constexpr int kCaptureFilesKeptDefault = 16;
inline constexpr size_t kCaptureQueueBytesDefault = size_t{64} << 20;
// How long a file stays open for late batches of its epoch after the next file began.
inline constexpr int64_t kCapturePreviousFileOpenMs = 1'000;
// Bytes gathered before one write(2); a batch larger than this is written on its own.
inline constexpr size_t kCaptureWriteBytesMax = size_t{1} << 20;
// Queued records wait at most this long for the writer, or until this many bytes are queued:
// the writer is not woken for every unit run.
inline constexpr int64_t kCaptureWriteIntervalMs = 20;
inline constexpr size_t kCaptureWakeBytes = size_t{1} << 20;

struct CaptureConfig {
  std::string dir;  // empty: capture is not available
  bool start_on = true;
  uint64_t file_bytes = kCaptureFileBytesDefault;
  int files_kept = kCaptureFilesKeptDefault;
  size_t queue_bytes = kCaptureQueueBytesDefault;
  std::string proxy_id;
  trace::KeyValues settings;  // written into every file header
  uint32_t record_body_size_max = trace::kRecordBodySizeMaxDefault;
};

struct CaptureStats {
  uint64_t records_written = 0;
  uint64_t records_dropped = 0;    // the queue was full, or a record was over the bound
  uint64_t records_discarded = 0;  // arrived for a capture that had already ended
  uint64_t bytes_written = 0;
  uint64_t files_opened = 0;
  uint64_t files_removed = 0;
};

// File names sort in the order they were written: capture start (UTC), then epoch.
//   capture-20240131T120000.250Z-000001.trace
std::string CaptureFileName(int64_t start_unix_us, uint64_t epoch);
bool IsCaptureFileName(std::string_view name);

class CaptureWriter {
 public:
  // `wake` is called from the writer thread when the driver has notices to take.
  CaptureWriter(CaptureConfig config, std::function<void()> wake);
  // Writes everything queued, closes the files and joins the thread.
  ~CaptureWriter();
  CaptureWriter(const CaptureWriter&) = delete;
  CaptureWriter& operator=(const CaptureWriter&) = delete;

  // --- The driver's loop thread ---
  // Starts a capture whose record times count from `start`; returns its first epoch. The file
  // is opened by the writer thread (a failure comes back as a notice).
  uint64_t Begin(Instant start, int64_t start_unix_us);
  // Ends the capture: what is queued is written, then the files are closed.
  void End();
  // Waits until everything handed in so far is written (at shutdown, so that the files are
  // complete when the proxy says it is done).
  void WaitIdle();
  struct Notice {
    enum class Kind { kNewFile, kFailed };
    Kind kind = Kind::kNewFile;
    uint64_t capture = 0;  // the first epoch of the capture it concerns
    uint64_t epoch = 0;    // kNewFile: the new file's
    std::string error;     // kFailed
  };
  std::vector<Notice> TakeNotices();
  bool HasNotices() const { return has_notices_.load(std::memory_order_acquire); }

  // --- Any worker ---
  // Hands in `records` whole encoded records made for `epoch`, and `refused` more that could
  // not be encoded (over the record bound). Never waits for I/O; false when the queue is full
  // and the records were dropped.
  bool Offer(uint64_t epoch, std::string bytes, uint64_t records, uint64_t refused = 0);

  // The capture and the file being written now, as the writer thread last published them (any
  // thread): a worker tells a unit that is recording a long burst about a new file at once,
  // without waiting for the driver's broadcast to reach it at its next run.
  struct Current {
    uint64_t capture = 0;  // 0: no capture is being written
    uint64_t epoch = 0;
    Instant start;
  };
  Current current() const;

  const CaptureConfig& config() const { return config_; }
  CaptureStats stats() const;
  // While blocked the writer thread takes nothing from the queue (tests of backpressure).
  void BlockForTest(bool blocked);

 private:
  struct Item {
    enum class Kind { kRecords, kBegin, kEnd };
    Kind kind = Kind::kRecords;
    uint64_t epoch = 0;
    std::string bytes;
    uint64_t records = 0;
    Instant start;
    int64_t start_unix_us = 0;
  };
  struct File {
    int fd = -1;
    uint64_t epoch = 0;
    uint64_t bytes = 0;
    std::string path;
    Instant superseded_at;  // when the next file began (previous_ only)
    bool open() const { return fd >= 0; }
  };

  void Push(Item item);
  void WriterMain();
  void Process(Item& item);
  void ProcessRecords(Item& item);
  void BeginCapture(const Item& item);
  void EndCapture();
  void Rotate();
  bool OpenFile(uint64_t epoch, File* file);
  void CloseFile(File* file);
  // Writes what is gathered for `target_`; false (and the capture fails) on an error.
  bool FlushPending();
  bool WriteAll(File& file, std::string_view bytes);
  void WriteDropped(uint64_t count);
  void Fail(std::string error);
  void RemoveOldFiles();
  void Notify(Notice notice);
  void Publish();

  const CaptureConfig config_;
  const std::function<void()> wake_;
  const trace::TraceEncoder encoder_;
  std::atomic<uint64_t> next_epoch_{0};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;  // the writer took the last item and wrote it
  bool busy_ = false;                // the writer is writing items it took
  std::deque<Item> queue_;
  size_t queued_bytes_ = 0;
  uint64_t dropped_unreported_ = 0;
  bool writer_waiting_ = false;
  bool writer_idle_ = false;      // waiting with nothing queued
  bool control_pending_ = false;  // a Begin, an End or a test's block/unblock
  bool stopping_ = false;
  bool blocked_ = false;
  std::vector<Notice> notices_;
  std::atomic<bool> has_notices_{false};
  std::atomic<uint64_t> published_capture_{0};
  std::atomic<int64_t> published_start_us_{0};
  std::atomic<uint64_t> published_epoch_{0};  // stored last, loaded first
  std::atomic<uint64_t> records_written_{0}, records_dropped_{0}, records_discarded_{0},
      bytes_written_{0}, files_opened_{0}, files_removed_{0};

  // The writer thread's own.
  File current_;
  File previous_;
  File* target_ = nullptr;  // the file pending_ goes to
  std::string pending_;
  uint64_t capture_ = 0;  // the first epoch of the capture being written, 0 for none
  Instant capture_start_;
  int64_t capture_start_unix_us_ = 0;
  uint64_t dropped_to_report_ = 0;
  uint64_t marker_sequence_ = 0;

  std::thread thread_;
};

}  // namespace switchyard::io_real
