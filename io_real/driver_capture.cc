// The driver's side of traffic capture (DESIGN.md section 6), on the loop thread: starting and
// stopping it (at Run(), on SIGUSR1 or ToggleCapture(), at shutdown), and telling every unit
// about it, and about each new capture file the writer begins. The workers hand the units'
// records to the writer themselves (driver_run.cc).
#include <algorithm>
#include <chrono>
#include <mutex>
#include <variant>

#include "io_real/driver_internal.h"
#include "io_real/log.h"

namespace switchyard::io_real {

void DriverImpl::ServiceCapture(Instant now) {
  if (capture_toggle_requested_.exchange(false)) {
    if (!capture_) {
      Log("event=capture state=unavailable reason=%s", "no_capture_dir");
    } else if (capture_on_) {
      StopCapture("signal");
    } else if (!draining_) {
      StartCapture(now);
    }
  }
  if (!capture_ || !capture_->HasNotices()) return;
  for (CaptureWriter::Notice& notice : capture_->TakeNotices()) {
    // A notice about a capture that has since ended (or restarted) is stale.
    if (!capture_on_ || notice.capture != capture_id_) continue;
    if (notice.kind == CaptureWriter::Notice::Kind::kFailed) {
      StopCapture("failed");
      continue;
    }
    capture_epoch_ = notice.epoch;  // a new file: every live session snapshots into it
    std::lock_guard<std::mutex> lock(mu_);
    BroadcastCaptureLocked();
  }
}

void DriverImpl::StartCapture(Instant now) {
  const int64_t unix_us = std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  capture_id_ = capture_->Begin(now, unix_us);
  capture_epoch_ = capture_id_;
  capture_start_ = now;
  capture_on_ = true;
  Log("event=capture state=on dir=%s epoch=%d", LogValue(config_.capture.dir), capture_epoch_);
  std::lock_guard<std::mutex> lock(mu_);
  BroadcastCaptureLocked();
}

void DriverImpl::StopCapture(std::string_view reason, bool wait) {
  capture_->End();
  if (wait) capture_->WaitIdle();
  capture_on_ = false;
  const CaptureStats stats = capture_->stats();
  Log("event=capture state=off dir=%s reason=%s records_written=%d records_dropped=%d "
      "bytes_written=%d files_opened=%d files_removed=%d",
      LogValue(config_.capture.dir), reason, stats.records_written, stats.records_dropped,
      stats.bytes_written, stats.files_opened, stats.files_removed);
  std::lock_guard<std::mutex> lock(mu_);
  BroadcastCaptureLocked();
}

void DriverImpl::BroadcastCaptureLocked() {
  const CaptureChanged change = CurrentCapture();
  for (auto& [id, record] : units_) {
    auto waiting = std::find_if(record->inbox.begin(), record->inbox.end(), [](const Event& e) {
      return std::holds_alternative<CaptureChanged>(e);
    });
    if (waiting != record->inbox.end()) {
      *waiting = change;
      continue;
    }
    record->inbox.push_back(change);
    WakeUnitLocked(id);
  }
}

}  // namespace switchyard::io_real
