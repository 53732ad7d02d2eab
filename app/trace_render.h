// The readable rendering of one trace record for `switchyard trace show`: the record's line from
// trace::FormatRecordLine followed by a short view of what the message says (the SQL of a Query,
// the tag of a CommandComplete, the values of a DataRow, ...).
#pragma once

#include <string>

#include "core/trace/record.h"

namespace switchyard::app {

// A text field is cut after this many bytes, so one record stays one readable line.
inline constexpr size_t kRenderedTextSizeMax = 120;
// A DataRow value or a RowDescription column name is cut shorter: a row has many of them.
inline constexpr size_t kRenderedValueSizeMax = 40;
// At most this many values, columns, prepared statements or settings are listed.
inline constexpr size_t kRenderedItemsMax = 8;

// What a record says beyond trace::FormatRecordLine, as `key=value` words: `sql="SELECT 1"` for a
// Query, `tag="INSERT 0 1"` for a CommandComplete, ... Text is quoted and C-escaped, so the
// result never contains a newline. "" when there is nothing more to say (Sync, ParseComplete,
// a session-close). Secrets (password, SASL and GSS messages) are never rendered. A message
// that does not decode renders as `undecodable=` and the decoder's complaint.
std::string RenderRecordContent(const trace::Record& record);

// trace::FormatRecordLine(record), then the content when there is any.
std::string RenderRecordLine(const trace::Record& record);

// `text` quoted and C-escaped, cut after `size_max` bytes (with the full size then given).
std::string QuoteText(std::string_view text, size_t size_max = kRenderedTextSizeMax);

}  // namespace switchyard::app
