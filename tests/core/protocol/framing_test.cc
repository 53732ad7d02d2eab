// FrameReader: bounds checked from the header, input split at any byte, sticky errors.
#include "core/protocol/framing.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "core/protocol/messages.h"

namespace switchyard::pg {
namespace {

std::string Header(char type, uint32_t length) {
  std::string out;
  if (type != 0) out.push_back(type);
  out.push_back(static_cast<char>(length >> 24));
  out.push_back(static_cast<char>(length >> 16));
  out.push_back(static_cast<char>(length >> 8));
  out.push_back(static_cast<char>(length));
  return out;
}

// Every frame the reader yields for `bytes` fed in one piece, as (type, payload) copies.
std::vector<std::pair<char, std::string>> FramesOf(FrameReader& reader, std::string_view bytes) {
  reader.Append(bytes);
  std::vector<std::pair<char, std::string>> frames;
  while (true) {
    auto frame = reader.Next();
    EXPECT_TRUE(frame.ok()) << frame.status();
    if (!frame.ok() || !frame->has_value()) return frames;
    frames.emplace_back((*frame)->type, std::string((*frame)->payload));
  }
}

TEST(FrameReaderTest, QueryFedOneByteAtATimeYieldsOneFrameAtTheLastByte) {
  const std::string bytes("Q\0\0\0\x0dSELECT 1\0", 14);
  FrameReader reader(Direction::kFrontend);
  for (size_t i = 0; i + 1 < bytes.size(); ++i) {
    reader.Append(bytes.substr(i, 1));
    auto frame = reader.Next();
    ASSERT_TRUE(frame.ok()) << frame.status();
    EXPECT_FALSE(frame->has_value()) << "frame too early at byte " << i;
    EXPECT_EQ(reader.buffered(), i + 1);
  }
  reader.Append(bytes.substr(bytes.size() - 1));
  auto frame = reader.Next();
  ASSERT_TRUE(frame.ok()) << frame.status();
  ASSERT_TRUE(frame->has_value());
  EXPECT_EQ((*frame)->type, 'Q');
  EXPECT_EQ((*frame)->payload, std::string_view("SELECT 1\0", 9));
  EXPECT_EQ((*frame)->raw, bytes);
  EXPECT_EQ(reader.buffered(), 0u);
  auto after = reader.Next();
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(after->has_value());
}

TEST(FrameReaderTest, BackToBackMessagesInOneAppendComeOutInOrder) {
  const std::string stream = ParseComplete{}.Encode() + BindComplete{}.Encode() +
                             CommandComplete{.tag = "SELECT 1"}.Encode() +
                             ReadyForQuery{.status = 'T'}.Encode();
  FrameReader reader(Direction::kBackend);
  auto frames = FramesOf(reader, stream);
  ASSERT_EQ(frames.size(), 4u);
  EXPECT_EQ(frames[0], std::make_pair('1', std::string()));
  EXPECT_EQ(frames[1], std::make_pair('2', std::string()));
  EXPECT_EQ(frames[2], std::make_pair('C', std::string("SELECT 1\0", 9)));
  EXPECT_EQ(frames[3], std::make_pair('Z', std::string("T")));
}

TEST(FrameReaderTest, UnconsumedHoldsThePartialMessageAfterTheLastFrame) {
  const std::string whole = Sync{}.Encode() + Query{.sql = "SELECT 2"}.Encode();
  FrameReader reader(Direction::kFrontend);
  auto frames = FramesOf(reader, whole.substr(0, whole.size() - 3));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].first, 'S');
  EXPECT_EQ(reader.Unconsumed(), whole.substr(5, whole.size() - 8));
  EXPECT_EQ(reader.buffered(), whole.size() - 8);
}

TEST(FrameReaderTest, LengthBelowFourIsRejected) {
  for (uint32_t length : {0u, 1u, 3u}) {
    FrameReader reader(Direction::kFrontend);
    reader.Append(Header('Q', length));
    auto frame = reader.Next();
    ASSERT_FALSE(frame.ok()) << "length " << length;
    EXPECT_EQ(frame.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(frame.status().message().find("Query"), std::string_view::npos) << frame.status();
  }
}

TEST(FrameReaderTest, LengthFourIsAnEmptyMessage) {
  FrameReader reader(Direction::kFrontend);
  auto frames = FramesOf(reader, Header('S', 4));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0], std::make_pair('S', std::string()));
}

