// Framing and checksums around the bodies codec.cc lays out.
#include "core/trace/encoder.h"

#include <string_view>

#include "absl/strings/str_format.h"
#include "core/base/check.h"
#include "core/trace/bytes.h"
#include "core/trace/codec.h"
#include "core/trace/crc32c.h"

namespace switchyard::trace {

absl::Status AppendHeader(const TraceHeader& header, std::string& out) {
  const size_t start = out.size();
  out.append(kMagic);
  bytes::Writer writer(out);
  writer.U32(kFormatVersion);
  const size_t size_at = out.size();
  writer.U32(0);  // patched once the body is known
  absl::Status status = codec::AppendHeaderBody(header, out);
  if (!status.ok()) {
    out.resize(start);
    return status;
  }
  const size_t body_size = out.size() - size_at - 4;
  CHECK_LE(body_size, kHeaderBodySizeMax);
  bytes::StoreU32(out, size_at, static_cast<uint32_t>(body_size));
  writer.U32(Crc32c(std::string_view(out).substr(start)));
  return absl::OkStatus();
}

TraceEncoder::TraceEncoder(uint32_t record_body_size_max)
    : record_body_size_max_(record_body_size_max) {
  CHECK_GE(record_body_size_max, kRecordMetadataSize);
  CHECK_LE(record_body_size_max, kRecordBodySizeMax);
}

absl::Status TraceEncoder::Append(const Record& record, std::string& out) const {
  const size_t start = out.size();
  bytes::Writer writer(out);
  writer.U32(0);  // patched once the body is known
  codec::AppendRecordBody(record, out);
  const size_t body_size = out.size() - start - 4;
  if (body_size > record_body_size_max_) {
    out.resize(start);
    return absl::ResourceExhaustedError(
        absl::StrFormat("trace %s record of %zu bytes exceeds the record size bound of %u",
                        KindName(record.kind()), body_size, record_body_size_max_));
  }
  bytes::StoreU32(out, start, static_cast<uint32_t>(body_size));
  writer.U32(Crc32c(std::string_view(out).substr(start)));
  return absl::OkStatus();
}

}  // namespace switchyard::trace
