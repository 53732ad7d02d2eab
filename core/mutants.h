// Deliberately broken variants of single rules, for proving that the simulator's oracles have
// teeth (DESIGN.md sections 2 and 7). Compiled in only with SWITCHYARD_MUTANTS, which only the
// simulator's build defines (cmake/Switchyard.cmake); otherwise every check below is a constant
// false and the optimizer removes the broken branch.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace switchyard {

enum class Mutant : uint64_t {
  kSkipDiscardAll = 1 << 0,      // return connections to the pool without DISCARD ALL
  kDropReadyForQuery = 1 << 1,   // lose one ReadyForQuery on its way to the client
  kNeverRearm = 1 << 2,          // never re-arm one of a unit's sockets
  kLeakOnDisconnect = 1 << 3,    // never give a server connection back when a client leaves
  kCancelWrongServer = 1 << 4,   // deliver a cancel to another client's unit
  kForwardServerFatal = 1 << 5,  // pass a server's FATAL to the client as its own
  kIgnoreWatermark = 1 << 6,     // keep reading the server however slow the client is
  // Routing and failover (DESIGN.md section 5).
  kStaleReadAfterWrite = 1 << 7,      // send reads to any replica, however far behind our writes
  kSkipReplayAfterLoss = 1 << 8,      // a replacement connection gets none of the session's SETs
  kRetryWriteAfterLoss = 1 << 9,      // resend any statement whose connection was lost
  kReadInWriteTransaction = 1 << 10,  // route reads inside a read-write transaction too
  kLockingReadToReplica = 1 << 11,    // SELECT ... FOR UPDATE/SHARE counts as a read
  kSplitSyncBatch = 1 << 12,          // route a Sync batch by its first statement only
  kForgetLostWrite = 1 << 13,         // a write lost with its connection does not hold reads back
};

struct MutantInfo {
  Mutant mutant;
  std::string_view name;  // as `switchyard sim --mutant NAME` spells it
  std::string_view what;
};

inline constexpr std::array<MutantInfo, 14> kMutants{{
    {Mutant::kSkipDiscardAll, "skip-discard-all",
     "return server connections to the pool without DISCARD ALL"},
    {Mutant::kDropReadyForQuery, "drop-ready-for-query",
     "lose the ReadyForQuery that ends a client's second query"},
    {Mutant::kNeverRearm, "never-rearm",
     "never re-arm a unit's server socket for reading after its client's second query"},
    {Mutant::kLeakOnDisconnect, "leak-on-disconnect",
     "never give a server connection back when its client leaves"},
    {Mutant::kCancelWrongServer, "cancel-wrong-server",
     "deliver a matched cancel to the unit of another client, whose query it cancels"},
    {Mutant::kForwardServerFatal, "forward-server-fatal",
     "pass a server's FATAL to the client as if it were the client's own"},
    {Mutant::kIgnoreWatermark, "ignore-watermark",
     "keep reading the server however far behind the client is"},
    {Mutant::kStaleReadAfterWrite, "stale-read-after-write",
     "send a client's reads to any replica, even one that has not replayed its own writes"},
    {Mutant::kSkipReplayAfterLoss, "skip-replay-after-loss",
     "give a client a replacement server connection without replaying its SETs"},
    {Mutant::kRetryWriteAfterLoss, "retry-write-after-loss",
     "resend a statement whose server connection was lost, writes included"},
    {Mutant::kReadInWriteTransaction, "read-in-write-transaction",
     "route a read inside a read-write transaction to a replica"},
    {Mutant::kLockingReadToReplica, "locking-read-to-replica",
     "route SELECT ... FOR UPDATE/SHARE to a replica as if it were a plain read"},
    {Mutant::kSplitSyncBatch, "split-sync-batch",
     "route an extended-protocol Sync batch by its first statement, not all of them"},
    {Mutant::kForgetLostWrite, "forget-lost-write",
     "let a client read from lagging replicas right after its write was lost with its "
     "connection (it may have committed)"},
}};

inline constexpr bool kMutantsCompiledIn =
#ifdef SWITCHYARD_MUTANTS
    true;
#else
    false;
#endif

inline std::optional<Mutant> MutantByName(std::string_view name) {
  for (const MutantInfo& info : kMutants) {
    if (info.name == name) return info.mutant;
  }
  return std::nullopt;
}

inline std::string_view MutantName(Mutant mutant) {
  for (const MutantInfo& info : kMutants) {
    if (info.mutant == mutant) return info.name;
  }
  return "unknown";
}

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
