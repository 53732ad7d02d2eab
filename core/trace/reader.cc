// The trace reader's framing: the header's fixed prefix, each record's length word, both bounded
// before anything is waited for, then CRC32C, then the bodies codec.cc decodes.
#include "core/trace/reader.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"
#include "core/base/check.h"
#include "core/trace/bytes.h"
#include "core/trace/codec.h"
#include "core/trace/crc32c.h"

namespace switchyard::trace {
namespace {

// An emptied buffer above this gives its memory back rather than keep a large record's peak.
constexpr size_t kIdleCapacityMax = size_t{64} << 10;
// ReadTrace feeds the file in pieces of this size, so it holds one record and one piece, not a
// copy of the whole file.
constexpr size_t kReadPieceSize = size_t{1} << 20;

absl::Status WithContext(const absl::Status& status, std::string_view context) {
  return absl::Status(status.code(), absl::StrFormat("%s: %s", context, status.message()));
}

absl::Status VersionTooNew(uint32_t version) {
  return absl::FailedPreconditionError(absl::StrFormat(
      "trace format version %u is newer than this switchyard understands (%u); upgrade "
      "switchyard",
      version, kFormatVersion));
}

}  // namespace

bool IsTruncated(const absl::Status& status) { return absl::IsOutOfRange(status); }

void TraceReader::Feed(std::string_view bytes) {
  // A failed reader is never read again, so there is no point holding more input.
  if (!error_.ok()) return;
  Compact();
  buffer_.append(bytes);
}

void TraceReader::Consume(size_t size) {
  CHECK_LE(size, buffer_.size() - consumed_);
  consumed_ += size;
  offset_ += size;
}

void TraceReader::Compact() {
  if (consumed_ == 0) return;
  if (consumed_ == buffer_.size()) {
    if (buffer_.capacity() > kIdleCapacityMax) {
      std::string().swap(buffer_);
    } else {
      buffer_.clear();
    }
    consumed_ = 0;
    return;
  }
  // Moving the tail only once the consumed prefix is at least as long keeps the cost amortized
  // O(1) per byte instead of one memmove per record.
  if (consumed_ >= buffer_.size() - consumed_) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
}

absl::Status TraceReader::Fail(absl::Status status) {
  CHECK(!status.ok());
  error_ = std::move(status);
  std::string().swap(buffer_);
  consumed_ = 0;
  return error_;
}

absl::StatusOr<bool> TraceReader::ReadHeader() {
  std::string_view input = Unconsumed();
  // Comparing what has arrived of the magic refuses a file that is not a trace at once.
  const size_t magic_present = std::min(input.size(), kMagic.size());
  if (input.substr(0, magic_present) != kMagic.substr(0, magic_present)) {
    return Fail(
        absl::InvalidArgumentError("not a switchyard trace file: bad magic at byte offset 0"));
  }
  if (input.size() < kHeaderPrefixSize) return false;
  const uint32_t version = bytes::LoadU32(input, 8);
  const uint32_t body_size = bytes::LoadU32(input, 12);
  if (version == 0) {
    return Fail(absl::DataLossError("trace file header at byte offset 0: format version 0"));
  }
  if (body_size < kHeaderBodySizeMin || body_size > kHeaderBodySizeMax) {
    // A newer version may have a larger header: saying "upgrade" helps more than "damaged".
    if (version > kFormatVersion) return Fail(VersionTooNew(version));
    return Fail(absl::DataLossError(
        absl::StrFormat("trace file header at byte offset 0: body size %u is outside [%zu, %zu]",
                        body_size, kHeaderBodySizeMin, kHeaderBodySizeMax)));
  }
  const size_t covered = kHeaderPrefixSize + body_size;
  if (input.size() < covered + 4) return false;
  // The header's framing is the same in every version, so its CRC is checked before its
  // version is believed: a damaged version word is reported as damage.
  const uint32_t stored = bytes::LoadU32(input, covered);
  const uint32_t computed = Crc32c(input.substr(0, covered));
  if (stored != computed) {
    return Fail(absl::DataLossError(absl::StrFormat(
        "trace file header at byte offset 0: CRC32C mismatch (stored 0x%08x, computed 0x%08x)",
        stored, computed)));
  }
  if (version > kFormatVersion) return Fail(VersionTooNew(version));
  absl::StatusOr<TraceHeader> header =
      codec::DecodeHeaderBody(version, input.substr(kHeaderPrefixSize, body_size));
  if (!header.ok()) return Fail(WithContext(header.status(), "trace file header"));
  header_ = *std::move(header);
  Consume(covered + 4);
  return true;
}

absl::Status TraceReader::RecordError(absl::Status status) const {
  return WithContext(status,
                     absl::StrFormat("trace record %u at byte offset %u", records_read_, offset_));
}

absl::StatusOr<size_t> TraceReader::RecordSize() {
  std::string_view input = Unconsumed();
  if (input.size() < 4) return 0;
  const uint32_t body_size = bytes::LoadU32(input, 0);
  if (body_size < kRecordMetadataSize || body_size > header_->record_body_size_max) {
    return Fail(RecordError(absl::DataLossError(
        absl::StrFormat("length %u is outside [%zu, %u] (the file header's bound)", body_size,
                        kRecordMetadataSize, header_->record_body_size_max))));
  }
  return size_t{body_size} + kRecordFramingSize;
}

absl::StatusOr<std::optional<Record>> TraceReader::Next() {
  if (!error_.ok()) return error_;
  if (!header_.has_value()) {
    absl::StatusOr<bool> have_header = ReadHeader();
    if (!have_header.ok()) return have_header.status();
    if (!*have_header) return std::nullopt;
  }
  absl::StatusOr<size_t> size = RecordSize();
  if (!size.ok()) return size.status();
  std::string_view input = Unconsumed();
  if (*size == 0 || input.size() < *size) return std::nullopt;

  const size_t covered = *size - 4;
  const uint32_t stored = bytes::LoadU32(input, covered);
  const uint32_t computed = Crc32c(input.substr(0, covered));
  if (stored != computed) {
    return Fail(RecordError(absl::DataLossError(
        absl::StrFormat("CRC32C mismatch (stored 0x%08x, computed 0x%08x)", stored, computed))));
  }
  absl::StatusOr<Record> record = codec::DecodeRecordBody(input.substr(4, covered - 4));
  if (!record.ok()) return Fail(RecordError(record.status()));
  Consume(*size);
  ++records_read_;
  return std::optional<Record>(*std::move(record));
}

absl::Status TraceReader::Finish() {
  absl::StatusOr<std::optional<Record>> next = Next();
  if (!next.ok()) return next.status();
  CHECK(!next->has_value()) << "TraceReader::Finish() called before Next() returned every record";
  std::string_view input = Unconsumed();
  if (!header_.has_value()) {
    if (input.empty()) return absl::OutOfRangeError("trace truncated: the file is empty");
    size_t needed = kHeaderPrefixSize;
    if (input.size() >= kHeaderPrefixSize) needed += bytes::LoadU32(input, 12) + 4;
    return absl::OutOfRangeError(
        absl::StrFormat("trace truncated inside the file header: %zu bytes present, %zu needed",
                        input.size(), needed));
  }
  if (input.empty()) return absl::OkStatus();
  if (input.size() < 4) {
    return absl::OutOfRangeError(absl::StrFormat(
        "trace truncated: record %u at byte offset %u is incomplete (%zu of its 4 length bytes "
        "present)",
        records_read_, offset_, input.size()));
  }
  const size_t needed = size_t{bytes::LoadU32(input, 0)} + kRecordFramingSize;
  return absl::OutOfRangeError(
      absl::StrFormat("trace truncated: record %u at byte offset %u is incomplete (%zu of %zu "
                      "bytes present)",
                      records_read_, offset_, input.size(), needed));
}

TraceContents ReadTrace(std::string_view file) {
  TraceContents contents;
  TraceReader reader;
  size_t fed = 0;
  while (true) {
    absl::StatusOr<std::optional<Record>> next = reader.Next();
    if (!next.ok()) {
      contents.status = next.status();
      break;
    }
    if (next->has_value()) {
      contents.records.push_back(**std::move(next));
      continue;
    }
    if (fed == file.size()) {
      contents.status = reader.Finish();
      break;
    }
    const size_t piece = std::min(kReadPieceSize, file.size() - fed);
    reader.Feed(file.substr(fed, piece));
    fed += piece;
  }
  contents.header = reader.header();
  return contents;
}

}  // namespace switchyard::trace
