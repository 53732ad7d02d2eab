// RapidCheck properties for every message type: decode(encode(m)) == m; the encoding framed one
// byte at a time and at random split points yields exactly that frame; every truncation (and
// every extra byte) of a self-delimiting payload is refused; streams of mixed messages frame
// back into the same sequence.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/protocol/framing.h"
#include "core/protocol/messages.h"

namespace pg = switchyard::pg;

// ---------------------------------------------------------------- generators

namespace {

// Any bytes, NUL included.
rc::Gen<std::string> Bytes() { return rc::gen::container<std::string>(rc::gen::arbitrary<char>()); }

// A C string: anything but NUL.
rc::Gen<std::string> CString() {
  return rc::gen::container<std::string>(rc::gen::distinctFrom(rc::gen::arbitrary<char>(), '\0'));
}

rc::Gen<std::optional<std::string>> NullableBytes() {
  return rc::gen::weightedOneOf<std::optional<std::string>>(
      {{1, rc::gen::just(std::optional<std::string>())},
       {4, rc::gen::map(Bytes(), [](std::string s) { return std::optional<std::string>(s); })}});
}

rc::Gen<std::vector<std::optional<std::string>>> Values() {
  return rc::gen::container<std::vector<std::optional<std::string>>>(NullableBytes());
}

rc::Gen<std::vector<int16_t>> Formats() { return rc::gen::arbitrary<std::vector<int16_t>>(); }

}  // namespace