// The length is judged from the five header bytes alone: the reader never waits for (or makes
// room for) a body it will refuse.
TEST(FrameReaderTest, HugeLengthsFailFromTheHeaderAlone) {
  {
    FrameReader reader(Direction::kBackend);
    reader.Append(Header('D', 0x80000000u));
    auto frame = reader.Next();
    ASSERT_FALSE(frame.ok());
    EXPECT_EQ(frame.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(frame.status().message().find("DataRow"), std::string_view::npos);
    EXPECT_NE(frame.status().message().find("2147483648"), std::string_view::npos);
    EXPECT_EQ(reader.buffered(), 5u);
  }
  {
    FrameReader reader(Direction::kBackend);
    reader.Append(Header('D', 0xffffffffu));
    EXPECT_FALSE(reader.Next().ok());
  }
  {
    FrameReader reader(Direction::kBackend);
    reader.Append(Header('D', 0x7fffffffu));
    auto frame = reader.Next();
    ASSERT_FALSE(frame.ok());
    EXPECT_EQ(frame.status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_NE(frame.status().message().find("DataRow"), std::string_view::npos);
    EXPECT_NE(frame.status().message().find("2147483647"), std::string_view::npos);
  }
}

TEST(FrameReaderTest, MessageSizeMaxCountsTypeAndLengthWord) {
  constexpr size_t kMax = 100;
  {
    // 1 + 99 = 100 bytes: exactly at the bound.
    FrameReader reader(Direction::kFrontend, kMax);
    std::string payload(94, 'x');
    payload.push_back('\0');
    auto frames = FramesOf(reader, Header('Q', 99) + payload);
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].second, payload);
  }
  {
    FrameReader reader(Direction::kFrontend, kMax);
    reader.Append(Header('Q', 100));
    auto frame = reader.Next();
    ASSERT_FALSE(frame.ok());
    EXPECT_EQ(frame.status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_NE(frame.status().message().find("Query"), std::string_view::npos);
    EXPECT_NE(frame.status().message().find("100"), std::string_view::npos);
  }
}

TEST(FrameReaderTest, UnknownTypeFailsOnItsFirstByte) {
  FrameReader frontend(Direction::kFrontend);
  frontend.Append("Z");  // ReadyForQuery is a backend message
  auto frame = frontend.Next();
  ASSERT_FALSE(frame.ok());
  EXPECT_EQ(frame.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(frame.status().message().find("'Z'"), std::string_view::npos) << frame.status();

  FrameReader backend(Direction::kBackend);
  backend.Append(Query{.sql = "x"}.Encode());  // Query is a frontend message
  EXPECT_FALSE(backend.Next().ok());

  FrameReader binary(Direction::kBackend);
  binary.Append(std::string(1, '\0'));
  auto zero = binary.Next();
  ASSERT_FALSE(zero.ok());
  EXPECT_NE(zero.status().message().find("0x00"), std::string_view::npos) << zero.status();
}

TEST(FrameReaderTest, ErrorsAreSticky) {
  FrameReader reader(Direction::kFrontend);
  reader.Append(Header('Q', 2));
  auto first = reader.Next();
  ASSERT_FALSE(first.ok());
  // Valid bytes afterwards do not revive the stream.
  reader.Append(Sync{}.Encode());
  for (int i = 0; i < 3; ++i) {
    auto again = reader.Next();
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.status(), first.status());
  }
  auto startup = reader.NextStartup();
  ASSERT_FALSE(startup.ok());
  EXPECT_EQ(startup.status(), first.status());
}

TEST(FrameReaderTest, StartupPacketThenTypedMessagesShareOneStream) {
  StartupMessage startup;
  startup.parameters = {{"user", "alice"}, {"database", "app"}};
  const std::string stream = startup.Encode() + Query{.sql = "SELECT 1"}.Encode();
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    FrameReader reader(Direction::kFrontend);
    reader.Append(stream.substr(0, cut));
    auto first = reader.NextStartup();
    ASSERT_TRUE(first.ok()) << first.status();
    std::string startup_payload;
    if (first->has_value()) startup_payload = std::string((*first)->payload);
    reader.Append(stream.substr(cut));
    if (!first->has_value()) {
      first = reader.NextStartup();
      ASSERT_TRUE(first.ok() && first->has_value()) << "cut " << cut;
      startup_payload = std::string((*first)->payload);
    }
    auto decoded = StartupMessage::Decode(startup_payload);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, startup);
    auto query = reader.Next();
    ASSERT_TRUE(query.ok() && query->has_value()) << "cut " << cut;
    EXPECT_EQ((*query)->type, 'Q');
  }
}

TEST(FrameReaderTest, StartupRawIncludesTheLengthWord) {
  FrameReader reader(Direction::kFrontend);
  const std::string ssl = SslRequest{}.Encode();
  reader.Append(ssl);
  auto frame = reader.NextStartup();
  ASSERT_TRUE(frame.ok() && frame->has_value());
  EXPECT_EQ((*frame)->raw, ssl);
  EXPECT_EQ((*frame)->payload, ssl.substr(4));
}

