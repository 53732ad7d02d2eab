// The simulator's own pseudo-random numbers (DESIGN.md section 7): xoshiro256** seeded through
// splitmix64, with bounded-integer and probability helpers written here, because the std
// distributions differ between standard libraries and a seed must replay identically everywhere.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace switchyard::io_sim {

// splitmix64 (Steele, Lea, Flood; Vigna's reference code): a 64-bit counter through a mixer.
// Used to expand a seed into xoshiro's state and to derive sub-seeds.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  // The output mixer alone (no counter step).
  static uint64_t Mix(uint64_t z);

 private:
  uint64_t state_;
};

// FNV-1a, 64-bit: the byte hash behind sub-seed purposes (short strings, hashed once per run;
// the run hash, which sees every delivered byte, folds whole words instead: run_hash.h).
inline constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ULL;
inline constexpr uint64_t kFnvPrime = 0x100000001b3ULL;
uint64_t Fnv1a64(std::string_view bytes, uint64_t hash = kFnvOffset);

// A sub-seed for one purpose ("network", "nodes", ...): a hash of the purpose mixed into the
// root. Pure 64-bit arithmetic, so it is the same on every platform and compiler.
uint64_t DeriveSeed(uint64_t root, std::string_view purpose);

// xoshiro256** 1.0 (Blackman and Vigna).
class Prng {
 public:
  explicit Prng(uint64_t seed);
  // A generator in an exact state, to check against the reference implementation's vectors.
  static Prng FromStateForTest(const std::array<uint64_t, 4>& state);

  uint64_t seed() const { return seed_; }
  uint64_t Next();
  // Uniform in [0, n), unbiased (Lemire's multiply-and-reject). n must be at least 1.
  uint64_t Below(uint64_t n);
  // True with probability numerator/denominator (exactly; false for 0, true for >= 1).
  bool Chance(uint32_t numerator, uint32_t denominator);
  // Uniform in [lo, hi], both included.
  int64_t Between(int64_t lo, int64_t hi);
  // An independent generator for `purpose`, derived from this one's seed (not from how many
  // values it has produced, so adding a draw elsewhere never changes a split).
  Prng Split(std::string_view purpose) const { return Prng(DeriveSeed(seed_, purpose)); }

 private:
  uint64_t seed_;
  std::array<uint64_t, 4> s_;
};

// One root seed split into the sub-seeds of a simulation run (DESIGN.md section 7). Each part
// of the simulation draws from its own stream, so a change in the workload does not move the
// network's choices.
struct SimSeeds {
  uint64_t root = 0;
  uint64_t network = 0;
  uint64_t nodes = 0;
  uint64_t workload = 0;
  uint64_t scheduler = 0;
  uint64_t environment = 0;  // cancel secrets and SCRAM nonces the core asks for

  static SimSeeds FromRoot(uint64_t root);
  // "seed=1 network=0x... nodes=0x... ...": printed at the start of every run.
  std::string Describe() const;
};

}  // namespace switchyard::io_sim
