// CRC32C against published vectors (RFC 3720 appendix B.4 and the common check value), on both
// the portable and the accelerated path, and the two paths against each other at every
// alignment and length.
#include "core/trace/crc32c.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <string>

namespace switchyard::trace {
namespace {

struct Vector {
  std::string data;
  uint32_t crc;
};

std::vector<Vector> KnownVectors() {
  std::string ascending;
  std::string descending;
  for (int i = 0; i < 32; ++i) {
    ascending.push_back(static_cast<char>(i));
    descending.push_back(static_cast<char>(31 - i));
  }
  // RFC 3720 B.4: an iSCSI SCSI Read (10) command PDU.
  const unsigned char iscsi[48] = {0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00,
                                   0x00, 0x18, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                   0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  return {
      {"", 0x00000000},
      {"a", 0xC1D04330},
      {"123456789", 0xE3069283},
      {"The quick brown fox jumps over the lazy dog", 0x22620404},
      {std::string(32, '\0'), 0x8A9136AA},
      {std::string(32, '\xff'), 0x62A8AB43},
      {ascending, 0x46DD794E},
      {descending, 0x113FDB5C},
      {std::string(reinterpret_cast<const char*>(iscsi), sizeof(iscsi)), 0xD9963A56},
  };
}

TEST(Crc32cTest, KnownVectorsOnEveryPath) {
  RecordProperty("accelerated", Crc32cAccelerated() ? "sse4.2" : "no");
  for (const Vector& vector : KnownVectors()) {
    SCOPED_TRACE(testing::PrintToString(vector.data));
    EXPECT_EQ(Crc32c(vector.data), vector.crc);
    EXPECT_EQ(Crc32cPortable(vector.data), vector.crc);
  }
}

TEST(Crc32cTest, ContinuesAcrossPieces) {
  // Split at every point: the slicing loop and the byte loop must hand over correctly.
  const std::string data = "123456789 and a tail longer than one eight-byte block";
  for (size_t split = 0; split <= data.size(); ++split) {
    const std::string_view head = std::string_view(data).substr(0, split);
    const std::string_view tail = std::string_view(data).substr(split);
    EXPECT_EQ(Crc32c(tail, Crc32c(head)), Crc32c(data)) << split;
    EXPECT_EQ(Crc32cPortable(tail, Crc32cPortable(head)), Crc32c(data)) << split;
  }
}

TEST(Crc32cTest, DetectsEverySingleBitFlip) {
  const std::string data = "SELECT * FROM orders WHERE id = 42";
  const uint32_t original = Crc32c(data);
  for (size_t i = 0; i < data.size() * 8; ++i) {
    std::string flipped = data;
    flipped[i / 8] = static_cast<char>(flipped[i / 8] ^ (1 << (i % 8)));
    EXPECT_NE(Crc32c(flipped), original) << "bit " << i;
  }
}

RC_GTEST_PROP(Crc32cProperty, AcceleratedAgreesWithPortableAtAnyAlignment,
              (const std::string& data)) {
  const size_t offset = *rc::gen::inRange<size_t>(0, data.size() + 1);
  const std::string_view view = std::string_view(data).substr(offset);
  const uint32_t seed = *rc::gen::arbitrary<uint32_t>();
  RC_ASSERT(Crc32c(view, seed) == Crc32cPortable(view, seed));
}

RC_GTEST_PROP(Crc32cProperty, ConcatenationIsContinuation,
              (const std::string& head, const std::string& tail)) {
  RC_ASSERT(Crc32c(tail, Crc32c(head)) == Crc32c(head + tail));
}

}  // namespace
}  // namespace switchyard::trace
