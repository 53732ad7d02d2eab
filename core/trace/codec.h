// The byte layout of a header body and a record body (docs/trace-format.md), in one place for
// both directions. Private to core/trace: framing, bounds on the whole and CRC32C are the
// encoder's and the reader's business.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/trace/record.h"

namespace switchyard::trace::codec {

// Checks that `raw` is one whole PostgreSQL message whose length word agrees with its size.
absl::Status ValidateMessage(std::string_view raw);

// Appends the header body (everything between the size word and the CRC). Refuses a header
// whose body would exceed kHeaderBodySizeMax or whose record bound is out of range.
absl::Status AppendHeaderBody(const TraceHeader& header, std::string& out);
// Decodes a header body of format version `version` (which the caller has checked it knows).
absl::StatusOr<TraceHeader> DecodeHeaderBody(uint32_t version, std::string_view body);

// Appends the record body (everything between the length word and the CRC). The record must be
// well-formed (non-negative time, known flags, a framed message with a direction): those are
// the capture side's promises, checked always.
void AppendRecordBody(const Record& record, std::string& out);
// Decodes a record body whose CRC has been verified; errors are DataLoss "malformed ...".
absl::StatusOr<Record> DecodeRecordBody(std::string_view body);

}  // namespace switchyard::trace::codec
