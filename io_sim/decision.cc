// The decision-source helpers and the sources the simulator ships with.
#include "io_sim/decision.h"

#include <cstring>

#include "core/base/check.h"

namespace switchyard::io_sim {

bool DecisionSource::Chance(uint32_t numerator, uint32_t denominator, std::string_view what) {
  CHECK(denominator >= 1) << "probability with denominator 0 for " << what;
  if (numerator == 0) return false;
  if (numerator >= denominator) return true;
  return Below(denominator, what) < numerator;
}

int64_t DecisionSource::Between(int64_t lo, int64_t hi, std::string_view what) {
  CHECK(lo <= hi) << "empty range for " << what;
  if (lo == hi) return lo;
  const uint64_t span = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);
  CHECK(span < UINT64_MAX) << "range too wide for " << what;
  return static_cast<int64_t>(static_cast<uint64_t>(lo) + Below(span + 1, what));
}

size_t DecisionSource::Pick(size_t count, std::string_view what) {
  CHECK(count >= 1) << "nothing to pick for " << what;
  if (count == 1) return 0;
  return static_cast<size_t>(Below(count, what));
}

void DecisionSource::Bytes(char* out, size_t n, std::string_view what) {
  while (n > 0) {
    const uint32_t word = static_cast<uint32_t>(Below(uint64_t{1} << 32, what));
    const size_t take = n < 4 ? n : 4;
    for (size_t i = 0; i < take; ++i) out[i] = static_cast<char>((word >> (8 * i)) & 0xff);
    out += take;
    n -= take;
  }
}

uint64_t PrngDecisions::Below(uint64_t n, std::string_view what) {
  CHECK(n >= 1) << "Below(0) for " << what;
  const uint64_t value = n == 1 ? 0 : prng_.Below(n);
  ++decisions_;
  if (observer_) observer_(what, n, value);
  return value;
}

uint64_t ScriptedDecisions::Below(uint64_t n, std::string_view what) {
  CHECK(n >= 1) << "Below(0) for " << what;
  const uint64_t raw = next_ < values_.size() ? values_[next_] : fallback_;
  ++next_;
  return raw % n;
}

void PlannedDecisions::Plan(std::string_view what, uint64_t value) {
  auto it = plans_.find(what);
  if (it == plans_.end()) it = plans_.emplace(std::string(what), std::deque<uint64_t>{}).first;
  CHECK(it->second.size() < kPlansPerLabelMax) << "too many plans for " << what;
  it->second.push_back(value);
}

uint64_t PlannedDecisions::Below(uint64_t n, std::string_view what) {
  CHECK(n >= 1) << "Below(0) for " << what;
  ++decisions_;
  uint64_t value = kLast;
  auto it = plans_.find(what);
  if (it != plans_.end() && !it->second.empty()) {
    value = it->second.front();
    it->second.pop_front();
    ++planned_used_;
  }
  return value < n ? value : n - 1;
}

}  // namespace switchyard::io_sim
