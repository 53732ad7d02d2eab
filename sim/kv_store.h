// The data of one simulated PostgreSQL node: the committed rows of table `kv`, and the WAL that
// produced them, one record per committed write transaction, each ending at an LSN. A primary
// appends records; a replica copies them from another store up to an LSN the simulator picks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace switchyard::sim {

// Where `initdb` leaves a fresh cluster's WAL, give or take: keeps LSNs looking real.
inline constexpr uint64_t kLsnInitial = 0x1000000;
// A WAL record's fixed overhead and alignment, so LSN steps look like PostgreSQL's.
inline constexpr uint64_t kWalRecordHeaderBytes = 24;
inline constexpr uint64_t kWalAlignBytes = 8;
// PostgreSQL's end-of-recovery record, written when a replica is promoted.
inline constexpr uint64_t kEndOfRecoveryRecordBytes = 40;

// "16/B374D848": PostgreSQL's text form of an LSN.
std::string FormatLsn(uint64_t lsn);
// The inverse; an error for anything PostgreSQL's pg_lsn input would reject.
absl::StatusOr<uint64_t> ParseLsn(std::string_view text);

// A row of kv; v may be SQL NULL.
using Value = std::optional<std::string>;

// One row change: the row with key `key` now holds `value`, or is gone (`deleted`).
struct RowChange {
  std::string key;
  bool deleted = false;
  Value value;
  friend bool operator==(const RowChange&, const RowChange&) = default;
};

// One committed write transaction as the WAL holds it. `origin_*` say where it was first
// committed, so oracles can check that no write ever ran on a replica and none ran twice.
struct WalRecord {
  uint64_t start_lsn = 0;
  uint64_t end_lsn = 0;  // the commit LSN that pg_current_wal_lsn() reports after it
  int timeline = 1;
  std::string origin_node;
  uint64_t origin_session = 0;
  std::vector<std::string> statements;  // the write statements, in order; empty for markers
  std::vector<RowChange> changes;       // empty for an end-of-recovery record
  friend bool operator==(const WalRecord&, const WalRecord&) = default;
};

struct KvStoreLimits {
  // Records kept for replicas to copy; older ones are recycled, as WAL segments are.
  size_t wal_records_max = size_t{1} << 20;
};

class KvStore {
 public:
  explicit KvStore(KvStoreLimits limits = {}) : limits_(limits) {}

  // --- Reads of committed data ---
  const std::map<std::string, Value, std::less<>>& rows() const { return rows_; }
  // nullopt: no such row.
  std::optional<Value> Get(std::string_view key) const;

  // --- Writes (a primary) ---
  // Applies `changes` atomically as one WAL record on `timeline` and returns its end LSN.
  // A transaction without changes writes nothing and keeps the LSN.
  uint64_t Commit(std::vector<RowChange> changes, std::vector<std::string> statements, int timeline,
                  std::string_view origin_node, uint64_t origin_session);
  // The record promotion writes: moves the LSN on a new timeline without changing data.
  uint64_t AppendEndOfRecovery(int timeline, std::string_view origin_node);

  // --- Replication (a replica) ---
  // Copies and applies `source`'s records after our LSN, up to and including `upto_lsn`
  // (records are applied whole: one ending after `upto_lsn` waits). Fails, applying nothing,
  // if our history is not a prefix of the source's (we diverged: the node needs a rebuild) or if
  // the source recycled a record we still need.
  absl::Status ReplicateFrom(const KvStore& source, uint64_t upto_lsn);
  // Becomes an exact copy of `source` (a base backup).
  void CopyFrom(const KvStore& source);

  // --- Positions ---
  uint64_t lsn() const { return lsn_; }
  // The WAL still kept, oldest first.
  const std::vector<WalRecord>& wal() const { return wal_; }
  // Records ever appended or applied here, recycled ones included.
  uint64_t records_total() const { return records_recycled_ + wal_.size(); }

  // Always-on self-check: LSNs strictly increase and tie up with the current position.
  void CheckInvariants() const;

 private:
  void Append(WalRecord record);
  void Apply(const std::vector<RowChange>& changes);
  // Index of the first kept record with end_lsn > lsn, or wal.size().
  static size_t FirstAfter(const std::vector<WalRecord>& wal, uint64_t lsn);

  KvStoreLimits limits_;
  std::map<std::string, Value, std::less<>> rows_;
  std::vector<WalRecord> wal_;
  uint64_t records_recycled_ = 0;
  uint64_t lsn_ = kLsnInitial;
};

}  // namespace switchyard::sim
