// The core's Environment in the simulator: connection ids from a counter, random bytes from
// the decision source (DESIGN.md section 2: a seed decides cancel secrets and SCRAM nonces too).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/io.h"
#include "io_sim/decision.h"

namespace switchyard::io_sim {

class SimEnvironment final : public Environment {
 public:
  explicit SimEnvironment(DecisionSource& decisions) : decisions_(decisions) {}

  ConnId NewConnId() override { return ConnId{++next_index_, 1}; }
  void RandomBytes(char* out, size_t n) override { decisions_.Bytes(out, n, "env.random"); }

  uint32_t conn_ids_issued() const { return next_index_; }

 private:
  DecisionSource& decisions_;
  uint32_t next_index_ = 0;
};

}  // namespace switchyard::io_sim
