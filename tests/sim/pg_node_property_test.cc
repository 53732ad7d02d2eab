// Properties of a simulated node under generated input: every Query gets exactly one
// ReadyForQuery whatever the statements do, the reported status matches the session, and
// arbitrary bytes end in answers or a FATAL, never in a broken invariant.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "sim/pg_node.h"
#include "tests/sim/pg_test_client.h"

namespace switchyard::sim {
namespace {

using testing::TestClient;

// Statements of every kind, valid and not, so generated sequences wander through implicit and
// explicit transactions, failed ones, savepoints, session state and errors.
const std::vector<std::string>& StatementPool() {
  static const std::vector<std::string> pool = {
      "BEGIN",
      "BEGIN READ ONLY",
      "COMMIT",
      "ROLLBACK",
      "SAVEPOINT s",
      "ROLLBACK TO SAVEPOINT s",
      "RELEASE s",
      "INSERT INTO kv VALUES ('a', '1')",
      "INSERT INTO kv VALUES ('b', '2') ON CONFLICT (k) DO UPDATE SET v = kv.v || EXCLUDED.v",
      "UPDATE kv SET v = v || 'x' WHERE k = 'a'",
      "DELETE FROM kv WHERE k = 'b'",
      "SELECT k, v FROM kv ORDER BY k",
      "SELECT count(*) FROM kv",
      "SELECT v FROM kv WHERE k = 'a' FOR UPDATE",
      "SET application_name = 'p'",
      "SET LOCAL work_mem = '8MB'",
      "RESET ALL",
      "SHOW application_name",
      "DISCARD ALL",
      "PREPARE p AS SELECT v FROM kv WHERE k = $1",
      "EXECUTE p('a')",
      "DEALLOCATE ALL",
      "LISTEN ch",
      "NOTIFY ch, 'x'",
      "UNLISTEN *",
      "SELECT nope FROM kv",
      "SELECT 1/",
      "SELECT pg_current_wal_lsn()",
      "",
  };
  return pool;
}

RC_GTEST_PROP(PgNodePropertyTest, EveryQueryGetsExactlyOneReadyForQuery, ()) {
  const auto picks = *rc::gen::container<std::vector<std::vector<size_t>>>(
      rc::gen::container<std::vector<size_t>>(rc::gen::inRange<size_t>(0, StatementPool().size())));
  Instant now;
  PgNode node(NodeOptions{});
  TestClient client(node, 1, &now);
  client.Startup();
  for (const std::vector<size_t>& query : picks) {
    std::string sql;
    for (size_t pick : query) sql += StatementPool()[pick] + ";";
    std::vector<std::string> answer = client.Query(sql);
    RC_ASSERT(!answer.empty());
    RC_ASSERT(std::count_if(answer.begin(), answer.end(),
                            [](const std::string& m) { return m.rfind("Z:", 0) == 0; }) == 1);
    RC_ASSERT(answer.back().rfind("Z:", 0) == 0);
    RC_ASSERT(answer.back()[2] == node.InspectSession(1)->transaction_status);
    node.CheckInvariants();
  }
  client.Query("ROLLBACK");
  RC_ASSERT(node.InspectSession(1)->transaction_status == 'I');
}

RC_GTEST_PROP(PgNodePropertyTest, ArbitraryBytesNeverBreakTheNode, ()) {
  const auto chunks = *rc::gen::container<std::vector<std::string>>(rc::gen::string<std::string>());
  Instant now;
  PgNode node(NodeOptions{});
  TestClient client(node, 1, &now);
  const bool started = *rc::gen::arbitrary<bool>();
  if (started) client.Startup();
  for (const std::string& chunk : chunks) {
    node.Receive(1, chunk, now);
    node.CheckInvariants();
    node.TakeOutput(1);
    if (node.WantsClose(1)) break;
  }
  node.Close(1, now);
  node.CheckInvariants();
  RC_ASSERT(node.SessionIds().empty());
}

}  // namespace
}  // namespace switchyard::sim
