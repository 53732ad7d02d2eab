// SessionHistory: which session state counts (PostgreSQL's transaction rules), pins, bounds, and
// replay plans; plus a RapidCheck model of PostgreSQL sessions checked against the history.
#include "core/session/history.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/core/session/history_model.h"

// In switchyard::testing, where history_model.h puts the builders, the replaying server and the
// model. (GoogleTest and RapidCheck name their own namespace ::testing in full.)
namespace switchyard::testing {
namespace {

// Sends one simple Query and answers it: 'c' CommandComplete, 'e' ErrorResponse, then
// ReadyForQuery with `status`.
void Exchange(SessionHistory& h, std::vector<StatementInfo> statements, std::string_view replies,
              char status) {
  h.OnQuery(Q(std::move(statements)));
  for (char reply : replies) {
    if (reply == 'c') h.OnCommandComplete();
    if (reply == 'e') h.OnErrorResponse();
  }
  h.OnReadyForQuery(status);
  h.CheckInvariants();
}

// What a fresh server connection holds after replay.
Observed Replayed(const SessionHistory& h) {
  Observed server;
  ReplayPlan plan = h.Plan(AppliedState{});
  EXPECT_TRUE(ApplyPlan(plan, &server));
  EXPECT_TRUE(h.Plan(plan.after).empty());
  EXPECT_FALSE(h.NeedsReplay(plan.after));
  return server;
}
std::map<std::string, std::string> Settings(const SessionHistory& h) {
  return Replayed(h).settings;
}
using Map = std::map<std::string, std::string>;

// ---- Which SETs count.

TEST(HistoryTest, SetCountsOnceItsQueryEnds) {
  SessionHistory h;
  h.OnQuery(Q({Set("work_mem", "'64MB'")}));
  h.OnCommandComplete();
  EXPECT_EQ(h.Value("work_mem"), "'64MB'");  // the session sees it already
  EXPECT_TRUE(Settings(h).empty());          // but it is not committed yet
  h.OnReadyForQuery('I');
  h.CheckInvariants();
  EXPECT_EQ(Settings(h), (Map{{"work_mem", "'64MB'"}}));
}

TEST(HistoryTest, ErrorInMultiStatementQueryUndoesEarlierSets) {
  SessionHistory h;
  Exchange(h, {Set("a.x", "1"), Set("a.y", "2"), Select()}, "cce", 'I');
  EXPECT_TRUE(Settings(h).empty());
  EXPECT_EQ(h.Value("a.x"), std::nullopt);
  EXPECT_TRUE(h.tracking());
}

TEST(HistoryTest, CommitInsideQueryStringCommitsWhatCameBefore) {
  SessionHistory h;
  Exchange(h, {Set("a.x", "1"), Txn(TxnControl::kCommit), Set("a.y", "2"), Select()}, "ccce", 'I');
  EXPECT_EQ(Settings(h), (Map{{"a.x", "1"}}));
}

TEST(HistoryTest, BeginInsideQueryStringMakesEarlierSetsPartOfTheBlock) {
  SessionHistory h;
  Exchange(h, {Set("a.x", "1"), Txn(TxnControl::kBegin), Set("a.y", "2")}, "ccc", 'T');
  EXPECT_TRUE(Settings(h).empty());
  Exchange(h, {Txn(TxnControl::kRollback)}, "c", 'I');
  EXPECT_TRUE(Settings(h).empty());
  EXPECT_EQ(h.Value("a.x"), std::nullopt);
}

TEST(HistoryTest, ExplicitTransactionCountsAtCommitOnly) {
  SessionHistory h;
  Exchange(h, {Txn(TxnControl::kBegin)}, "c", 'T');
  Exchange(h, {Set("a.x", "1")}, "c", 'T');
  EXPECT_TRUE(Settings(h).empty());
  Exchange(h, {Txn(TxnControl::kCommit)}, "c", 'I');
  EXPECT_EQ(Settings(h), (Map{{"a.x", "1"}}));
}

TEST(HistoryTest, RolledBackOrFailedTransactionsKeepNothing) {
  SessionHistory h;
  Exchange(h, {Txn(TxnControl::kBegin), Set("a.x", "1")}, "cc", 'T');
  Exchange(h, {Txn(TxnControl::kRollback)}, "c", 'I');
  // An error aborts the block; its COMMIT answers ROLLBACK.
  Exchange(h, {Txn(TxnControl::kBegin), Set("a.y", "1"), Select()}, "cce", 'E');
  Exchange(h, {Select()}, "e", 'E');
  Exchange(h, {Txn(TxnControl::kCommit)}, "c", 'I');
  // A COMMIT that fails (deferred constraint) rolls back too.
  Exchange(h, {Txn(TxnControl::kBegin), Set("a.z", "1")}, "cc", 'T');
  Exchange(h, {Txn(TxnControl::kCommit)}, "e", 'I');
  EXPECT_TRUE(Settings(h).empty());
  EXPECT_TRUE(h.tracking());
}

TEST(HistoryTest, PrepareTransactionKeepsSetsLikeCommit) {
  SessionHistory h;
  Exchange(h, {Txn(TxnControl::kBegin), Set("a.x", "1"), Txn(TxnControl::kPrepareTransaction)},
           "ccc", 'I');
  EXPECT_EQ(Settings(h), (Map{{"a.x", "1"}}));
}

TEST(HistoryTest, RollbackToSavepointUndoesLaterSetsAndReleaseKeepsThem) {
  SessionHistory h;
  Exchange(h,
           {Txn(TxnControl::kBegin), Set("a.x", "1"), Txn(TxnControl::kSavepoint), Set("a.y", "2"),
            Select()},
           "cccce", 'E');
  Exchange(h, {Txn(TxnControl::kRollbackTo)}, "c", 'T');  // recovers the failed block
  EXPECT_EQ(h.Value("a.y"), std::nullopt);
  Exchange(h, {Set("a.z", "3"), Txn(TxnControl::kRelease), Txn(TxnControl::kCommit)}, "ccc", 'I');
  EXPECT_EQ(Settings(h), (Map{{"a.x", "1"}, {"a.z", "3"}}));
  EXPECT_TRUE(h.tracking());
}

TEST(HistoryTest, NestedSavepointsWithoutChangesBetweenThemStayExact) {
  // Django's nested atomic blocks: the ROLLBACK TO target is unknown (no names in
  // statement.h), but every candidate undoes the same changes.
  SessionHistory h;
  Exchange(h,
           {Txn(TxnControl::kBegin), Txn(TxnControl::kSavepoint), Txn(TxnControl::kSavepoint),
            Set("a.x", "1"), Txn(TxnControl::kRollbackTo), Txn(TxnControl::kRelease),
            Txn(TxnControl::kCommit)},
           "ccccccc", 'I');
  EXPECT_TRUE(h.tracking());
  EXPECT_TRUE(Settings(h).empty());
}

TEST(HistoryTest, SavepointLoopsStayWithinBounds) {
  // An outer atomic block with many inner ones, each released: RELEASE always drops the newest.
  SessionHistory h(SessionHistoryOptions{.entries_max = 4});
  Exchange(h, {Txn(TxnControl::kBegin), Txn(TxnControl::kSavepoint)}, "cc", 'T');
  for (int i = 0; i < 20; ++i) {
    Exchange(h, {Txn(TxnControl::kSavepoint), Select(), Txn(TxnControl::kRelease)}, "ccc", 'T');
  }
  Exchange(h, {Set("a.x", "1"), Txn(TxnControl::kRelease), Txn(TxnControl::kCommit)}, "ccc", 'I');
  EXPECT_EQ(h.pinned(), 0u);
  EXPECT_EQ(Settings(h), (Map{{"a.x", "1"}}));
}

TEST(HistoryTest, AmbiguousRollbackToPinsOnlyIfTheTransactionCommits) {
  std::vector<StatementInfo> ambiguous = {Txn(TxnControl::kBegin), Txn(TxnControl::kSavepoint),
                                          Set("a.x", "1"),         Txn(TxnControl::kSavepoint),
                                          Set("a.y", "2"),         Txn(TxnControl::kRollbackTo)};
  SessionHistory rolled_back;
  Exchange(rolled_back, ambiguous, "cccccc", 'T');
  Exchange(rolled_back, {Txn(TxnControl::kRollback)}, "c", 'I');
  EXPECT_TRUE(rolled_back.tracking());
  SessionHistory committed;
  Exchange(committed, ambiguous, "cccccc", 'T');
  Exchange(committed, {Txn(TxnControl::kCommit)}, "c", 'I');
  EXPECT_FALSE(committed.tracking());
  EXPECT_TRUE(committed.pinned_by(Pin::kUntracked));
}

TEST(HistoryTest, SetLocalAndTransactionParametersNeverCount) {
  SessionHistory h;
  Exchange(h,
           {Txn(TxnControl::kBegin), SetLocal("work_mem", "'1GB'"),
            Set("transaction_isolation", "'serializable'"), Txn(TxnControl::kCommit)},
           "cccc", 'I');
  EXPECT_TRUE(Settings(h).empty());
  EXPECT_EQ(h.Value("transaction_isolation"), std::nullopt);
}

TEST(HistoryTest, ResetAllKeepsRoleAndSetToDefaultIsReset) {
  SessionHistory h;
  Exchange(h, {Set("role", "'app'"), Set("search_path", "s1"), Set("a.x", "1")}, "ccc", 'I');
  Exchange(h, {Effect(EffectKind::kResetAll), Set("a.y", "DEFAULT")}, "cc", 'I');
  EXPECT_EQ(Settings(h), (Map{{"role", "'app'"}}));
  Exchange(h, {Set("role", "default")}, "c", 'I');
  EXPECT_TRUE(Settings(h).empty());
}

TEST(HistoryTest, CompactionKeepsTheLatestValuePerName) {
  SessionHistory h;
  Exchange(h, {Set("a.x", "1"), Set("a.x", "2"), Set("a.y", "3")}, "ccc", 'I');
  EXPECT_EQ(h.entries(), 2u);
  EXPECT_EQ(Settings(h), (Map{{"a.x", "2"}, {"a.y", "3"}}));
  Exchange(h, {Reset("a.x"), Prepare("p"), Effect(EffectKind::kDeallocate, "p")}, "ccc", 'I');
  EXPECT_EQ(h.entries(), 1u);
  EXPECT_EQ(Settings(h), (Map{{"a.y", "3"}}));
}

// ---- Prepared statements: not transactional, but only once they succeeded.

TEST(HistoryTest, SqlPrepareSurvivesRollbackButNotItsOwnFailure) {
  SessionHistory h;
  Exchange(h, {Txn(TxnControl::kBegin), Prepare("p1")}, "cc", 'T');
  Exchange(h, {Txn(TxnControl::kRollback)}, "c", 'I');
  Exchange(h, {Prepare("p2")}, "e", 'I');
  ASSERT_NE(h.Prepared("p1"), nullptr);
  EXPECT_EQ(h.Prepared("p2"), nullptr);
  EXPECT_EQ(Replayed(h).prepared, (Map{{"p1", "sql:PREPARE p1 AS SELECT 1"}}));
  Exchange(h, {Effect(EffectKind::kDeallocateAll)}, "c", 'I');
  EXPECT_EQ(h.Prepared("p1"), nullptr);
}

TEST(HistoryTest, ProtocolParseAndClose) {
  SessionHistory h;
  const std::vector<uint32_t> oids = {23, 25};
  h.OnParse("s1", "SELECT $1, $2", oids);
  h.OnParse("", "SELECT 2", {});  // unnamed: not kept
  h.OnParse("s2", "SELEC oops", {});
  h.OnSync();
  h.OnParseComplete();
  h.OnParseComplete();
  h.OnErrorResponse();  // s2 fails
  h.OnReadyForQuery('I');
  h.CheckInvariants();
  ASSERT_NE(h.Prepared("s1"), nullptr);
  EXPECT_EQ(h.Prepared("s1")->param_oids, oids);
  EXPECT_EQ(h.Prepared("s2"), nullptr);
  EXPECT_EQ(h.Plan(AppliedState{}).parses,
            (std::vector<ParseRequest>{{"s1", "SELECT $1, $2", oids}}));
  h.OnClose('P', "s1");  // a portal of the same name: nothing
  h.OnClose('S', "s1");
  h.OnSync();
  h.OnCloseComplete();
  h.OnCloseComplete();
  h.OnReadyForQuery('I');
  EXPECT_EQ(h.Prepared("s1"), nullptr);
  EXPECT_TRUE(h.tracking());
}

TEST(HistoryTest, SyncBatchIsOneImplicitTransaction) {
  SessionHistory h;
  // Parse s1 succeeds, the SET succeeds, the SELECT fails: the SET is rolled back with the
  // batch, s1 stays, and the Parse after the error is skipped without a reply.
  h.OnParse("s1", "SELECT 1", {});
  h.OnExecute(Q({Set("a.x", "1")}));
  h.OnExecute(Q({Select()}));
  h.OnParse("s2", "SELECT 2", {});
  h.OnSync();
  h.OnParseComplete();
  h.OnCommandComplete();
  h.OnErrorResponse();
  h.OnReadyForQuery('I');
  h.CheckInvariants();
  EXPECT_TRUE(Settings(h).empty());
  EXPECT_NE(h.Prepared("s1"), nullptr);
  EXPECT_EQ(h.Prepared("s2"), nullptr);
  // Without an error the batch commits at Sync.
  h.OnExecute(Q({Set("a.x", "1")}));
  h.OnSync();
  h.OnCommandComplete();
  h.OnReadyForQuery('I');
  EXPECT_EQ(Settings(h), (Map{{"a.x", "1"}}));
  EXPECT_TRUE(h.tracking());
}

TEST(HistoryTest, ErrorBeforeSyncIsSentSkipsMessagesUntilSync) {
  SessionHistory h;
  h.OnExecute(Q({Select()}));
  h.OnErrorResponse();
  h.OnParse("s1", "SELECT 1", {});  // skipped by the server: no ParseComplete will come
  h.OnExecute(Q({Set("a.x", "1")}));
  h.OnSync();
  h.OnReadyForQuery('I');
  h.CheckInvariants();
  EXPECT_EQ(h.Prepared("s1"), nullptr);
  EXPECT_TRUE(Settings(h).empty());
  EXPECT_TRUE(h.tracking());
}

TEST(HistoryTest, EmptyQueriesAndFunctionCallsMatchTheirReplies) {
  SessionHistory h;
  h.OnQuery(QueryInfo{});
  h.OnEmptyQueryResponse();
  h.OnReadyForQuery('I');
  h.OnExecute(QueryInfo{});
  h.OnSync();
  h.OnEmptyQueryResponse();
  h.OnReadyForQuery('I');
  h.OnFunctionCall();
  h.OnReadyForQuery('I');
  EXPECT_TRUE(h.tracking());
}

// ---- LISTEN is transactional.

TEST(HistoryTest, ListenCountsAtCommit) {
  SessionHistory h;
  Exchange(h, {Txn(TxnControl::kBegin), Effect(EffectKind::kListen, "jobs")}, "cc", 'T');
  EXPECT_FALSE(h.listens());
  Exchange(h, {Txn(TxnControl::kRollback)}, "c", 'I');
  EXPECT_FALSE(h.listens());
  Exchange(h, {Effect(EffectKind::kListen, "jobs"), Effect(EffectKind::kListen, "Mixed\"Q")}, "cc",
           'I');
  EXPECT_TRUE(h.listens());
  EXPECT_EQ(Replayed(h).listens, (std::set<std::string>{"jobs", "Mixed\"Q"}));
  Exchange(h, {Effect(EffectKind::kUnlisten, "jobs")}, "c", 'I');
  Exchange(h, {Effect(EffectKind::kUnlistenAll), Select()}, "ce", 'I');  // rolled back
  EXPECT_EQ(Replayed(h).listens, (std::set<std::string>{"Mixed\"Q"}));
  Exchange(h, {Effect(EffectKind::kUnlistenAll)}, "c", 'I');
  EXPECT_FALSE(h.listens());
}

// ---- Pins.

TEST(HistoryTest, PinsHoldFromSuccessEvenIfTheTransactionRollsBack) {
  SessionHistory h;
  Exchange(h, {Effect(EffectKind::kPinAdvisoryLock)}, "e", 'I');
  EXPECT_EQ(h.pinned(), 0u);  // the failed statement took no lock
  Exchange(h,
           {Txn(TxnControl::kBegin), Effect(EffectKind::kPinAdvisoryLock),
            Effect(EffectKind::kPinTempTable)},
           "ccc", 'T');
  Exchange(h, {Txn(TxnControl::kRollback)}, "c", 'I');
  EXPECT_TRUE(h.pinned_by(Pin::kAdvisoryLock));
  EXPECT_TRUE(h.pinned_by(Pin::kTempTable));  // conservative: the table is gone, the pin stays
  Exchange(h, {Effect(EffectKind::kPinWithHoldCursor)}, "c", 'I');
  Exchange(h, {Set("session_authorization", "'bob'")}, "c", 'I');
  EXPECT_EQ(PinNames(h.pinned()),
            "temp_table,advisory_lock,with_hold_cursor,session_authorization");
  EXPECT_TRUE(h.tracking());
}

TEST(HistoryTest, DiscardTempUnpinsOnlyWhenItCommits) {
  SessionHistory h;
  Exchange(h, {Effect(EffectKind::kPinTempTable)}, "c", 'I');
  Exchange(h, {Effect(EffectKind::kDiscardTemp), Select()}, "ce", 'I');
  EXPECT_TRUE(h.pinned_by(Pin::kTempTable));
  // A temp table made in the same transaction keeps it pinned.
  Exchange(h, {Effect(EffectKind::kDiscardTemp), Effect(EffectKind::kPinTempTable)}, "cc", 'I');
  EXPECT_TRUE(h.pinned_by(Pin::kTempTable));
  Exchange(h, {Effect(EffectKind::kDiscardTemp)}, "c", 'I');
  EXPECT_EQ(h.pinned(), 0u);
}

TEST(HistoryTest, DiscardAllClearsEverythingItResets) {
  SessionHistory h;
  Exchange(
      h,
      {Set("role", "'app'"), Set("a.x", "1"), Prepare("p"), Effect(EffectKind::kListen, "jobs"),
       Effect(EffectKind::kPinTempTable), Effect(EffectKind::kPinAdvisoryLock),
       Effect(EffectKind::kPinWithHoldCursor), Effect(EffectKind::kPinSessionAuthorization)},
      "cccccccc", 'I');
  h.OnParse("s", "SELECT 1", {});
  h.OnSync();
  h.OnParseComplete();
  h.OnReadyForQuery('I');
  EXPECT_NE(h.pinned(), 0u);
  // DISCARD PLANS / SEQUENCES change nothing we replay.
  Exchange(h, {Effect(EffectKind::kDiscardPlans), Effect(EffectKind::kDiscardSequences)}, "cc",
           'I');
  EXPECT_EQ(h.entries(), 5u);
  Exchange(h, {Effect(EffectKind::kDiscardAll)}, "c", 'I');
  EXPECT_EQ(h.pinned(), 0u);
  EXPECT_EQ(h.entries(), 0u);
  EXPECT_FALSE(h.listens());
  EXPECT_TRUE(Replayed(h) == Observed{});
}

TEST(HistoryTest, DiscardAllCommitsAtOnceInASyncBatch) {
  SessionHistory h;
  Exchange(h, {Set("a.x", "1")}, "c", 'I');
  h.OnExecute(Q({Effect(EffectKind::kDiscardAll)}));
  h.OnExecute(Q({Select()}));
  h.OnSync();
  h.OnCommandComplete();
  h.OnErrorResponse();
  h.OnReadyForQuery('I');
  EXPECT_TRUE(Settings(h).empty());
}

// ---- Bounds and lost tracking.

TEST(HistoryTest, OutgrowingEntriesOrBytesPinsForGood) {
  SessionHistory by_entries(SessionHistoryOptions{.entries_max = 3});
  Exchange(by_entries, {Set("a.a", "1"), Set("a.b", "1"), Set("a.c", "1")}, "ccc", 'I');
  EXPECT_EQ(by_entries.pinned(), 0u);
  Exchange(by_entries, {Set("a.d", "1")}, "c", 'I');
  EXPECT_TRUE(by_entries.pinned_by(Pin::kOverflow));
  Exchange(by_entries, {Effect(EffectKind::kDiscardAll)}, "c", 'I');
  EXPECT_TRUE(by_entries.pinned_by(Pin::kOverflow));

  SessionHistory by_bytes(SessionHistoryOptions{.bytes_max = 100});
  by_bytes.OnParse("s", std::string(200, 'x'), {});
  EXPECT_TRUE(by_bytes.pinned_by(Pin::kOverflow));
  by_bytes.CheckInvariants();

  SessionHistory by_replies(SessionHistoryOptions{.replies_max = 2});
  by_replies.OnExecute(Q({Select()}));
  by_replies.OnExecute(Q({Select()}));
  EXPECT_EQ(by_replies.pinned(), 0u);
  by_replies.OnSync();
  EXPECT_TRUE(by_replies.pinned_by(Pin::kOverflow));
}

TEST(HistoryTest, RepliesTheHistoryCannotExplainStopTracking) {
  // A statement the classifier could not parse, but the server ran.
  SessionHistory unparsed;
  unparsed.OnQuery(QueryInfo{.parse_error = true});
  unparsed.OnCommandComplete();
  EXPECT_TRUE(unparsed.pinned_by(Pin::kUntracked));
  // COMMIT AND CHAIN: the classifier says COMMIT, the server stays in a transaction.
  SessionHistory chained;
  Exchange(chained, {Txn(TxnControl::kBegin), Set("a.x", "1"), Txn(TxnControl::kCommit)}, "ccc",
           'T');
  EXPECT_TRUE(chained.pinned_by(Pin::kUntracked));
  EXPECT_EQ(chained.Value("a.x"), "1");  // frozen as it was
  chained.OnReadyForQuery('I');
  chained.CheckInvariants();
  // A classifier that lost a parameter name.
  SessionHistory nameless;
  Exchange(nameless, {Set("", "1")}, "c", 'I');
  EXPECT_TRUE(nameless.pinned_by(Pin::kUntracked));
  // A ParseComplete nobody asked for.
  SessionHistory stray;
  stray.OnParseComplete();
  EXPECT_FALSE(stray.tracking());
}

TEST(HistoryTest, LostServerDropsWhatWasNotCommitted) {
  SessionHistory h;
  Exchange(h, {Txn(TxnControl::kBegin), Set("a.x", "1")}, "cc", 'T');
  h.OnQuery(Q({Set("a.y", "1")}));
  h.OnServerLost();
  h.CheckInvariants();
  EXPECT_EQ(h.Value("a.x"), std::nullopt);
  Exchange(h, {Set("a.z", "1")}, "c", 'I');
  EXPECT_EQ(Settings(h), (Map{{"a.z", "1"}}));
}

// ---- Replay plans.

TEST(HistoryTest, PlanForAFreshServerRunsSetsInOrderThenPrepares) {
  SessionHistory h;
  Exchange(h,
           {Set("search_path", "s1"), Prepare("p"), Set("role", "'app'"),
            Set("search_path", "s2, \"My Schema\""), Effect(EffectKind::kListen, "jobs")},
           "ccccc", 'I');
  h.OnParse("we\"ird", "SELECT $1", std::vector<uint32_t>{23});
  h.OnSync();
  h.OnParseComplete();
  h.OnReadyForQuery('I');
  ReplayPlan plan = h.Plan(AppliedState{});
  EXPECT_EQ(plan.statements,
            (std::vector<std::string>{"SET role TO 'app'", "SET search_path TO s2, \"My Schema\"",
                                      "PREPARE p AS SELECT 1", "LISTEN \"jobs\""}));
  EXPECT_EQ(plan.QueryText(),
            "SET role TO 'app';\nSET search_path TO s2, \"My Schema\";\n"
            "PREPARE p AS SELECT 1;\nLISTEN \"jobs\";");
  ASSERT_EQ(plan.parses.size(), 1u);
  EXPECT_EQ(plan.parses[0].name, "we\"ird");
  EXPECT_EQ(plan.after, h.Current());
  // For a replica: everything but LISTEN.
  ReplayPlan replica = h.Plan(AppliedState{}, ListenReplay::kExclude);
  EXPECT_EQ(replica.statements.size(), 3u);
  EXPECT_EQ(replica.after.listens_count(), 0u);
  EXPECT_FALSE(h.NeedsReplay(replica.after, ListenReplay::kExclude));
  EXPECT_TRUE(h.NeedsReplay(replica.after, ListenReplay::kInclude));
}

TEST(HistoryTest, PlanBringsAStaleServerUpToDate) {
  SessionHistory h;
  Exchange(h,
           {Set("a.x", "1"), Set("a.y", "1"), Prepare("p"), Prepare("q"),
            Effect(EffectKind::kListen, "c1")},
           "ccccc", 'I');
  Observed server;
  ReplayPlan first = h.Plan(AppliedState{});
  ASSERT_TRUE(ApplyPlan(first, &server));
  Exchange(h,
           {Reset("a.x"), Set("a.y", "2"), Effect(EffectKind::kDeallocate, "p"),
            Effect(EffectKind::kDeallocate, "q"), Prepare("q"), Effect(EffectKind::kUnlisten, "c1"),
            Effect(EffectKind::kListen, "c2")},
           "ccccccc", 'I');
  ReplayPlan second = h.Plan(first.after);
  EXPECT_EQ(
      second.statements,
      (std::vector<std::string>{"RESET a.x", "SET a.y TO 2", "DEALLOCATE \"p\"", "DEALLOCATE \"q\"",
                                "PREPARE q AS SELECT 1", "UNLISTEN \"c1\"", "LISTEN \"c2\""}));
  ASSERT_TRUE(ApplyPlan(second, &server));
  EXPECT_EQ(server, Replayed(h));
  EXPECT_TRUE(h.Plan(second.after).empty());
}

TEST(HistoryTest, PlanResetsTheServerRoleBeforeSetsMadeUnderAnother) {
  SessionHistory h;
  Exchange(h, {Set("role", "'app'")}, "c", 'I');
  AppliedState server = h.Current();
  // The client drops the role, sets a superuser-only parameter, then takes the role again: on
  // the server the SET must not run as 'app'.
  Exchange(h, {Reset("role"), Set("log_statement", "'all'"), Set("role", "'app'")}, "ccc", 'I');
  EXPECT_EQ(
      h.Plan(server).statements,
      (std::vector<std::string>{"RESET role", "SET log_statement TO 'all'", "SET role TO 'app'"}));
}

TEST(HistoryTest, UpToDateServerNeedsNothingAndMarkAppliedTracksClientTraffic) {
  SessionHistory h;
  AppliedState server;
  EXPECT_FALSE(h.NeedsReplay(server));
  EXPECT_TRUE(h.Plan(server).empty());
  // The client's own SET ran on this server: afterwards it has it.
  Exchange(h, {Set("a.x", "1")}, "c", 'I');
  EXPECT_TRUE(h.NeedsReplay(server));
  h.MarkApplied(&server);
  EXPECT_FALSE(h.NeedsReplay(server));
  EXPECT_TRUE(h.Plan(server).empty());
  // Back to no state: a fresh server needs nothing, an old one a RESET.
  Exchange(h, {Reset("a.x")}, "c", 'I');
  EXPECT_TRUE(h.Plan(AppliedState{}).empty());
  EXPECT_EQ(h.Plan(server).statements, (std::vector<std::string>{"RESET a.x"}));
}

TEST(HistoryTest, QueryTextEndsCommentsBeforeTheSemicolon) {
  ReplayPlan plan;
  plan.statements = {"PREPARE p AS SELECT 1 -- note", "SET a.x TO 1"};
  EXPECT_EQ(plan.QueryText(), "PREPARE p AS SELECT 1 -- note\n;\nSET a.x TO 1;");
}

// ---- RapidCheck: random sessions against the model of PostgreSQL in history_model.h.

struct Message {
  enum Kind { kExecute, kParse, kCloseStatement, kClosePortal } kind = kExecute;
  Stmt stmt;
};
// A simple Query (statements) or a Sync batch (messages).
struct Work {
  bool extended = false;
  std::vector<Stmt> stmts;
  std::vector<Message> messages;
};

Stmt GenStmt() {
  Op op = *rc::gen::weightedElement<Op>({{20, Op::kSet},
                                         {3, Op::kSetLocal},
                                         {5, Op::kReset},
                                         {2, Op::kResetAll},
                                         {8, Op::kBegin},
                                         {7, Op::kCommit},
                                         {4, Op::kRollback},
                                         {5, Op::kSavepoint},
                                         {3, Op::kRelease},
                                         {4, Op::kRollbackTo},
                                         {5, Op::kPrepare},
                                         {3, Op::kDeallocate},
                                         {1, Op::kDeallocateAll},
                                         {3, Op::kListen},
                                         {2, Op::kUnlisten},
                                         {1, Op::kUnlistenAll},
                                         {2, Op::kDiscardAll},
                                         {5, Op::kSelect},
                                         {5, Op::kFail}});
  return Stmt{op, *rc::gen::inRange(0, 6), *rc::gen::inRange(0, static_cast<int>(kValues.size()))};
}

Work GenWork() {
  Work work;
  work.extended = *rc::gen::inRange(0, 3) == 0;
  int count = *rc::gen::inRange(work.extended ? 0 : 1, 5);
  for (int i = 0; i < count; ++i) {
    if (!work.extended) {
      work.stmts.push_back(GenStmt());
      continue;
    }
    auto kind = *rc::gen::weightedElement<Message::Kind>({{6, Message::kExecute},
                                                          {3, Message::kParse},
                                                          {1, Message::kCloseStatement},
                                                          {1, Message::kClosePortal}});
    Stmt stmt = *rc::gen::inRange(0, 8) == 0 ? Stmt{Op::kEmpty} : GenStmt();
    work.messages.push_back(Message{kind, stmt});
  }
  return work;
}

// "query: SET(0,1) COMMIT(0,0)" or "batch: Parse(1,2) Execute:SELECT(0,0)", for failure reports.
std::string Describe(const Work& work) {
  static constexpr const char* kKinds[] = {"Execute:", "Parse", "CloseS", "CloseP"};
  std::ostringstream out;
  out << (work.extended ? "batch:" : "query:");
  for (const Stmt& s : work.stmts) out << " " << s.op << "(" << s.a << "," << s.b << ")";
  for (const Message& m : work.messages) {
    out << " " << kKinds[m.kind];
    if (m.kind == Message::kExecute) out << m.stmt.op;
    out << "(" << m.stmt.a << "," << m.stmt.b << ")";
  }
  return out.str();
}

// Feeds one client message to the history.
void Send(SessionHistory& h, const Message& m) {
  const std::string& name = kStatementNames[m.stmt.a % kStatementNames.size()];
  switch (m.kind) {
    case Message::kExecute:
      h.OnExecute(m.stmt.op == Op::kEmpty ? QueryInfo{} : Q({InfoOf(m.stmt)}));
      return;
    case Message::kParse:
      h.OnParse(name, "SELECT " + std::to_string(m.stmt.b), std::vector<uint32_t>{25});
      return;
    case Message::kCloseStatement:
      h.OnClose('S', name);
      return;
    case Message::kClosePortal:
      h.OnClose('P', name);
      return;
  }
}

// The server's answer to one message, fed to the history; false when it was an error.
bool Answer(SessionHistory& h, Model& model, const Message& m, bool alone) {
  const std::string& name = kStatementNames[m.stmt.a % kStatementNames.size()];
  bool ok = true;
  switch (m.kind) {
    case Message::kExecute:
      ok = model.Execute(m.stmt, alone);
      if (ok && m.stmt.op == Op::kEmpty) h.OnEmptyQueryResponse();
      if (ok && m.stmt.op != Op::kEmpty) h.OnCommandComplete();
      break;
    case Message::kParse:
      ok = model.Parse(name, "SELECT " + std::to_string(m.stmt.b));
      if (ok) h.OnParseComplete();
      break;
    case Message::kCloseStatement:
      model.Close(name);
      [[fallthrough]];
    case Message::kClosePortal:
      h.OnCloseComplete();
      break;
  }
  if (!ok) h.OnErrorResponse();
  h.CheckInvariants();
  return ok;
}

void SendWork(SessionHistory& h, const Work& work) {
  if (!work.extended) {
    std::vector<StatementInfo> infos;
    for (const Stmt& s : work.stmts) infos.push_back(InfoOf(s));
    h.OnQuery(Q(std::move(infos)));
    return;
  }
  for (const Message& m : work.messages) Send(h, m);
  h.OnSync();
}

// The server runs `work`; with `interleave` the client sends each message only after the
// previous one's answer (so an error arrives before the rest, and the Sync, were sent).
void AnswerWork(SessionHistory& h, Model& model, const Work& work, bool interleave) {
  if (!work.extended) {
    for (const Stmt& s : work.stmts) {
      if (!model.Execute(s, work.stmts.size() == 1)) {
        h.OnErrorResponse();
        break;
      }
      h.OnCommandComplete();
    }
  } else {
    bool failed = false;
    int executed = 0;
    for (const Message& m : work.messages) {
      if (interleave) Send(h, m);
      if (failed) continue;
      failed = !Answer(h, model, m, executed == 0);
      if (m.kind == Message::kExecute) ++executed;
    }
    if (interleave) h.OnSync();
  }
  h.OnReadyForQuery(model.End());
  h.CheckInvariants();
}

void CheckAgainstModel(const SessionHistory& h, const Model& model, Observed* replica,
                       AppliedState* replica_state, bool replay_replica) {
  Observed committed = model.Committed();
  for (const std::string& param : kParams) {
    auto it = committed.settings.find(param);
    RC_ASSERT(h.Value(param) ==
              (it == committed.settings.end() ? std::nullopt : std::optional(it->second)));
  }
  RC_ASSERT(h.listens() == !committed.listens.empty());
  Observed fresh;
  ReplayPlan plan = h.Plan(AppliedState{});
  RC_ASSERT(ApplyPlan(plan, &fresh));
  RC_ASSERT(fresh == committed);
  RC_ASSERT(h.Plan(plan.after).empty());
  if (replay_replica) {
    ReplayPlan update = h.Plan(*replica_state);
    RC_ASSERT(ApplyPlan(update, replica));
    RC_ASSERT(*replica == committed);
    *replica_state = update.after;
  }
}

RC_GTEST_PROP(HistoryProperty, MatchesAModelOfPostgresAndReplaysTheCommittedState, ()) {
  SessionHistory h;
  Model model;
  Observed replica;
  AppliedState replica_state;
  const int steps = *rc::gen::inRange(1, 40);
  for (int step = 0; step < steps; ++step) {
    std::vector<Work> works = {GenWork()};
    if (*rc::gen::inRange(0, 4) == 0) works.push_back(GenWork());  // pipelined
    const bool interleave = works.size() == 1 && works[0].extended && *rc::gen::arbitrary<bool>();
    if (!interleave) {
      for (const Work& work : works) SendWork(h, work);
    }
    for (const Work& work : works) {
      RC_LOG() << "step " << step << ": " << Describe(work)
               << (interleave ? " (interleaved)\n" : "\n");
      AnswerWork(h, model, work, interleave);
    }
    if (!h.tracking()) {
      // Only a ROLLBACK TO / RELEASE whose savepoint the history cannot name may cost tracking.
      RC_ASSERT(model.ambiguous());
      RC_ASSERT(h.pinned() == static_cast<uint32_t>(Pin::kUntracked));
      RC_TAG("tracking lost");
      return;
    }
    RC_ASSERT(h.pinned() == 0u);
    if (model.idle()) {
      CheckAgainstModel(h, model, &replica, &replica_state, *rc::gen::arbitrary<bool>());
    }
  }
}

}  // namespace
}  // namespace switchyard::testing