TEST(FrameReaderTest, StartupLengthBelowEightIsRejected) {
  for (uint32_t length : {0u, 4u, 7u}) {
    FrameReader reader(Direction::kFrontend);
    reader.Append(Header(0, length));
    auto frame = reader.NextStartup();
    ASSERT_FALSE(frame.ok()) << "length " << length;
    EXPECT_EQ(frame.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(FrameReaderTest, StartupPacketAboveTenThousandBytesIsRejected) {
  for (uint32_t length : {10001u, 0x7fffffffu, 0x80000000u}) {
    FrameReader reader(Direction::kFrontend);
    reader.Append(Header(0, length));
    auto frame = reader.NextStartup();
    ASSERT_FALSE(frame.ok()) << "length " << length;
    EXPECT_EQ(frame.status().code(), absl::StatusCode::kResourceExhausted);
  }
  // Exactly the bound is accepted.
  FrameReader reader(Direction::kFrontend);
  std::string packet = Header(0, kStartupPacketSizeMax);
  packet.resize(kStartupPacketSizeMax, 'a');
  reader.Append(packet);
  auto frame = reader.NextStartup();
  ASSERT_TRUE(frame.ok()) << frame.status();
  ASSERT_TRUE(frame->has_value());
  EXPECT_EQ((*frame)->raw.size(), kStartupPacketSizeMax);
}

// Many small frames read out of one large buffer, interleaved with partial appends: the
// compaction must never lose or duplicate bytes.
TEST(FrameReaderTest, ManySmallFramesAcrossPartialAppends) {
  std::string stream;
  for (int i = 0; i < 2000; ++i) {
    stream += DataRow{.values = {std::to_string(i), std::nullopt}}.Encode();
  }
  FrameReader reader(Direction::kBackend);
  int next = 0;
  for (size_t at = 0; at < stream.size(); at += 37) {
    reader.Append(std::string_view(stream).substr(at, 37));
    while (true) {
      auto frame = reader.Next();
      ASSERT_TRUE(frame.ok()) << frame.status();
      if (!frame->has_value()) break;
      auto row = DataRow::Decode((*frame)->payload);
      ASSERT_TRUE(row.ok()) << row.status();
      ASSERT_EQ(row->values.size(), 2u);
      EXPECT_EQ(row->values[0], std::to_string(next));
      ++next;
    }
  }
  EXPECT_EQ(next, 2000);
  EXPECT_EQ(reader.buffered(), 0u);
}

TEST(IsKnownTypeTest, ExactlyTheProtocolThreeTypes) {
  const std::string frontend = "BCdcfDEHFPpQSX";
  const std::string backend = "RK23CdcGHWDIEVvnNAtS1sZT";
  for (int byte = 0; byte < 256; ++byte) {
    const char type = static_cast<char>(byte);
    EXPECT_EQ(IsKnownType(Direction::kFrontend, type), frontend.find(type) != std::string::npos)
        << "frontend " << byte;
    EXPECT_EQ(IsKnownType(Direction::kBackend, type), backend.find(type) != std::string::npos)
        << "backend " << byte;
  }
}

TEST(TypeNameTest, NamesDependOnDirection) {
  EXPECT_EQ(TypeName(Direction::kFrontend, 'Q'), "Query");
  EXPECT_EQ(TypeName(Direction::kBackend, 'D'), "DataRow");
  EXPECT_EQ(TypeName(Direction::kFrontend, 'D'), "Describe");
  EXPECT_EQ(TypeName(Direction::kBackend, 'E'), "ErrorResponse");
  EXPECT_EQ(TypeName(Direction::kFrontend, 'E'), "Execute");
  EXPECT_EQ(TypeName(Direction::kBackend, 'S'), "ParameterStatus");
  EXPECT_EQ(TypeName(Direction::kFrontend, 'S'), "Sync");
  EXPECT_EQ(TypeName(Direction::kBackend, 'H'), "CopyOutResponse");
  EXPECT_EQ(TypeName(Direction::kFrontend, 'H'), "Flush");
  EXPECT_EQ(TypeName(Direction::kBackend, 'Q'), "Unknown");
  EXPECT_EQ(TypeName(Direction::kFrontend, 'Z'), "Unknown");
  // Every known type has a real name.
  for (int byte = 0; byte < 256; ++byte) {
    for (Direction from : {Direction::kFrontend, Direction::kBackend}) {
      const char type = static_cast<char>(byte);
      EXPECT_EQ(IsKnownType(from, type), TypeName(from, type) != "Unknown") << byte;
    }
  }
}

}  // namespace
}  // namespace switchyard::pg
