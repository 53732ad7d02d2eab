// xoshiro256**, splitmix64 and the bounded helpers. Every operation is fixed-width unsigned
// arithmetic, so results do not depend on the platform.
#include "io_sim/prng.h"

#include "absl/strings/str_format.h"
#include "core/base/check.h"

namespace switchyard::io_sim {
namespace {

constexpr uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

uint64_t SplitMix64::Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t SplitMix64::Next() {
  state_ += 0x9e3779b97f4a7c15ULL;
  return Mix(state_);
}

uint64_t Fnv1a64(std::string_view bytes, uint64_t hash) {
  for (char c : bytes) {
    hash ^= static_cast<uint8_t>(c);
    hash *= kFnvPrime;
  }
  return hash;
}

uint64_t DeriveSeed(uint64_t root, std::string_view purpose) {
  // Mixing the root first keeps nearby roots (1, 2, 3...) from giving related sub-seeds.
  return SplitMix64::Mix(SplitMix64::Mix(root) ^ Fnv1a64(purpose));
}

Prng::Prng(uint64_t seed) : seed_(seed) {
  SplitMix64 expand(seed);
  for (uint64_t& word : s_) word = expand.Next();
  // splitmix64 is a bijection of its counter, so four consecutive outputs are never all zero
  // (xoshiro's one forbidden state); checked anyway because it would loop on zero forever.
  CHECK((s_[0] | s_[1] | s_[2] | s_[3]) != 0) << "xoshiro256** seeded with the zero state";
}

Prng Prng::FromStateForTest(const std::array<uint64_t, 4>& state) {
  Prng prng(0);
  prng.s_ = state;
  return prng;
}

uint64_t Prng::Next() {
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

uint64_t Prng::Below(uint64_t n) {
  CHECK(n >= 1) << "Below(0) has no value to return";
  // Lemire, "Fast Random Integer Generation in an Interval" (2019): the high word of x*n is
  // uniform once the low words below 2^64 mod n are rejected.
  unsigned __int128 product = static_cast<unsigned __int128>(Next()) * n;
  uint64_t low = static_cast<uint64_t>(product);
  if (low < n) {
    const uint64_t threshold = (0 - n) % n;
    while (low < threshold) {
      product = static_cast<unsigned __int128>(Next()) * n;
      low = static_cast<uint64_t>(product);
    }
  }
  return static_cast<uint64_t>(product >> 64);
}

bool Prng::Chance(uint32_t numerator, uint32_t denominator) {
  CHECK(denominator >= 1) << "probability with denominator 0";
  if (numerator == 0) return false;
  if (numerator >= denominator) return true;
  return Below(denominator) < numerator;
}

int64_t Prng::Between(int64_t lo, int64_t hi) {
  CHECK(lo <= hi) << "empty range [" << lo << ", " << hi << "]";
  const uint64_t span = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);
  const uint64_t offset = span == UINT64_MAX ? Next() : Below(span + 1);
  return static_cast<int64_t>(static_cast<uint64_t>(lo) + offset);
}

SimSeeds SimSeeds::FromRoot(uint64_t root) {
  SimSeeds seeds;
  seeds.root = root;
  seeds.network = DeriveSeed(root, "network");
  seeds.nodes = DeriveSeed(root, "nodes");
  seeds.workload = DeriveSeed(root, "workload");
  seeds.scheduler = DeriveSeed(root, "scheduler");
  seeds.environment = DeriveSeed(root, "environment");
  return seeds;
}

std::string SimSeeds::Describe() const {
  return absl::StrFormat(
      "seed=%d network=0x%016x nodes=0x%016x workload=0x%016x scheduler=0x%016x "
      "environment=0x%016x",
      root, network, nodes, workload, scheduler, environment);
}

}  // namespace switchyard::io_sim