namespace rc {

#define SWITCHYARD_EMPTY_ARBITRARY(T)                            \
  template <>                                                    \
  struct Arbitrary<pg::T> {                                      \
    static Gen<pg::T> arbitrary() { return gen::just(pg::T{}); } \
  };
SWITCHYARD_EMPTY_ARBITRARY(SslRequest)
SWITCHYARD_EMPTY_ARBITRARY(GssEncRequest)
SWITCHYARD_EMPTY_ARBITRARY(BindComplete)
SWITCHYARD_EMPTY_ARBITRARY(CloseComplete)
SWITCHYARD_EMPTY_ARBITRARY(CopyDone)
SWITCHYARD_EMPTY_ARBITRARY(EmptyQueryResponse)
SWITCHYARD_EMPTY_ARBITRARY(NoData)
SWITCHYARD_EMPTY_ARBITRARY(ParseComplete)
SWITCHYARD_EMPTY_ARBITRARY(PortalSuspended)
SWITCHYARD_EMPTY_ARBITRARY(Flush)
SWITCHYARD_EMPTY_ARBITRARY(Sync)
SWITCHYARD_EMPTY_ARBITRARY(Terminate)
#undef SWITCHYARD_EMPTY_ARBITRARY

template <>
struct Arbitrary<pg::StartupMessage> {
  static Gen<pg::StartupMessage> arbitrary() {
    // Protocol 3.x for any minor x; parameter names are never empty (empty ends the list).
    return gen::build<pg::StartupMessage>(
        gen::set(&pg::StartupMessage::protocol,
                 gen::map(gen::arbitrary<uint16_t>(),
                          [](uint16_t minor) { return pg::kProtocolVersion3 | minor; })),
        gen::set(&pg::StartupMessage::parameters,
                 gen::container<pg::Parameters>(gen::pair(gen::nonEmpty(CString()), CString()))));
  }
};

template <>
struct Arbitrary<pg::CancelRequest> {
  static Gen<pg::CancelRequest> arbitrary() {
    return gen::build<pg::CancelRequest>(gen::set(&pg::CancelRequest::pid),
                                         gen::set(&pg::CancelRequest::secret));
  }
};

template <>
struct Arbitrary<pg::Authentication> {
  static Gen<pg::Authentication> arbitrary() {
    using A = pg::Authentication;
    return gen::mapcat(
        gen::element<int32_t>(A::kOk, A::kKerberosV5, A::kCleartextPassword, A::kMd5Password,
                              A::kScmCredential, A::kGss, A::kGssContinue, A::kSspi, A::kSasl,
                              A::kSaslContinue, A::kSaslFinal),
        [](int32_t code) -> Gen<A> {
          switch (code) {
            case A::kMd5Password:
              return gen::map(
                  gen::container<std::string>(4, gen::arbitrary<char>()),
                  [](std::string salt) { return A{.code = A::kMd5Password, .data = salt}; });
            case A::kSasl:
              return gen::map(gen::container<std::vector<std::string>>(gen::nonEmpty(CString())),
                              [](const std::vector<std::string>& names) { return A::Sasl(names); });
            case A::kGssContinue:
            case A::kSaslContinue:
            case A::kSaslFinal:
              return gen::map(Bytes(),
                              [code](std::string data) { return A{.code = code, .data = data}; });
            default:
              return gen::just(A{.code = code, .data = ""});
          }
        });
  }
};

template <>
struct Arbitrary<pg::BackendKeyData> {
  static Gen<pg::BackendKeyData> arbitrary() {
    return gen::build<pg::BackendKeyData>(gen::set(&pg::BackendKeyData::pid),
                                          gen::set(&pg::BackendKeyData::secret));
  }
};

template <>
struct Arbitrary<pg::CommandComplete> {
  static Gen<pg::CommandComplete> arbitrary() {
    return gen::build<pg::CommandComplete>(gen::set(&pg::CommandComplete::tag, CString()));
  }
};

template <>
struct Arbitrary<pg::CopyData> {
  static Gen<pg::CopyData> arbitrary() {
    return gen::build<pg::CopyData>(gen::set(&pg::CopyData::data, Bytes()));
  }
};

template <>
struct Arbitrary<pg::CopyResponse> {
  static Gen<pg::CopyResponse> arbitrary() {
    return gen::build<pg::CopyResponse>(
        gen::set(&pg::CopyResponse::type, gen::element('G', 'H', 'W')),
        gen::set(&pg::CopyResponse::format),
        gen::set(&pg::CopyResponse::column_formats, Formats()));
  }
};

template <>
struct Arbitrary<pg::DataRow> {
  static Gen<pg::DataRow> arbitrary() {
    return gen::build<pg::DataRow>(gen::set(&pg::DataRow::values, Values()));
  }
};

template <>
struct Arbitrary<pg::ErrorFields> {
  static Gen<pg::ErrorFields> arbitrary() {
    return gen::build<pg::ErrorFields>(
        gen::set(&pg::ErrorFields::type, gen::element('E', 'N')),
        gen::set(&pg::ErrorFields::fields,
                 gen::container<std::vector<std::pair<char, std::string>>>(
                     gen::pair(gen::distinctFrom(gen::arbitrary<char>(), '\0'), CString()))));
  }
};

template <>
struct Arbitrary<pg::FunctionCallResponse> {
  static Gen<pg::FunctionCallResponse> arbitrary() {
    return gen::build<pg::FunctionCallResponse>(
        gen::set(&pg::FunctionCallResponse::result, NullableBytes()));
  }
};

template <>
struct Arbitrary<pg::NegotiateProtocolVersion> {
  static Gen<pg::NegotiateProtocolVersion> arbitrary() {
    return gen::build<pg::NegotiateProtocolVersion>(
        gen::set(&pg::NegotiateProtocolVersion::newest_minor),
        gen::set(&pg::NegotiateProtocolVersion::unrecognized_options,
                 gen::container<std::vector<std::string>>(CString())));
  }
};

template <>
struct Arbitrary<pg::NotificationResponse> {
  static Gen<pg::NotificationResponse> arbitrary() {
    return gen::build<pg::NotificationResponse>(
        gen::set(&pg::NotificationResponse::pid),
        gen::set(&pg::NotificationResponse::channel, CString()),
        gen::set(&pg::NotificationResponse::payload, CString()));
  }
};

template <>
struct Arbitrary<pg::ParameterDescription> {
  static Gen<pg::ParameterDescription> arbitrary() {
    return gen::build<pg::ParameterDescription>(gen::set(&pg::ParameterDescription::type_oids));
  }
};

template <>
struct Arbitrary<pg::ParameterStatus> {
  static Gen<pg::ParameterStatus> arbitrary() {
    return gen::build<pg::ParameterStatus>(gen::set(&pg::ParameterStatus::name, CString()),
                                           gen::set(&pg::ParameterStatus::value, CString()));
  }
};

template <>
struct Arbitrary<pg::ReadyForQuery> {
  static Gen<pg::ReadyForQuery> arbitrary() {
    return gen::build<pg::ReadyForQuery>(
        gen::set(&pg::ReadyForQuery::status, gen::element('I', 'T', 'E')));
  }
};

template <>
struct Arbitrary<pg::RowDescription::Field> {
  static Gen<pg::RowDescription::Field> arbitrary() {
    using F = pg::RowDescription::Field;
    return gen::build<F>(gen::set(&F::name, CString()), gen::set(&F::table_oid),
                         gen::set(&F::column), gen::set(&F::type_oid), gen::set(&F::type_size),
                         gen::set(&F::type_modifier), gen::set(&F::format));
  }
};

template <>
struct Arbitrary<pg::RowDescription> {
  static Gen<pg::RowDescription> arbitrary() {
    return gen::build<pg::RowDescription>(gen::set(&pg::RowDescription::fields));
  }
};

template <>
struct Arbitrary<pg::Bind> {
  static Gen<pg::Bind> arbitrary() {
    return gen::build<pg::Bind>(
        gen::set(&pg::Bind::portal, CString()), gen::set(&pg::Bind::statement, CString()),
        gen::set(&pg::Bind::parameter_formats, Formats()),
        gen::set(&pg::Bind::parameters, Values()), gen::set(&pg::Bind::result_formats, Formats()));
  }
};

template <>
struct Arbitrary<pg::Close> {
  static Gen<pg::Close> arbitrary() {
    return gen::build<pg::Close>(gen::set(&pg::Close::kind, gen::element('S', 'P')),
                                 gen::set(&pg::Close::name, CString()));
  }
};

template <>
struct Arbitrary<pg::Describe> {
  static Gen<pg::Describe> arbitrary() {
    return gen::build<pg::Describe>(gen::set(&pg::Describe::kind, gen::element('S', 'P')),
                                    gen::set(&pg::Describe::name, CString()));
  }
};

template <>
struct Arbitrary<pg::CopyFail> {
  static Gen<pg::CopyFail> arbitrary() {
    return gen::build<pg::CopyFail>(gen::set(&pg::CopyFail::message, CString()));
  }
};

template <>
struct Arbitrary<pg::Execute> {
  static Gen<pg::Execute> arbitrary() {
    return gen::build<pg::Execute>(gen::set(&pg::Execute::portal, CString()),
                                   gen::set(&pg::Execute::max_rows));
  }
};

template <>
struct Arbitrary<pg::FunctionCall> {
  static Gen<pg::FunctionCall> arbitrary() {
    return gen::build<pg::FunctionCall>(gen::set(&pg::FunctionCall::function_oid),
                                        gen::set(&pg::FunctionCall::argument_formats, Formats()),
                                        gen::set(&pg::FunctionCall::arguments, Values()),
                                        gen::set(&pg::FunctionCall::result_format));
  }
};

template <>
struct Arbitrary<pg::Parse> {
  static Gen<pg::Parse> arbitrary() {
    return gen::build<pg::Parse>(gen::set(&pg::Parse::name, CString()),
                                 gen::set(&pg::Parse::query, CString()),
                                 gen::set(&pg::Parse::parameter_types));
  }
};

template <>
struct Arbitrary<pg::PasswordMessage> {
  static Gen<pg::PasswordMessage> arbitrary() {
    return gen::build<pg::PasswordMessage>(gen::set(&pg::PasswordMessage::password, CString()));
  }
};

template <>
struct Arbitrary<pg::GssResponse> {
  static Gen<pg::GssResponse> arbitrary() {
    return gen::build<pg::GssResponse>(gen::set(&pg::GssResponse::data, Bytes()));
  }
};

template <>
struct Arbitrary<pg::SaslInitialResponse> {
  static Gen<pg::SaslInitialResponse> arbitrary() {
    return gen::build<pg::SaslInitialResponse>(
        gen::set(&pg::SaslInitialResponse::mechanism, CString()),
        gen::set(&pg::SaslInitialResponse::data, NullableBytes()));
  }
};

template <>
struct Arbitrary<pg::SaslResponse> {
  static Gen<pg::SaslResponse> arbitrary() {
    return gen::build<pg::SaslResponse>(gen::set(&pg::SaslResponse::data, Bytes()));
  }
};

template <>
struct Arbitrary<pg::Query> {
  static Gen<pg::Query> arbitrary() {
    return gen::build<pg::Query>(gen::set(&pg::Query::sql, CString()));
  }
};

}  // namespace rc

