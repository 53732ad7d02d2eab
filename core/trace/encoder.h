// Encodes a trace file: the header, then records appended to a caller's buffer. Pure: the
// caller owns the buffer and decides when to write it and where files rotate. A record is
// appended whole or not at all, so any point between two Append() calls is a safe place to
// end one file and begin the next.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "core/trace/record.h"

namespace switchyard::trace {

// Appends the file header (magic, kFormatVersion, body, CRC32C) to `out`. InvalidArgument, and
// nothing appended, when the proxy id and settings exceed kHeaderBodySizeMax or the record size
// bound is outside [kRecordMetadataSize, kRecordBodySizeMax]. `header.version` is ignored: an
// encoder only writes its own version.
absl::Status AppendHeader(const TraceHeader& header, std::string& out);

class TraceEncoder {
 public:
  // `record_body_size_max` must be the bound the file's header declares.
  explicit TraceEncoder(uint32_t record_body_size_max = kRecordBodySizeMaxDefault);

  // Appends one record: length word, body, CRC32C. ResourceExhausted, and nothing appended, when
  // the body would exceed the bound; the capture side then counts it as dropped. A malformed
  // record (negative time, unknown flags, an unframed message or a message without direction)
  // is a bug of the caller's and stops the process.
  absl::Status Append(const Record& record, std::string& out) const;

  uint32_t record_body_size_max() const { return record_body_size_max_; }

 private:
  uint32_t record_body_size_max_;
};

}  // namespace switchyard::trace
