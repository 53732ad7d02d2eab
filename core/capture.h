// Traffic capture in the core (DESIGN.md section 6): the settings every unit shares, which
// sessions are captured, what redaction does to a message, and the state one unit keeps. The
// unit builds the records (core/unit_trace.cc); the driver writes them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/base/types.h"
#include "core/trace/record.h"

namespace switchyard {

// What a capture hides (docs/configuration.md, "Traffic capture").
//   kNone       every message as it crossed the wire.
//   kRows       the data: DataRow values become empty (NULLs stay NULL, the column count stays)
//               and CopyData payloads become empty, in every direction.
//   kAllValues  kRows, plus every value a client sends or a server reports: Bind parameters and
//               FunctionCall arguments become empty (NULLs stay NULL), string and numeric
//               literals in Query and Parse text become '' and 0, the message, detail, hint,
//               context and internal query of ErrorResponse and NoticeResponse become empty,
//               and so do NotificationResponse payloads and FunctionCallResponse results. The
//               query text of prepared statements in snapshots is redacted like Parse text.
// Startup parameters and SET values are kept in every mode: a replay needs them to rebuild the
// session. Passwords and authentication exchanges are never captured at all.
enum class Redact : uint8_t { kNone, kRows, kAllValues };
std::string_view RedactName(Redact redact);  // "none", "rows", "all-values"
std::optional<Redact> ParseRedact(std::string_view name);

// The sample rate is in parts per million, so that every rate in the settings is exact.
inline constexpr uint32_t kSampleScale = 1'000'000;

struct CaptureOptions {
  uint32_t sample_per_million = kSampleScale;
  // The record body bound the capture files declare: a longer record is dropped (and counted).
  uint32_t record_body_size_max = trace::kRecordBodySizeMaxDefault;
  // Mixed into the session hash: two proxies with different seeds sample different sessions.
  uint64_t sample_seed = 0;
  Redact redact = Redact::kNone;
};

// Whether session `session` is captured. A hash of its id, not a random draw: a session is in or
// out for its whole life, in every file, however often capture is switched on.
bool Sampled(const CaptureOptions& options, UnitId session);

// The message `raw` (typed, well framed) travelling in `direction`, as `redact` says it must be
// captured; nullopt when the mode leaves it as it is. A message the mode covers that does not
// decode keeps only its type byte (an empty payload).
std::optional<std::string> RedactMessage(Redact redact, trace::Direction direction,
                                         std::string_view raw);
// `sql` with every string literal replaced by '' and every number by 0 (kAllValues).
std::string RedactSqlLiterals(std::string_view sql);

// The value a SET made, as pg_catalog.set_config(name, value, false) takes it (what a replay
// sends), from the SQL text the session history keeps (`SET name TO <sql>`: "'8MB'",
// "'$user', public"): literals unquoted, list items joined with ", ", and for the settings that
// quote their list items (search_path, ...) items quoted as identifiers where they need it.
std::string SettingValue(std::string_view name, std::string_view sql);

// Appends a message record with the metadata of `record` (its body is ignored) and the typed
// message `message`, byte for byte as trace::TraceEncoder::Append would, without building a
// trace::Message: the capture's hot path. False, and nothing appended, when the body would
// exceed `record_body_size_max`.
bool AppendMessageRecord(const trace::Record& record, std::string_view message,
                         uint32_t record_body_size_max, std::string& out);

// What one unit knows about the capture. The unit checks `recording` before it does any capture
// work, so that while it is false (capture off, this session not sampled, or not logged in
// yet) the cost per message is that one branch.
struct UnitCapture {
  bool recording = false;  // on, sampled and opened: every message makes a record
  bool on = false;         // capture is on (the last CaptureChanged)
  bool opened = false;     // the client logged in: the session exists
  uint64_t epoch = 0;      // of the last CaptureChanged
  Instant start;           // record times count from here
  Instant now;             // the time of the event being handled
  uint64_t sequence = 0;   // the next record's
  std::string peer;        // the client's address, from Accepted
  char last_client_type = 0;
  // Records made during the event being handled, emitted as one Trace action at its end.
  std::string pending;
  uint64_t pending_count = 0;
  uint64_t pending_refused = 0;
};

}  // namespace switchyard
