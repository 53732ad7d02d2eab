// Reads a trace file from bytes fed in any pieces. Every length is bounded before it is waited
// for or allocated, every header and record is checked against its CRC32C before any of it is
// believed, and every problem is an absl::Status naming the record and its byte offset: a
// damaged file is never read as something that was not written.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/trace/record.h"

namespace switchyard::trace {

// Whether `status` says that the input ended inside the header or inside a record (as opposed to
// damage, a newer version, or not being a trace at all). A file being written is truncated in
// this sense until its writer finishes the record.
bool IsTruncated(const absl::Status& status);

// The statuses, all with the record index (0 is the first record after the header) and the byte
// offset of the record's length word in the message:
//   OutOfRange        truncated: the input ended inside the header or a record (IsTruncated)
//   DataLoss          damaged: CRC32C mismatch, a length outside its bounds, a malformed field
//   FailedPrecondition  the file's format version is newer than kFormatVersion
//   InvalidArgument   not a switchyard trace (bad magic)
// Errors are sticky: after one, Next() returns it again and Feed() discards its input.
class TraceReader {
 public:
  TraceReader() = default;

  // Adds the next bytes of the file. The reader keeps only bytes not yet returned as records.
  void Feed(std::string_view bytes);

  // The next complete record, or nullopt when more bytes are needed. Reads the header first;
  // header() is set once it has been read.
  absl::StatusOr<std::optional<Record>> Next();

  // Says how the input ended, once the source has no more bytes: OK when it ended after a
  // complete header at a record boundary, the truncation status otherwise, or the sticky error.
  // Call it after Next() has returned nullopt; a record still unread here is the caller's bug.
  absl::Status Finish();

  const std::optional<TraceHeader>& header() const { return header_; }
  // The number of records returned so far: the index of the next record, or of the failing one.
  uint64_t records_read() const { return records_read_; }
  // The byte offset of the next record (or of the header), or of the failing one.
  uint64_t offset() const { return offset_; }

 private:
  // Reads the header once it is complete; false while more bytes are needed.
  absl::StatusOr<bool> ReadHeader();
  // Bounds the record whose length word starts the unconsumed input; its total size, or 0 while
  // the length word is incomplete.
  absl::StatusOr<size_t> RecordSize();
  absl::Status RecordError(absl::Status status) const;
  absl::Status Fail(absl::Status status);
  std::string_view Unconsumed() const { return std::string_view(buffer_).substr(consumed_); }
  void Consume(size_t size);
  void Compact();

  std::string buffer_;
  size_t consumed_ = 0;
  uint64_t offset_ = 0;  // file offset of buffer_[consumed_]
  uint64_t records_read_ = 0;
  std::optional<TraceHeader> header_;
  absl::Status error_;
};

// A whole file read at once, for tools and tests. Reading stops at the first problem; the
// records before it are kept, so `switchyard trace show` can print a truncated file's records and
// then say where it was cut.
struct TraceContents {
  std::optional<TraceHeader> header;
  std::vector<Record> records;
  absl::Status status;  // OK, or what stopped the reading (see TraceReader)
};
TraceContents ReadTrace(std::string_view file);

}  // namespace switchyard::trace
