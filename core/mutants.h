// Deliberately broken variants of single rules, for proving that the simulator's oracles have
// teeth (DESIGN.md sections 2 and 7). Compiled in only with SWITCHYARD_MUTANTS; otherwise every
// check below is a constant false and the optimizer removes the broken branch.
#pragma once

#include <cstdint>
#include <string_view>

namespace switchyard {

enum class Mutant : uint64_t {
  kSkipDiscardAll = 1 << 0,      // return connections to the pool without DISCARD ALL
  kDropReadyForQuery = 1 << 1,   // lose one ReadyForQuery on its way to the client
  kNeverRearm = 1 << 2,          // never re-arm one of a unit's sockets
  kLeakOnDisconnect = 1 << 3,    // never give a server connection back when a client leaves
  kCancelWrongServer = 1 << 4,   // forward a cancel to another server connection
  kForwardServerFatal = 1 << 5,  // pass a server's FATAL to the client as its own
  kIgnoreWatermark = 1 << 6,     // keep reading the server however slow the client is
};

inline constexpr bool IsMutant(uint64_t mutants, Mutant which) {
#ifdef SWITCHYARD_MUTANTS
  return (mutants & static_cast<uint64_t>(which)) != 0;
#else
  (void)mutants;
  (void)which;
  return false;
#endif
}

}  // namespace switchyard
