// `switchyard trace show|stats`: reads capture files with the streaming trace::TraceReader, so a
// file of any size is read in bounded memory, and stops at the first record that is cut or
// damaged after handing on every record before it.
#include "app/trace_command.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "app/trace_render.h"
#include "app/trace_stats.h"
#include "core/base/strings.h"
#include "core/trace/reader.h"

namespace switchyard::app {
namespace {

// Bytes read from a file at a time; the reader keeps at most one record beyond this.
constexpr size_t kReadChunkSize = size_t{1} << 20;
// --from and --to are bounded so their conversion to µs cannot overflow (about 31 years).
constexpr double kTimeSecondsMax = 1e9;

// What a reading pass hands each file's header and records to.
class TraceSink {
 public:
  virtual ~TraceSink() = default;
  virtual void OnHeader(const std::string& file, const trace::TraceHeader& header) = 0;
  virtual void OnRecord(const trace::Record& record) = 0;
  virtual void OnFileEnd(uint64_t records) = 0;
};

absl::Status InFile(const std::string& file, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrFormat("%s: %s", file, AsView(status.message())));
}

// Hands every record the reader has complete to `sink`, and the header once it is known.
absl::Status Drain(const std::string& file, trace::TraceReader& reader, bool& header_seen,
                   TraceSink& sink) {
  while (true) {
    absl::StatusOr<std::optional<trace::Record>> next = reader.Next();
    if (!header_seen && reader.header().has_value()) {
      sink.OnHeader(file, *reader.header());
      header_seen = true;
    }
    if (!next.ok()) return InFile(file, next.status());
    if (!next->has_value()) return absl::OkStatus();
    sink.OnRecord(**next);
  }
}

absl::Status ReadFile(const std::string& file, TraceSink& sink) {
  std::error_code ignored;
  if (std::filesystem::is_directory(file, ignored)) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: is a directory", file));
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrFormat("%s: cannot open: %s", file, std::strerror(errno)));
  }
  trace::TraceReader reader;
  bool header_seen = false;
  std::string chunk(kReadChunkSize, '\0');
  while (in) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    const auto size = static_cast<size_t>(in.gcount());
    if (in.bad()) {
      return absl::DataLossError(
          absl::StrFormat("%s: read failed: %s", file, std::strerror(errno)));
    }
    reader.Feed(std::string_view(chunk.data(), size));
    if (absl::Status status = Drain(file, reader, header_seen, sink); !status.ok()) return status;
  }
  if (absl::Status status = reader.Finish(); !status.ok()) return InFile(file, status);
  sink.OnFileEnd(reader.records_read());
  return absl::OkStatus();
}

// Reads `files` in order into `sink`; on the first problem says it on `error` and returns 1.
int ReadFiles(const std::vector<std::string>& files, TraceSink& sink, std::ostream& error) {
  for (const std::string& file : files) {
    absl::Status status = ReadFile(file, sink);
    if (!status.ok()) {
      error << "switchyard trace: error: " << status.message() << "\n";
      return kTraceExitBadFile;
    }
  }
  return kTraceExitOk;
}

class ShowSink : public TraceSink {
 public:
  ShowSink(const TraceShowFilter& filter, std::ostream& out) : filter_(filter), out_(out) {}

  void OnHeader(const std::string&, const trace::TraceHeader&) override {}
  void OnRecord(const trace::Record& record) override {
    if (filter_.session.has_value() && record.session != *filter_.session) return;
    if (filter_.from_us.has_value() && record.time_us < *filter_.from_us) return;
    if (filter_.to_us.has_value() && record.time_us > *filter_.to_us) return;
    out_ << RenderRecordLine(record) << "\n";
  }
  void OnFileEnd(uint64_t) override {}

 private:
  const TraceShowFilter& filter_;
  std::ostream& out_;
};

class StatsSink : public TraceSink {
 public:
  explicit StatsSink(TraceStatistics& statistics) : statistics_(statistics) {}

  void OnHeader(const std::string& file, const trace::TraceHeader& header) override {
    statistics_.AddFile(file, header);
  }
  void OnRecord(const trace::Record& record) override { statistics_.Add(record); }
  void OnFileEnd(uint64_t records) override { statistics_.EndFile(records); }

 private:
  TraceStatistics& statistics_;
};

int64_t Microseconds(double seconds) { return std::llround(seconds * 1e6); }

}  // namespace

int ShowTrace(const std::vector<std::string>& files, const TraceShowFilter& filter,
              std::ostream& out, std::ostream& error) {
  ShowSink sink(filter, out);
  const int exit_code = ReadFiles(files, sink, error);
  out.flush();
  return exit_code;
}

int PrintTraceStats(const std::vector<std::string>& files, std::ostream& out, std::ostream& error) {
  TraceStatistics statistics;
  StatsSink sink(statistics);
  // Reading stops at a damaged record; what came before it is still worth the summary.
  const int exit_code = ReadFiles(files, sink, error);
  statistics.Print(out);
  out.flush();
  return exit_code;
}

void AddTraceCommand(CLI::App& app, TraceCommand& trace) {
  trace.command = app.add_subcommand("trace", "Inspect capture files written by `serve`");
  trace.command->require_subcommand(1);

  trace.show = trace.command->add_subcommand(
      "show",
      "Print one line per record: time since capture start, session, sequence, "
      "direction, message and what it says");
  trace.show->add_option("files", trace.files, "Trace files of one capture, in order")
      ->required()
      ->type_name("FILE");
  trace.session_option =
      trace.show->add_option("--session", trace.session, "Only the records of this session")
          ->type_name("ID");
  trace.from_option =
      trace.show
          ->add_option("--from", trace.from_seconds,
                       "Only records at or after this many seconds since capture start")
          ->type_name("SECONDS")
          ->check(CLI::Range(0.0, kTimeSecondsMax));
  trace.to_option = trace.show
                        ->add_option("--to", trace.to_seconds,
                                     "Only records at or before this many seconds since capture "
                                     "start")
                        ->type_name("SECONDS")
                        ->check(CLI::Range(0.0, kTimeSecondsMax));

  trace.stats = trace.command->add_subcommand(
      "stats", "Summarize a capture: header, sessions, messages, statements with latencies");
  trace.stats->add_option("files", trace.files, "Trace files of one capture, in order")
      ->required()
      ->type_name("FILE");
}

int RunTrace(const TraceCommand& trace, std::ostream& out, std::ostream& error) {
  if (trace.stats->parsed()) return PrintTraceStats(trace.files, out, error);
  TraceShowFilter filter;
  if (*trace.session_option) filter.session = trace.session;
  if (*trace.from_option) filter.from_us = Microseconds(trace.from_seconds);
  if (*trace.to_option) filter.to_us = Microseconds(trace.to_seconds);
  if (filter.from_us.has_value() && filter.to_us.has_value() && *filter.to_us < *filter.from_us) {
    error << "switchyard trace show: --to must not be before --from\n";
    return kTraceExitUsage;
  }
  return ShowTrace(trace.files, filter, out, error);
}

}  // namespace switchyard::app
