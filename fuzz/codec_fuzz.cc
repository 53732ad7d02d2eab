// libFuzzer target for the wire codec: frames arbitrary bytes in chunks the input chooses, checks
// that the cut points never change the frames or the error, and round-trips every frame that
// decodes through its typed decoder (decode, encode, decode again).
//
// Input layout: byte 0 is the mode (bit 0: backend stream, bit 1: a startup packet first,
// bit 2: a small message_size_max), bytes 1-3 are chunk sizes used in turn, the rest is the
// stream.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "core/protocol/framing.h"
#include "core/protocol/messages.h"

namespace switchyard::pg {
namespace {

constexpr size_t kInputHeaderSize = 4;
constexpr size_t kSmallMessageSizeMax = 64;

void Require(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "codec_fuzz: %s\n", what);
  std::abort();
}

struct CopiedFrame {
  char type = 0;  // 0 for the startup packet
  std::string payload;
  std::string raw;
  friend bool operator==(const CopiedFrame&, const CopiedFrame&) = default;
};

struct Outcome {
  std::vector<CopiedFrame> frames;
  absl::Status status;
  std::string unconsumed;
};

struct Mode {
  Direction from = Direction::kFrontend;
  bool startup_first = false;
  size_t message_size_max = kMessageSizeMaxDefault;
};

// Drains the reader until it needs more bytes or fails; false once it failed.
bool Drain(FrameReader& reader, bool& need_startup, Outcome& outcome) {
  while (true) {
    if (need_startup) {
      auto packet = reader.NextStartup();
      if (!packet.ok()) {
        outcome.status = packet.status();
        return false;
      }
      if (!packet->has_value()) return true;
      outcome.frames.push_back({0, std::string((*packet)->payload), std::string((*packet)->raw)});
      need_startup = false;
      continue;
    }
    auto frame = reader.Next();
    if (!frame.ok()) {
      outcome.status = frame.status();
      return false;
    }
    if (!frame->has_value()) return true;
    outcome.frames.push_back(
        {(*frame)->type, std::string((*frame)->payload), std::string((*frame)->raw)});
  }
}

// Feeds `stream` in chunks of the given sizes (cycled; 0 means "the rest").
Outcome FrameAll(const Mode& mode, std::string_view stream, const std::vector<size_t>& chunks) {
  FrameReader reader(mode.from, mode.message_size_max);
  Outcome outcome;
  bool need_startup = mode.startup_first;
  size_t at = 0;
  for (size_t i = 0; at < stream.size(); ++i) {
    size_t chunk = chunks[i % chunks.size()];
    if (chunk == 0) chunk = stream.size() - at;
    reader.Append(stream.substr(at, chunk));
    at += std::min(chunk, stream.size() - at);
    if (!Drain(reader, need_startup, outcome)) break;
  }
  if (outcome.status.ok()) outcome.unconsumed = std::string(reader.Unconsumed());
  return outcome;
}

// decode(payload) -> x; then encode(x) must give back the frame's bytes exactly (every v3 message
// has one encoding) and decode(encode(x)) == x.
template <typename Decoder>
void RoundTrip(Decoder decode, const CopiedFrame& frame) {
  auto first = decode(frame.payload);
  if (!first.ok()) return;
  const std::string encoded = first->Encode();
  Require(encoded == frame.raw, "re-encoding differs from the framed bytes");
  auto second = decode(std::string_view(encoded).substr(kHeaderSize));
  Require(second.ok(), "re-encoded message does not decode");
  Require(*second == *first, "decode(encode(x)) != x");
}

template <typename T>
void RoundTripAs(const CopiedFrame& frame) {
  RoundTrip([](std::string_view payload) { return T::Decode(payload); }, frame);
}

void CheckStartup(const CopiedFrame& frame) {
  auto packet = DecodeStartupPacket(frame.payload);
  if (!packet.ok()) return;
  const std::string encoded = std::visit([](const auto& m) { return m.Encode(); }, *packet);
  Require(encoded == frame.raw, "re-encoding of the startup packet differs");
  auto again = DecodeStartupPacket(std::string_view(encoded).substr(4));
  Require(again.ok() && *again == *packet, "startup decode(encode(x)) != x");
  if (auto* startup = std::get_if<StartupMessage>(&*packet)) {
    for (const auto& [name, value] : startup->parameters) {
      Require(startup->Find(name) != nullptr, "Find misses a decoded parameter");
    }
  }
}

void CheckFrontend(const CopiedFrame& frame) {
  switch (frame.type) {
    case 'B':
      return RoundTripAs<Bind>(frame);
    case 'C':
      return RoundTripAs<Close>(frame);
    case 'd':
      return RoundTripAs<CopyData>(frame);
    case 'c':
      return RoundTripAs<CopyDone>(frame);
    case 'f':
      return RoundTripAs<CopyFail>(frame);
    case 'D':
      return RoundTripAs<Describe>(frame);
    case 'E':
      return RoundTripAs<Execute>(frame);
    case 'H':
      return RoundTripAs<Flush>(frame);
    case 'F':
      return RoundTripAs<FunctionCall>(frame);
    case 'P':
      return RoundTripAs<Parse>(frame);
    case 'p':
      // Which of the four it is depends on the auth exchange: try them all.
      RoundTripAs<PasswordMessage>(frame);
      RoundTripAs<GssResponse>(frame);
      RoundTripAs<SaslInitialResponse>(frame);
      return RoundTripAs<SaslResponse>(frame);
    case 'Q':
      return RoundTripAs<Query>(frame);
    case 'S':
      return RoundTripAs<Sync>(frame);
    case 'X':
      return RoundTripAs<Terminate>(frame);
    default:
      Require(false, "framed an unknown frontend type");
  }
}

void CheckAuthentication(const CopiedFrame& frame) {
  RoundTripAs<Authentication>(frame);
  auto message = Authentication::Decode(frame.payload);
  if (message.ok() && message->code == Authentication::kSasl) {
    Require(Authentication::Sasl(message->SaslMechanisms()) == *message,
            "SASL mechanism list does not rebuild");
  }
}

void CheckErrorFields(const CopiedFrame& frame) {
  const char type = frame.type;
  RoundTrip([type](std::string_view payload) { return ErrorFields::Decode(type, payload); }, frame);
  auto fields = ErrorFields::Decode(type, frame.payload);
  if (fields.ok() && fields->IsFatal()) {
    Require(fields->severity() == "FATAL" || fields->severity() == "PANIC", "IsFatal disagrees");
  }
}

void CheckBackend(const CopiedFrame& frame) {
  const char type = frame.type;
  switch (type) {
    case 'R':
      return CheckAuthentication(frame);
    case 'K':
      return RoundTripAs<BackendKeyData>(frame);
    case '2':
      return RoundTripAs<BindComplete>(frame);
    case '3':
      return RoundTripAs<CloseComplete>(frame);
    case 'C':
      return RoundTripAs<CommandComplete>(frame);
    case 'd':
      return RoundTripAs<CopyData>(frame);
    case 'c':
      return RoundTripAs<CopyDone>(frame);
    case 'G':
    case 'H':
    case 'W':
      return RoundTrip(
          [type](std::string_view payload) { return CopyResponse::Decode(type, payload); }, frame);
    case 'D':
      return RoundTripAs<DataRow>(frame);
    case 'I':
      return RoundTripAs<EmptyQueryResponse>(frame);
    case 'E':
    case 'N':
      return CheckErrorFields(frame);
    case 'V':
      return RoundTripAs<FunctionCallResponse>(frame);
    case 'v':
      return RoundTripAs<NegotiateProtocolVersion>(frame);
    case 'n':
      return RoundTripAs<NoData>(frame);
    case 'A':
      return RoundTripAs<NotificationResponse>(frame);
    case 't':
      return RoundTripAs<ParameterDescription>(frame);
    case 'S':
      return RoundTripAs<ParameterStatus>(frame);
    case '1':
      return RoundTripAs<ParseComplete>(frame);
    case 's':
      return RoundTripAs<PortalSuspended>(frame);
    case 'Z':
      return RoundTripAs<ReadyForQuery>(frame);
    case 'T':
      return RoundTripAs<RowDescription>(frame);
    default:
      Require(false, "framed an unknown backend type");
  }
}

}  // namespace
}  // namespace switchyard::pg

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace switchyard::pg;
  if (size < kInputHeaderSize) return 0;
  Mode mode;
  mode.from = (data[0] & 1) ? Direction::kBackend : Direction::kFrontend;
  mode.startup_first = (data[0] & 2) != 0;
  if (data[0] & 4) mode.message_size_max = kSmallMessageSizeMax;
  const std::vector<size_t> chunks = {data[1], data[2], data[3]};
  const std::string_view stream(reinterpret_cast<const char*>(data) + kInputHeaderSize,
                                size - kInputHeaderSize);

  // How TCP cut the bytes must never change what the reader makes of them.
  const Outcome whole = FrameAll(mode, stream, {0});
  const Outcome chunked = FrameAll(mode, stream, chunks);
  const Outcome bytewise = FrameAll(mode, stream, {1});
  Require(chunked.frames == whole.frames && bytewise.frames == whole.frames,
          "frames depend on the split points");
  Require(chunked.status == whole.status && bytewise.status == whole.status,
          "error depends on the split points");
  Require(chunked.unconsumed == whole.unconsumed && bytewise.unconsumed == whole.unconsumed,
          "unconsumed bytes depend on the split points");

  for (size_t i = 0; i < whole.frames.size(); ++i) {
    const CopiedFrame& frame = whole.frames[i];
    if (mode.startup_first && i == 0) {
      Require(frame.raw.size() <= kStartupPacketSizeMax, "startup packet above its bound");
      CheckStartup(frame);
      continue;
    }
    Require(frame.raw.size() <= mode.message_size_max, "frame above message_size_max");
    if (mode.from == Direction::kFrontend) {
      CheckFrontend(frame);
    } else {
      CheckBackend(frame);
    }
  }
  return 0;
}
