// The simulated node's data and WAL: commits append records, replicas copy them.
#include "sim/kv_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "core/base/check.h"

namespace switchyard::sim {
namespace {

uint64_t AlignUp(uint64_t n) { return (n + kWalAlignBytes - 1) / kWalAlignBytes * kWalAlignBytes; }

uint64_t RecordBytes(const std::vector<RowChange>& changes) {
  uint64_t bytes = kWalRecordHeaderBytes;
  for (const RowChange& change : changes) {
    // A heap tuple header's worth per row plus the data, as a rough stand-in for PostgreSQL.
    bytes += 24 + change.key.size() + (change.value ? change.value->size() : 0);
  }
  return AlignUp(bytes);
}

bool ParseHex32(std::string_view text, uint32_t* out) {
  if (text.empty() || text.size() > 8) return false;
  uint64_t value = 0;
  for (char c : text) {
    int digit = 0;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else {
      return false;
    }
    value = value * 16 + static_cast<uint64_t>(digit);
  }
  *out = static_cast<uint32_t>(value);
  return true;
}

}  // namespace

std::string FormatLsn(uint64_t lsn) {
  return absl::StrFormat("%X/%X", static_cast<uint32_t>(lsn >> 32), static_cast<uint32_t>(lsn));
}

absl::StatusOr<uint64_t> ParseLsn(std::string_view text) {
  const size_t slash = text.find('/');
  uint32_t high = 0;
  uint32_t low = 0;
  if (slash == std::string_view::npos || !ParseHex32(text.substr(0, slash), &high) ||
      !ParseHex32(text.substr(slash + 1), &low)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("invalid input syntax for type pg_lsn: \"%s\"", text));
  }
  return (uint64_t{high} << 32) | low;
}

std::optional<Value> KvStore::Get(std::string_view key) const {
  auto it = rows_.find(key);
  if (it == rows_.end()) return std::nullopt;
  return it->second;
}

uint64_t KvStore::Commit(std::vector<RowChange> changes, std::vector<std::string> statements,
                         int timeline, std::string_view origin_node, uint64_t origin_session) {
  if (changes.empty()) return lsn_;
  WalRecord record;
  record.start_lsn = lsn_;
  record.end_lsn = lsn_ + RecordBytes(changes);
  record.timeline = timeline;
  record.origin_node = std::string(origin_node);
  record.origin_session = origin_session;
  record.statements = std::move(statements);
  record.changes = std::move(changes);
  Apply(record.changes);
  Append(std::move(record));
  return lsn_;
}

uint64_t KvStore::AppendEndOfRecovery(int timeline, std::string_view origin_node) {
  WalRecord record;
  record.start_lsn = lsn_;
  record.end_lsn = lsn_ + kEndOfRecoveryRecordBytes;
  record.timeline = timeline;
  record.origin_node = std::string(origin_node);
  Append(std::move(record));
  return lsn_;
}

void KvStore::Append(WalRecord record) {
  CHECK_EQ(record.start_lsn, lsn_);
  CHECK_GT(record.end_lsn, record.start_lsn);
  lsn_ = record.end_lsn;
  wal_.push_back(std::move(record));
  // Recycle the oldest records in one batch once over the bound, but always keep the last one:
  // it is what a follower's history is compared against.
  if (wal_.size() > limits_.wal_records_max && wal_.size() > 1) {
    const size_t drop = std::min(wal_.size() - 1, std::max<size_t>(1, wal_.size() / 4));
    wal_.erase(wal_.begin(), wal_.begin() + static_cast<std::ptrdiff_t>(drop));
    records_recycled_ += drop;
  }
}

void KvStore::Apply(const std::vector<RowChange>& changes) {
  for (const RowChange& change : changes) {
    if (change.deleted) {
      rows_.erase(change.key);
    } else {
      rows_.insert_or_assign(change.key, change.value);
    }
  }
}

size_t KvStore::FirstAfter(const std::vector<WalRecord>& wal, uint64_t lsn) {
  auto it = std::upper_bound(wal.begin(), wal.end(), lsn,
                             [](uint64_t l, const WalRecord& r) { return l < r.end_lsn; });
  return static_cast<size_t>(it - wal.begin());
}

absl::Status KvStore::ReplicateFrom(const KvStore& source, uint64_t upto_lsn) {
  if (&source == this) return absl::InvalidArgumentError("a store cannot follow itself");
  // Our last record must be in the source's history, unchanged; otherwise we diverged.
  if (!wal_.empty()) {
    const WalRecord& ours = wal_.back();
    const size_t at = FirstAfter(source.wal_, ours.end_lsn - 1);
    if (at == source.wal_.size() || source.wal_[at].end_lsn != ours.end_lsn) {
      if (!source.wal_.empty() && source.wal_.front().start_lsn > ours.start_lsn) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "requested WAL segment containing %s has already been removed", FormatLsn(lsn_)));
      }
      return absl::FailedPreconditionError(absl::StrFormat(
          "replica at %s is not in the source's history (diverged)", FormatLsn(lsn_)));
    }
    if (!(source.wal_[at] == ours)) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "replica's record ending at %s differs from the source's (diverged on timeline %d)",
          FormatLsn(lsn_), ours.timeline));
    }
  } else if (lsn_ != source.lsn_ && (source.wal_.empty() || source.wal_.front().start_lsn > lsn_)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "requested WAL segment containing %s has already been removed", FormatLsn(lsn_)));
  }
  for (size_t i = FirstAfter(source.wal_, lsn_); i < source.wal_.size(); ++i) {
    const WalRecord& record = source.wal_[i];
    if (record.end_lsn > upto_lsn) break;
    if (record.start_lsn != lsn_) {
      return absl::FailedPreconditionError(
          absl::StrFormat("source record starts at %s, replica is at %s (diverged)",
                          FormatLsn(record.start_lsn), FormatLsn(lsn_)));
    }
    Apply(record.changes);
    Append(record);
  }
  return absl::OkStatus();
}

void KvStore::CopyFrom(const KvStore& source) {
  if (&source == this) return;
  rows_ = source.rows_;
  wal_ = source.wal_;
  records_recycled_ = source.records_recycled_;
  lsn_ = source.lsn_;
}

void KvStore::CheckInvariants() const {
  uint64_t previous_end = 0;
  for (const WalRecord& record : wal_) {
    CHECK_GT(record.end_lsn, record.start_lsn);
    CHECK_GE(record.start_lsn, previous_end);
    previous_end = record.end_lsn;
  }
  if (!wal_.empty()) {
    CHECK_EQ(wal_.back().end_lsn, lsn_);
  }
  CHECK_GE(lsn_, kLsnInitial);
  CHECK_LE(wal_.size(), std::max<size_t>(1, limits_.wal_records_max));
}

}  // namespace switchyard::sim