// ---------------------------------------------------------------- checks

namespace switchyard::pg {
namespace {

template <typename T>
char TypeOf(const T&) {
  return T::kType;
}
char TypeOf(const CopyResponse& message) { return message.type; }
char TypeOf(const ErrorFields& message) { return message.type; }

template <typename T>
absl::StatusOr<T> DecodeAs(char /*type*/, std::string_view payload) {
  return T::Decode(payload);
}
template <>
absl::StatusOr<CopyResponse> DecodeAs<CopyResponse>(char type, std::string_view payload) {
  return CopyResponse::Decode(type, payload);
}
template <>
absl::StatusOr<ErrorFields> DecodeAs<ErrorFields>(char type, std::string_view payload) {
  return ErrorFields::Decode(type, payload);
}

// Messages ending in Byte_n up to the end: any prefix or extension is also a valid message.
template <typename T>
bool OpenEnded(const T&) {
  return false;
}
bool OpenEnded(const CopyData&) { return true; }
bool OpenEnded(const GssResponse&) { return true; }
bool OpenEnded(const SaslResponse&) { return true; }
bool OpenEnded(const Authentication& message) {
  return message.code == Authentication::kGssContinue ||
         message.code == Authentication::kSaslContinue ||
         message.code == Authentication::kSaslFinal;
}

uint32_t LengthWord(std::string_view bytes) {
  uint32_t word = 0;
  for (size_t i = 0; i < 4; ++i) word = (word << 8) | static_cast<uint8_t>(bytes[i]);
  return word;
}

struct CopiedFrame {
  char type = 0;
  std::string payload;
  std::string raw;
  friend bool operator==(const CopiedFrame&, const CopiedFrame&) = default;
};

// Feeds `bytes` cut at `cuts` (sorted offsets), draining Next() after every Append. With
// `startup_first`, the first packet is read with NextStartup() (its type is 0). Any error fails
// the property.
std::vector<CopiedFrame> Feed(Direction from, std::string_view bytes, std::vector<size_t> cuts,
                              bool startup_first) {
  cuts.push_back(bytes.size());
  std::sort(cuts.begin(), cuts.end());
  FrameReader reader(from);
  std::vector<CopiedFrame> frames;
  bool need_startup = startup_first;
  size_t at = 0;
  for (size_t cut : cuts) {
    reader.Append(bytes.substr(at, cut - at));
    at = cut;
    while (true) {
      if (need_startup) {
        auto packet = reader.NextStartup();
        RC_ASSERT(packet.ok());
        if (!packet->has_value()) break;
        frames.push_back({0, std::string((*packet)->payload), std::string((*packet)->raw)});
        need_startup = false;
        continue;
      }
      auto frame = reader.Next();
      RC_ASSERT(frame.ok());
      if (!frame->has_value()) break;
      frames.push_back(
          {(*frame)->type, std::string((*frame)->payload), std::string((*frame)->raw)});
    }
  }
  RC_ASSERT(reader.buffered() == 0u);
  return frames;
}

std::vector<size_t> EveryByte(size_t size) {
  std::vector<size_t> cuts(size);
  for (size_t i = 0; i < size; ++i) cuts[i] = i;
  return cuts;
}

std::vector<size_t> RandomCuts(size_t size) {
  return *rc::gen::container<std::vector<size_t>>(rc::gen::inRange<size_t>(0, size + 1));
}

// The prefix lengths worth trying: all of them for short payloads, else both ends and a stride.
std::vector<size_t> PrefixLengths(size_t size) {
  std::vector<size_t> lengths;
  for (size_t n = 0; n < size; ++n) {
    if (size <= 256 || n < 32 || size - n <= 32 || n % (size / 64) == 0) lengths.push_back(n);
  }
  return lengths;
}

template <typename T>
void CheckEveryTruncationAndExtensionFails(const T& message, std::string_view payload) {
  if (OpenEnded(message)) return;
  const char type = TypeOf(message);
  for (size_t n : PrefixLengths(payload.size())) {
    RC_ASSERT(!DecodeAs<T>(type, payload.substr(0, n)).ok());
  }
  for (char extra : {'\0', 'x'}) {
    std::string extended(payload);
    extended.push_back(extra);
    RC_ASSERT(!DecodeAs<T>(type, extended).ok());
  }
}

// The whole contract of one typed message.
template <typename T>
void CheckTyped(const T& message, Direction from) {
  const std::string bytes = message.Encode();
  RC_ASSERT(bytes.size() >= kHeaderSize);
  RC_ASSERT(bytes[0] == TypeOf(message));
  RC_ASSERT(LengthWord(std::string_view(bytes).substr(1)) == bytes.size() - 1);
  const std::string payload = bytes.substr(kHeaderSize);

  auto decoded = DecodeAs<T>(TypeOf(message), payload);
  RC_ASSERT(decoded.ok());
  RC_ASSERT(*decoded == message);

  const CopiedFrame expected{TypeOf(message), payload, bytes};
  RC_ASSERT(Feed(from, bytes, EveryByte(bytes.size()), false) ==
            std::vector<CopiedFrame>{expected});
  RC_ASSERT(Feed(from, bytes, RandomCuts(bytes.size()), false) ==
            std::vector<CopiedFrame>{expected});
  CheckEveryTruncationAndExtensionFails(message, payload);
}

// The same for an untyped startup-family packet.
template <typename T>
void CheckStartup(const T& message) {
  const std::string bytes = message.Encode();
  RC_ASSERT(bytes.size() >= 8u);
  RC_ASSERT(LengthWord(bytes) == bytes.size());
  const std::string payload = bytes.substr(4);

  auto decoded = T::Decode(payload);
  RC_ASSERT(decoded.ok());
  RC_ASSERT(*decoded == message);
  auto packet = DecodeStartupPacket(payload);
  RC_ASSERT(packet.ok());
  RC_ASSERT(std::holds_alternative<T>(*packet));
  RC_ASSERT(std::get<T>(*packet) == message);

  // Packets above the startup bound are the reader's to refuse, not the decoder's.
  if (bytes.size() <= kStartupPacketSizeMax) {
    const CopiedFrame expected{0, payload, bytes};
    RC_ASSERT(Feed(Direction::kFrontend, bytes, EveryByte(bytes.size()), true) ==
              std::vector<CopiedFrame>{expected});
    RC_ASSERT(Feed(Direction::kFrontend, bytes, RandomCuts(bytes.size()), true) ==
              std::vector<CopiedFrame>{expected});
  }
  CheckEveryTruncationAndExtensionFails(message, payload);
}

// ---------------------------------------------------------------- one property per message

#define SWITCHYARD_STARTUP_PROPERTY(T) \
  RC_GTEST_PROP(RoundTripTest, T, (const T& message)) { CheckStartup(message); }
#define SWITCHYARD_TYPED_PROPERTY(T, DIRECTION) \
  RC_GTEST_PROP(RoundTripTest, T, (const T& message)) { CheckTyped(message, Direction::DIRECTION); }

SWITCHYARD_STARTUP_PROPERTY(StartupMessage)
SWITCHYARD_STARTUP_PROPERTY(SslRequest)
SWITCHYARD_STARTUP_PROPERTY(GssEncRequest)
SWITCHYARD_STARTUP_PROPERTY(CancelRequest)

SWITCHYARD_TYPED_PROPERTY(Authentication, kBackend)
SWITCHYARD_TYPED_PROPERTY(BackendKeyData, kBackend)
SWITCHYARD_TYPED_PROPERTY(BindComplete, kBackend)
SWITCHYARD_TYPED_PROPERTY(CloseComplete, kBackend)
SWITCHYARD_TYPED_PROPERTY(CommandComplete, kBackend)
SWITCHYARD_TYPED_PROPERTY(CopyResponse, kBackend)
SWITCHYARD_TYPED_PROPERTY(DataRow, kBackend)
SWITCHYARD_TYPED_PROPERTY(EmptyQueryResponse, kBackend)
SWITCHYARD_TYPED_PROPERTY(ErrorFields, kBackend)
SWITCHYARD_TYPED_PROPERTY(FunctionCallResponse, kBackend)
SWITCHYARD_TYPED_PROPERTY(NegotiateProtocolVersion, kBackend)
SWITCHYARD_TYPED_PROPERTY(NoData, kBackend)
SWITCHYARD_TYPED_PROPERTY(NotificationResponse, kBackend)
SWITCHYARD_TYPED_PROPERTY(ParameterDescription, kBackend)
SWITCHYARD_TYPED_PROPERTY(ParameterStatus, kBackend)
SWITCHYARD_TYPED_PROPERTY(ParseComplete, kBackend)
SWITCHYARD_TYPED_PROPERTY(PortalSuspended, kBackend)
SWITCHYARD_TYPED_PROPERTY(ReadyForQuery, kBackend)
SWITCHYARD_TYPED_PROPERTY(RowDescription, kBackend)

SWITCHYARD_TYPED_PROPERTY(Bind, kFrontend)
SWITCHYARD_TYPED_PROPERTY(Close, kFrontend)
SWITCHYARD_TYPED_PROPERTY(Describe, kFrontend)
SWITCHYARD_TYPED_PROPERTY(CopyFail, kFrontend)
SWITCHYARD_TYPED_PROPERTY(Execute, kFrontend)
SWITCHYARD_TYPED_PROPERTY(Flush, kFrontend)
SWITCHYARD_TYPED_PROPERTY(FunctionCall, kFrontend)
SWITCHYARD_TYPED_PROPERTY(Parse, kFrontend)
SWITCHYARD_TYPED_PROPERTY(PasswordMessage, kFrontend)
SWITCHYARD_TYPED_PROPERTY(GssResponse, kFrontend)
SWITCHYARD_TYPED_PROPERTY(SaslInitialResponse, kFrontend)
SWITCHYARD_TYPED_PROPERTY(SaslResponse, kFrontend)
SWITCHYARD_TYPED_PROPERTY(Query, kFrontend)
SWITCHYARD_TYPED_PROPERTY(Sync, kFrontend)
SWITCHYARD_TYPED_PROPERTY(Terminate, kFrontend)

// CopyData and CopyDone travel both ways.
RC_GTEST_PROP(RoundTripTest, CopyDataBothWays, (const CopyData& message)) {
  CheckTyped(message, Direction::kFrontend);
  CheckTyped(message, Direction::kBackend);
}
RC_GTEST_PROP(RoundTripTest, CopyDoneBothWays, (const CopyDone& message)) {
  CheckTyped(message, Direction::kFrontend);
  CheckTyped(message, Direction::kBackend);
}

#undef SWITCHYARD_STARTUP_PROPERTY
#undef SWITCHYARD_TYPED_PROPERTY

// ---------------------------------------------------------------- streams of messages

template <typename T>
rc::Gen<std::string> Encoded() {
  return rc::gen::map(rc::gen::arbitrary<T>(), [](const T& message) { return message.Encode(); });
}

rc::Gen<std::string> AnyBackendMessage() {
  return rc::gen::oneOf(
      Encoded<Authentication>(), Encoded<BackendKeyData>(), Encoded<BindComplete>(),
      Encoded<CloseComplete>(), Encoded<CommandComplete>(), Encoded<CopyData>(),
      Encoded<CopyDone>(), Encoded<CopyResponse>(), Encoded<DataRow>(),
      Encoded<EmptyQueryResponse>(), Encoded<ErrorFields>(), Encoded<FunctionCallResponse>(),
      Encoded<NegotiateProtocolVersion>(), Encoded<NoData>(), Encoded<NotificationResponse>(),
      Encoded<ParameterDescription>(), Encoded<ParameterStatus>(), Encoded<ParseComplete>(),
      Encoded<PortalSuspended>(), Encoded<ReadyForQuery>(), Encoded<RowDescription>());
}

rc::Gen<std::string> AnyFrontendMessage() {
  return rc::gen::oneOf(Encoded<Bind>(), Encoded<Close>(), Encoded<CopyData>(), Encoded<CopyDone>(),
                        Encoded<CopyFail>(), Encoded<Describe>(), Encoded<Execute>(),
                        Encoded<Flush>(), Encoded<FunctionCall>(), Encoded<Parse>(),
                        Encoded<PasswordMessage>(), Encoded<GssResponse>(),
                        Encoded<SaslInitialResponse>(), Encoded<SaslResponse>(), Encoded<Query>(),
                        Encoded<Sync>(), Encoded<Terminate>());
}

std::vector<CopiedFrame> Expected(const std::vector<std::string>& messages, bool startup_first) {
  std::vector<CopiedFrame> frames;
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& bytes = messages[i];
    const size_t header = (startup_first && i == 0) ? 4 : kHeaderSize;
    const char type = (startup_first && i == 0) ? 0 : bytes[0];
    frames.push_back({type, bytes.substr(header), bytes});
  }
  return frames;
}

RC_GTEST_PROP(StreamTest, BackendMessagesBackToBackAtRandomSplits, ()) {
  const auto messages = *rc::gen::container<std::vector<std::string>>(AnyBackendMessage());
  std::string stream;
  for (const std::string& bytes : messages) stream += bytes;
  RC_ASSERT(Feed(Direction::kBackend, stream, RandomCuts(stream.size()), false) ==
            Expected(messages, false));
}

RC_GTEST_PROP(StreamTest, StartupThenFrontendMessagesAtRandomSplits,
              (const StartupMessage& startup)) {
  std::vector<std::string> messages = {startup.Encode()};
  RC_PRE(messages[0].size() <= kStartupPacketSizeMax);
  const auto rest = *rc::gen::container<std::vector<std::string>>(AnyFrontendMessage());
  messages.insert(messages.end(), rest.begin(), rest.end());
  std::string stream;
  for (const std::string& bytes : messages) stream += bytes;
  RC_ASSERT(Feed(Direction::kFrontend, stream, RandomCuts(stream.size()), true) ==
            Expected(messages, true));
}

}  // namespace
}  // namespace switchyard::pg
