// Reads trace files through trace::TraceReader into a CaptureBuilder (see trace_files.h).
#include "replay/trace_files.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>

#include "absl/strings/str_format.h"
#include "core/trace/reader.h"

namespace switchyard::replay {
namespace {

constexpr size_t kReadChunkSize = size_t{1} << 20;

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

absl::Status InFile(const std::string& path, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrFormat("%s: %s", path, status.message()));
}

// Returns the records of the reader so far to the builder; the header starts the file.
absl::Status Drain(const std::string& path, trace::TraceReader& reader, CaptureBuilder& builder,
                   bool& header_seen) {
  while (true) {
    absl::StatusOr<std::optional<trace::Record>> next = reader.Next();
    if (!next.ok()) return InFile(path, next.status());
    if (!header_seen && reader.header().has_value()) {
      builder.BeginFile(path, *reader.header());
      header_seen = true;
    }
    if (!next->has_value()) return absl::OkStatus();
    builder.Add(**next, reader.records_read() - 1);
  }
}

absl::Status ReadOne(const std::string& path, CaptureBuilder& builder, size_t bytes_max,
                     size_t& bytes_left) {
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (file == nullptr) {
    return absl::NotFoundError(absl::StrFormat("%s: cannot open: %s", path, std::strerror(errno)));
  }
  trace::TraceReader reader;
  bool header_seen = false;
  std::string chunk(kReadChunkSize, '\0');
  while (true) {
    size_t got = std::fread(chunk.data(), 1, chunk.size(), file.get());
    if (got == 0) break;
    if (got > bytes_left) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "%s: the trace files exceed %zu bytes, the most one replay loads", path, bytes_max));
    }
    bytes_left -= got;
    reader.Feed(std::string_view(chunk.data(), got));
    if (absl::Status status = Drain(path, reader, builder, header_seen); !status.ok()) {
      return status;
    }
  }
  if (std::ferror(file.get())) {
    return absl::DataLossError(absl::StrFormat("%s: read error", path));
  }
  if (absl::Status status = reader.Finish(); !status.ok()) return InFile(path, status);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Capture> LoadTraceFiles(const std::vector<std::string>& paths, size_t bytes_max) {
  CaptureBuilder builder;
  size_t bytes_left = bytes_max;
  for (const std::string& path : paths) {
    if (absl::Status status = ReadOne(path, builder, bytes_max, bytes_left); !status.ok())
      return status;
  }
  return std::move(builder).Finish();
}

}  // namespace switchyard::replay
