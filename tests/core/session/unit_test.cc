// State-machine tests: a Unit driven with scripted byte exchanges, no sockets.
#include <gtest/gtest.h>

#include "core/auth/md5.h"
#include "core/auth/scram.h"
#include "core/protocol/messages.h"
#include "tests/core/session/harness.h"

namespace switchyard {
namespace {

using testing::Harness;

std::string Startup(pg::Parameters parameters) {
  return pg::StartupMessage{pg::kProtocolVersion3, std::move(parameters)}.Encode();
}
std::string DefaultStartup() {
  return Startup({{"user", "alice"}, {"database", "shop"}, {"options", "-c geqo=off"}});
}
std::string ServerLogin(int32_t pid) {
  return pg::Authentication{pg::Authentication::kOk, ""}.Encode() +
         pg::ParameterStatus{"server_version", "15.18"}.Encode() +
         pg::ParameterStatus{"DateStyle", "ISO, MDY"}.Encode() +
         pg::BackendKeyData{pid, 777}.Encode() + pg::ReadyForQuery{'I'}.Encode();
}
std::string Ready(char status = 'I') { return pg::ReadyForQuery{status}.Encode(); }
std::string Complete(std::string tag) { return pg::CommandComplete{std::move(tag)}.Encode(); }
std::string Q(std::string sql) { return pg::Query{std::move(sql)}.Encode(); }

std::string SqlState(const std::string& payload) {
  auto error = pg::ErrorFields::Decode('E', payload);
  EXPECT_TRUE(error.ok());
  return error.ok() ? std::string(error->sqlstate()) : "";
}
std::string Severity(const std::string& payload) {
  auto error = pg::ErrorFields::Decode('E', payload);
  return error.ok() ? std::string(error->severity()) : "";
}

// Logs a client in through a fresh server connection; returns the server connection.
ConnId LogIn(Harness& h, size_t unit, int32_t pid = 4242) {
  h.Receive(h.client(unit), DefaultStartup());
  ConnId server = h.LastConnect();
  h.Connected(server);
  h.TakeSent(server);
  h.Receive(server, ServerLogin(pid));
  return server;
}

TEST(UnitTest, StartupCarriesEveryParameterAndWelcomesWithRealPid) {
  Harness h;
  size_t u = h.Accept();
  h.ReceiveByteByByte(h.client(u), DefaultStartup());
  ASSERT_EQ(h.connect_count(), 1u);
  ConnId server = h.LastConnect();
  h.Connected(server);
  std::string startup = h.TakeSent(server);
  auto decoded = pg::DecodeStartupPacket(std::string_view(startup).substr(4));
  ASSERT_TRUE(decoded.ok());
  const auto& message = std::get<pg::StartupMessage>(*decoded);
  ASSERT_NE(message.Find("options"), nullptr);
  EXPECT_EQ(*message.Find("options"), "-c geqo=off");
  EXPECT_EQ(*message.Find("database"), "shop");

  h.ReceiveByteByByte(server, ServerLogin(4242));
  auto frames = h.TakeFrames(h.client(u));
  EXPECT_EQ(Harness::Types(frames), "RSSKZ");
  auto key = pg::BackendKeyData::Decode(frames[3].second);
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(key->pid, 4242);    // the real pid, so pg_backend_pid() lookups work
  EXPECT_NE(key->secret, 777);  // the secret is the proxy's own
}

TEST(UnitTest, SslAndGssRequestsAreAnsweredNo) {
  Harness h;
  size_t u = h.Accept();
  h.Receive(h.client(u), pg::SslRequest{}.Encode());
  EXPECT_EQ(h.TakeSent(h.client(u)), "N");
  h.Receive(h.client(u), pg::GssEncRequest{}.Encode());
  EXPECT_EQ(h.TakeSent(h.client(u)), "N");
  h.Receive(h.client(u), DefaultStartup());
  EXPECT_EQ(h.connect_count(), 1u);
}

TEST(UnitTest, ReplicationConnectionsAreRefused) {
  Harness h;
  size_t u = h.Accept();
  h.Receive(h.client(u), Startup({{"user", "alice"}, {"replication", "database"}}));
  auto frames = h.TakeFrames(h.client(u));
  ASSERT_EQ(Harness::Types(frames), "E");
  EXPECT_EQ(SqlState(frames[0].second), "0A000");
  EXPECT_TRUE(h.IsClosed(h.client(u)));
  EXPECT_EQ(h.connect_count(), 0u);
}

TEST(UnitTest, SimpleAndMultiStatementQueriesFlowThrough) {
  Harness h;
  size_t u = h.Accept();
  ConnId server = LogIn(h, u);
  h.TakeSent(h.client(u));
  std::string query = Q("select 1; select 2");
  h.ReceiveByteByByte(h.client(u), query);
  EXPECT_EQ(h.TakeSent(server), query);
  std::string answer = Complete("SELECT 1") + Complete("SELECT 1") + Ready();
  h.Receive(server, answer);
  EXPECT_EQ(h.TakeSent(h.client(u)), answer);
}

TEST(UnitTest, ExtendedPipelineWithErrorSkipsToSync) {
  Harness h;
  size_t u = h.Accept();
  ConnId server = LogIn(h, u);
  h.TakeSent(h.client(u));
  std::string batch = pg::Parse{"", "select 1/0", {}}.Encode() +
                      pg::Bind{"", "", {}, {}, {}}.Encode() + pg::Execute{"", 0}.Encode() +
                      pg::Sync{}.Encode() + pg::Parse{"s2", "select 2", {}}.Encode() +
                      pg::Sync{}.Encode();
  h.Receive(h.client(u), batch);
  EXPECT_EQ(h.TakeSent(server), batch);
  std::string answer = pg::ParseComplete{}.Encode() + pg::BindComplete{}.Encode() +
                       pg::BuildError("ERROR", "22012", "division by zero") + Ready() +
                       pg::ParseComplete{}.Encode() + Ready();
  h.Receive(server, answer);
  EXPECT_EQ(h.TakeSent(h.client(u)), answer);
  // The session is idle again: the client can leave and the connection is pooled.
  h.Receive(h.client(u), pg::Terminate{}.Encode());
  EXPECT_EQ(h.TakeSent(server), Q("DISCARD ALL"));
  h.Receive(server, Complete("DISCARD ALL") + Ready());
  EXPECT_TRUE(h.unit(u).Finished());
  EXPECT_FALSE(h.IsClosed(server));
}

TEST(UnitTest, CopyInFailingMidwayLeavesSessionUsable) {
  Harness h;
  size_t u = h.Accept();
  ConnId server = LogIn(h, u);
  h.TakeSent(h.client(u));
  h.Receive(h.client(u), Q("copy t from stdin"));
  h.TakeSent(server);
  h.Receive(server, pg::CopyResponse{'G', 0, {0}}.Encode());
  h.Receive(h.client(u), pg::CopyData{"1\n"}.Encode());
  std::string failure = pg::BuildError("ERROR", "22P02", "invalid input syntax") + Ready();
  h.Receive(server, failure);
  auto frames = h.TakeFrames(h.client(u));
  EXPECT_EQ(Harness::Types(frames), "GEZ");
  // Copy data the client still sends after the error is dropped, as PostgreSQL would ignore it.
  h.Receive(h.client(u), pg::CopyDone{}.Encode());
  h.Receive(h.client(u), Q("select 1"));
  EXPECT_EQ(h.TakeSent(server), pg::CopyData{"1\n"}.Encode() + Q("select 1"));
}

TEST(UnitTest, ClientLeavingMidCopyGetsCopyFailThenDiscard) {
  Harness h;
  size_t u = h.Accept();
  ConnId server = LogIn(h, u);
  h.Receive(h.client(u), Q("copy t from stdin"));
  h.Receive(server, pg::CopyResponse{'G', 0, {0}}.Encode());
  h.TakeSent(server);
  h.PeerClosed(h.client(u));
  std::string sent = h.TakeSent(server);
  EXPECT_EQ(sent, pg::CopyFail{"client disconnected"}.Encode());
  h.Receive(server, pg::BuildError("ERROR", "57014", "COPY from stdin failed") + Ready());
  EXPECT_EQ(h.TakeSent(server), Q("DISCARD ALL"));
  h.Receive(server, Complete("DISCARD ALL") + Ready());
  EXPECT_FALSE(h.IsClosed(server));
  EXPECT_TRUE(h.unit(u).Finished());
}

TEST(UnitTest, ClientLeavingMidTransactionGetsRollbackAndReuseSeesCachedParameters) {
  Harness h;
  size_t u = h.Accept();
  ConnId server = LogIn(h, u, 5151);
  h.Receive(h.client(u), Q("begin"));
  h.Receive(server, Complete("BEGIN") + Ready('T'));
  h.TakeSent(server);
  h.Receive(h.client(u), pg::Terminate{}.Encode());
  EXPECT_EQ(h.TakeSent(server), Q("ROLLBACK") + Q("DISCARD ALL"));
  h.Receive(server, Complete("ROLLBACK") + Ready() +
                        pg::ParameterStatus{"DateStyle", "ISO, DMY"}.Encode() +
                        Complete("DISCARD ALL") + Ready());
  EXPECT_TRUE(h.unit(u).Finished());

  // A second client with the same startup parameters reuses the connection.
  size_t v = h.Accept();
  h.Receive(h.client(v), DefaultStartup());
  EXPECT_EQ(h.connect_count(), 1u);
  auto frames = h.TakeFrames(h.client(v));
  ASSERT_EQ(Harness::Types(frames), "RSSKZ");
  auto date_style = pg::ParameterStatus::Decode(frames[2].second);
  EXPECT_EQ(date_style->value, "ISO, DMY");  // the value the reset left behind
  EXPECT_EQ(pg::BackendKeyData::Decode(frames[3].second)->pid, 5151);
  h.Receive(h.client(v), Q("select 1"));
  EXPECT_EQ(h.TakeSent(server), Q("select 1"));
}

TEST(UnitTest, ClientDisconnectingMidQueryCancelsThenResets) {
  Harness h;
  size_t u = h.Accept();
  ConnId server = LogIn(h, u, 6000);
  h.Receive(h.client(u), Q("select pg_sleep(100)"));
  h.TakeSent(server);
  h.PeerClosed(h.client(u));
  ConnId cancel = h.LastConnect();
  ASSERT_NE(cancel, server);
  h.Connected(cancel);
  std::string request = h.TakeSent(cancel);
  auto decoded = pg::DecodeStartupPacket(std::string_view(request).substr(4));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(std::get<pg::CancelRequest>(*decoded).pid, 6000);
  EXPECT_EQ(std::get<pg::CancelRequest>(*decoded).secret, 777);  // the server's real key
  EXPECT_FALSE(h.IsClosed(cancel));   // the server closes it once it signalled the backend
  EXPECT_EQ(h.TakeSent(server), "");  // nothing until the cancelled query answers
  h.Receive(server, pg::BuildError("ERROR", "57014", "canceling statement") + Ready());
  EXPECT_EQ(h.TakeSent(server), Q("DISCARD ALL"));
  h.Receive(server, Complete("DISCARD ALL") + Ready());
  // Found by the simulator: pooled now, a cancel still on its way could hit the next client's
  // query. The connection waits until the server has taken the cancel.
  EXPECT_FALSE(h.unit(u).Finished());
  h.PeerClosed(cancel);
  EXPECT_TRUE(h.unit(u).Finished());
  EXPECT_FALSE(h.IsClosed(server));
}

TEST(UnitTest, ConnectionWhoseCancelTimedOutAfterSendingIsClosedNotPooled) {
  Harness h;
  size_t u = h.Accept();
  ConnId server = LogIn(h, u, 6000);
  h.Receive(h.client(u), Q("select pg_sleep(100)"));
  h.TakeSent(server);
  h.PeerClosed(h.client(u));
  ConnId cancel = h.LastConnect();
  h.Connected(cancel);
  h.Receive(server, Complete("SELECT 1") + Ready());  // finished before the cancel landed
  h.Receive(server, Complete("DISCARD ALL") + Ready());
  h.AdvanceMs(h.config().connect_timeout_ms + 1);  // the server never closed the cancel
  EXPECT_TRUE(h.IsClosed(cancel));
  EXPECT_TRUE(h.IsClosed(server));  // where that cancel lands is unknown: never reuse it
  EXPECT_TRUE(h.unit(u).Finished());
}

TEST(UnitTest, CancelRequestIsForwardedOnlyWhileQueryInFlight) {
  Harness h;
  size_t u = h.Accept();
  ConnId server = LogIn(h, u, 7000);
  auto frames = h.TakeFrames(h.client(u));
  auto key = *pg::BackendKeyData::Decode(frames[3].second);

  // Idle: a matching cancel does nothing.
  size_t c1 = h.Accept();
  h.Receive(h.client(c1), pg::CancelRequest{key.pid, key.secret}.Encode());
  EXPECT_TRUE(h.IsClosed(h.client(c1)));
  size_t connects = h.connect_count();
  EXPECT_EQ(connects, 1u);

  h.Receive(h.client(u), Q("select pg_sleep(100)"));
  // A wrong secret does nothing either.
  size_t c2 = h.Accept();
  h.Receive(h.client(c2), pg::CancelRequest{key.pid, key.secret + 1}.Encode());
  EXPECT_EQ(h.connect_count(), 1u);
  // The right key, in flight: a cancel goes to the server with the server's own key.
  size_t c3 = h.Accept();
  h.Receive(h.client(c3), pg::CancelRequest{key.pid, key.secret}.Encode());
  ASSERT_EQ(h.connect_count(), 2u);
  ConnId cancel = h.LastConnect();
  h.Connected(cancel);
  EXPECT_EQ(h.TakeSent(cancel), (pg::CancelRequest{7000, 777}.Encode()));
  (void)server;
}

// After a lost server connection the session goes on (DESIGN.md section 5): the statement in
// flight fails with 08006 and ReadyForQuery, and the next one runs on a new connection.
TEST(UnitTest, ServerFatalMidQueryGives08006AndTheSessionGoesOn) {
  Harness h;
  size_t u = h.Accept();
  ConnId server = LogIn(h, u);
  h.TakeSent(h.client(u));
  h.Receive(h.client(u), Q("select pg_sleep(10)"));
  h.Receive(server, pg::BuildError("FATAL", "57P01",
                                   "terminating connection due to administrator command"));
  auto frames = h.TakeFrames(h.client(u));
  ASSERT_EQ(Harness::Types(frames), "EZ");
  EXPECT_EQ(SqlState(frames[0].second), "08006");  // not the server's 57P01
  EXPECT_EQ(Severity(frames[0].second), "ERROR");
  EXPECT_EQ(frames[1].second, "I");
  EXPECT_FALSE(h.IsClosed(h.client(u)));
  EXPECT_TRUE(h.IsClosed(server));

  h.Receive(h.client(u), Q("select 1"));
  ConnId fresh = h.LastConnect();
  ASSERT_NE(fresh, server);
  h.Connected(fresh);
  h.TakeSent(fresh);
  h.Receive(fresh, ServerLogin(4343));
  EXPECT_EQ(h.TakeSent(fresh), Q("select 1"));
  h.Receive(fresh, Complete("SELECT 1") + Ready());
  EXPECT_EQ(Harness::Types(h.TakeFrames(h.client(u))), "CZ");
}

TEST(UnitTest, LostCommitGives08007) {
  Harness h;
  size_t u = h.Accept();
  ConnId server = LogIn(h, u);
  h.Receive(h.client(u), Q("begin"));
  h.Receive(server, Complete("BEGIN") + Ready('T'));
  h.TakeSent(h.client(u));
  h.Receive(h.client(u), Q("  commit"));
  h.PeerClosed(server);
  auto frames = h.TakeFrames(h.client(u));
  ASSERT_EQ(Harness::Types(frames), "EZ");
  EXPECT_EQ(SqlState(frames[0].second), "08007");
  EXPECT_EQ(frames[1].second, "I");
  EXPECT_FALSE(h.IsClosed(h.client(u)));
}

TEST(UnitTest, IdleServerLossOutsideATransactionIsSilent) {
  Harness h;
  size_t u = h.Accept();
  ConnId server = LogIn(h, u);
  h.TakeSent(h.client(u));
  h.PeerClosed(server);
  EXPECT_EQ(Harness::Types(h.TakeFrames(h.client(u))), "");
  EXPECT_FALSE(h.IsClosed(h.client(u)));
}

// Lost while idle in a transaction: the next statement learns it (08006), then PostgreSQL's
// aborted-transaction answers until ROLLBACK.
TEST(UnitTest, IdleLossInATransactionAbortsItUntilRollback) {
  Harness h;
  size_t u = h.Accept();
  ConnId server = LogIn(h, u);
  h.Receive(h.client(u), Q("begin"));
  h.Receive(server, Complete("BEGIN") + Ready('T'));
  h.TakeSent(h.client(u));
  h.PeerClosed(server);
  EXPECT_EQ(Harness::Types(h.TakeFrames(h.client(u))), "");
  h.Receive(h.client(u), Q("insert into t values (1)"));
  auto frames = h.TakeFrames(h.client(u));
  ASSERT_EQ(Harness::Types(frames), "EZ");
  EXPECT_EQ(SqlState(frames[0].second), "08006");
  EXPECT_EQ(frames[1].second, "E");
  h.Receive(h.client(u), Q("select 1"));
  frames = h.TakeFrames(h.client(u));
  ASSERT_EQ(Harness::Types(frames), "EZ");
  EXPECT_EQ(SqlState(frames[0].second), "25P02");
  EXPECT_EQ(frames[1].second, "E");
  h.Receive(h.client(u), Q("rollback"));
  frames = h.TakeFrames(h.client(u));
  ASSERT_EQ(Harness::Types(frames), "CZ");
  EXPECT_EQ(frames[1].second, "I");
  EXPECT_EQ(h.connect_count(), 1u);  // all of it answered without a server
}

// A SET the client made follows it to the new connection, before its next statement.
TEST(UnitTest, SetIsReplayedOnTheConnectionThatReplacesALostOne) {
  Harness h;
  size_t u = h.Accept();
  ConnId server = LogIn(h, u);
  h.Receive(h.client(u), Q("set search_path = s1, public"));
  EXPECT_EQ(h.TakeSent(server), Q("set search_path = s1, public"));
  h.Receive(server, Complete("SET") + Ready());
  h.PeerClosed(server);
  h.TakeSent(h.client(u));
  h.Receive(h.client(u), Q("select 1"));
  ConnId fresh = h.LastConnect();
  h.Connected(fresh);
  h.TakeSent(fresh);
  h.Receive(fresh, ServerLogin(4343));
  EXPECT_EQ(h.TakeSent(fresh), Q("SET search_path TO s1, public;"));
  h.Receive(fresh, Complete("SET") + Ready());
  EXPECT_EQ(h.TakeSent(fresh), Q("select 1"));
  h.Receive(fresh, Complete("SELECT 1") + Ready());
  // The replay's answers are the proxy's own: the client sees only its statement's.
  EXPECT_EQ(Harness::Types(h.TakeFrames(h.client(u))), "CZ");
}

// SET datestyle TO ymd keeps the output style the session had: what follows the client is the
// value the server reported, not the text of the last SET.
TEST(UnitTest, AMergingSettingIsReplayedAsTheServerReportedIt) {
  Harness h;
  size_t u = h.Accept();
  ConnId server = LogIn(h, u);
  h.Receive(h.client(u), Q("set datestyle to iso"));
  h.Receive(server,
            Complete("SET") + pg::ParameterStatus{"DateStyle", "ISO, MDY"}.Encode() + Ready());
  h.Receive(h.client(u), Q("set datestyle to ymd"));
  h.Receive(server,
            Complete("SET") + pg::ParameterStatus{"DateStyle", "ISO, YMD"}.Encode() + Ready());
  h.TakeSent(server);
  h.PeerClosed(server);
  h.TakeSent(h.client(u));
  h.Receive(h.client(u), Q("select 1"));
  ConnId fresh = h.LastConnect();
  h.Connected(fresh);
  h.TakeSent(fresh);
  h.Receive(fresh, ServerLogin(4343));
  EXPECT_EQ(h.TakeSent(fresh), Q("SET datestyle TO 'ISO, YMD';"));
}

TEST(UnitTest, GarbageFromClientGetsProtocolViolation) {
  for (std::string garbage :
       {std::string("\x80\x00\x00\x00\x00\x03\x00\x00", 8), std::string("\x00\x00\x00\x02", 4),
        std::string("\x00\x00\x27\x20\x00\x03\x00\x00", 8)}) {
    Harness h;
    size_t u = h.Accept();
    h.Receive(h.client(u), garbage);
    auto frames = h.TakeFrames(h.client(u));
    ASSERT_EQ(Harness::Types(frames), "E");
    EXPECT_EQ(SqlState(frames[0].second), "08P01");
    EXPECT_TRUE(h.IsClosed(h.client(u)));
    EXPECT_TRUE(h.unit(u).Finished());
  }
}

TEST(UnitTest, UnknownMessageTypeInSessionGetsProtocolViolation) {
  Harness h;
  size_t u = h.Accept();
  ConnId server = LogIn(h, u);
  h.TakeSent(h.client(u));
  h.Receive(h.client(u), std::string("\x01\x00\x00\x00\x04", 5));
  auto frames = h.TakeFrames(h.client(u));
  ASSERT_EQ(Harness::Types(frames), "E");
  EXPECT_EQ(SqlState(frames[0].second), "08P01");
  // The server connection is still healthy: it is reset and pooled, not closed.
  EXPECT_EQ(h.TakeSent(server), Q("DISCARD ALL"));
  EXPECT_FALSE(h.IsClosed(server));
}

TEST(UnitTest, SilentClientTimesOut) {
  Harness h;
  h.config().auth_timeout_ms = 1000;
  size_t u = h.Accept();
  h.AdvanceMs(999);
  EXPECT_FALSE(h.IsClosed(h.client(u)));
  h.AdvanceMs(1);
  auto frames = h.TakeFrames(h.client(u));
  ASSERT_EQ(Harness::Types(frames), "E");
  EXPECT_TRUE(h.IsClosed(h.client(u)));
}

TEST(UnitTest, IdleClientIsClosedAfterIdleTimeoutButNotMidQuery) {
  Harness h;
  h.config().client_idle_timeout_ms = 1000;
  size_t u = h.Accept();
  ConnId server = LogIn(h, u);
  h.TakeSent(h.client(u));
  h.Receive(h.client(u), Q("select pg_sleep(5)"));
  h.AdvanceMs(2000);  // a running query is not idleness
  EXPECT_FALSE(h.IsClosed(h.client(u)));
  h.Receive(server, Complete("SELECT 1") + Ready());
  h.TakeSent(h.client(u));
  h.TakeSent(server);
  h.AdvanceMs(999);
  EXPECT_FALSE(h.IsClosed(h.client(u)));
  h.AdvanceMs(1);
  auto frames = h.TakeFrames(h.client(u));
  ASSERT_EQ(Harness::Types(frames), "E");
  EXPECT_EQ(SqlState(frames[0].second), "57P05");
  EXPECT_TRUE(h.IsClosed(h.client(u)));
  EXPECT_EQ(h.TakeSent(server), Q("DISCARD ALL"));  // the connection goes back to the pool
}

TEST(UnitTest, SlowClientPausesServerReads) {
  Harness h;
  h.config().client_output_high_bytes = 1000;
  h.config().client_output_low_bytes = 100;
  size_t u = h.Accept();
  ConnId server = LogIn(h, u);
  h.set_auto_flush(false);
  h.Receive(h.client(u), Q("select repeat('x', 10000) from generate_series(1, 10)"));
  std::string rows;
  for (int i = 0; i < 10; ++i) rows += pg::DataRow{{std::string(500, 'x')}}.Encode();
  h.Receive(server, rows);
  EXPECT_FALSE(h.unit(u).WantsRead(server));
  size_t forwarded = h.TakeSent(h.client(u)).size();
  EXPECT_LT(forwarded, 2000u);  // bounded near the high watermark, not all 5 KB
  h.FlushAll();
  EXPECT_TRUE(h.unit(u).WantsRead(server) || h.TakeSent(h.client(u)).size() > 0);
}

TEST(UnitTest, WrongMd5PasswordGets28P01) {
  ProxyConfig config = Harness::DefaultConfig();
  config.auth_type = auth::AuthType::kMd5;
  config.users["alice"] = *auth::ParseSecret("secret");
  Harness h(config);
  size_t u = h.Accept();
  h.Receive(h.client(u), DefaultStartup());
  auto frames = h.TakeFrames(h.client(u));
  ASSERT_EQ(Harness::Types(frames), "R");
  auto request = pg::Authentication::Decode(frames[0].second);
  ASSERT_EQ(request->code, pg::Authentication::kMd5Password);
  h.Receive(h.client(u),
            pg::PasswordMessage{auth::Md5Response("alice", "wrong", request->data)}.Encode());
  frames = h.TakeFrames(h.client(u));
  ASSERT_EQ(Harness::Types(frames), "E");
  EXPECT_EQ(SqlState(frames[0].second), "28P01");
  EXPECT_EQ(h.connect_count(), 0u);
}

TEST(UnitTest, RightMd5PasswordLetsClientIn) {
  ProxyConfig config = Harness::DefaultConfig();
  config.auth_type = auth::AuthType::kMd5;
  config.users["alice"] = *auth::ParseSecret(auth::Md5Hash("alice", "secret"));
  Harness h(config);
  size_t u = h.Accept();
  h.Receive(h.client(u), DefaultStartup());
  auto request = pg::Authentication::Decode(h.TakeFrames(h.client(u))[0].second);
  h.Receive(h.client(u),
            pg::PasswordMessage{auth::Md5Response("alice", "secret", request->data)}.Encode());
  EXPECT_EQ(h.connect_count(), 1u);
}

TEST(UnitTest, ScramClientIsVerifiedAndServerLoginUsesRecoveredKey) {
  ProxyConfig config = Harness::DefaultConfig();
  config.auth_type = auth::AuthType::kScramSha256;
  auth::ScramVerifier verifier = auth::MakeVerifier("pencil", "0123456789abcdef", 4096);
  config.users["alice"] = *auth::ParseSecret(auth::FormatVerifier(verifier));
  Harness h(config);
  size_t u = h.Accept();
  h.Receive(h.client(u), DefaultStartup());
  ASSERT_EQ(Harness::Types(h.TakeFrames(h.client(u))), "R");
  auth::ScramClient client("pencil", "client-nonce-bytes");
  h.Receive(h.client(u), pg::SaslInitialResponse{"SCRAM-SHA-256", client.ClientFirst()}.Encode());
  auto frames = h.TakeFrames(h.client(u));
  ASSERT_EQ(Harness::Types(frames), "R");
  auto server_first = pg::Authentication::Decode(frames[0].second);
  auto client_final = client.HandleServerFirst(server_first->data);
  ASSERT_TRUE(client_final.ok());
  h.Receive(h.client(u), pg::SaslResponse{*client_final}.Encode());
  frames = h.TakeFrames(h.client(u));
  ASSERT_EQ(Harness::Types(frames), "R");
  EXPECT_TRUE(client.HandleServerFinal(pg::Authentication::Decode(frames[0].second)->data).ok());
  ASSERT_EQ(h.connect_count(), 1u);

  // The server asks for SCRAM too: the proxy answers with the recovered ClientKey, and a real
  // SCRAM server holding the same verifier accepts it.
  ConnId server = h.LastConnect();
  h.Connected(server);
  h.TakeSent(server);
  h.Receive(server, pg::Authentication::Sasl({"SCRAM-SHA-256"}).Encode());
  pg::FrameReader reader(pg::Direction::kFrontend);
  reader.Append(h.TakeSent(server));
  auto initial = pg::SaslInitialResponse::Decode((**reader.Next()).payload);
  ASSERT_TRUE(initial.ok());
  auth::ScramServer upstream(verifier, "server-nonce-bytes-xx");
  auto upstream_first = upstream.HandleClientFirst(initial->data.value_or(""));
  ASSERT_TRUE(upstream_first.ok());
  h.Receive(server,
            pg::Authentication{pg::Authentication::kSaslContinue, *upstream_first}.Encode());
  reader.Append(h.TakeSent(server));
  auto response = pg::SaslResponse::Decode((**reader.Next()).payload);
  auto upstream_final = upstream.HandleClientFinal(response->data);
  EXPECT_TRUE(upstream_final.ok()) << upstream_final.status();
}

TEST(UnitTest, PoolExhaustionQueuesThenTimesOutWith53300) {
  ProxyConfig config = Harness::DefaultConfig();
  config.pool_size = 1;
  config.checkout_timeout_ms = 500;
  Harness h(config);
  size_t u = h.Accept();
  LogIn(h, u);
  size_t v = h.Accept();
  h.Receive(h.client(v), DefaultStartup());
  EXPECT_EQ(h.connect_count(), 1u);
  h.AdvanceMs(600);
  auto frames = h.TakeFrames(h.client(v));
  ASSERT_EQ(Harness::Types(frames), "E");
  EXPECT_EQ(SqlState(frames[0].second), "53300");
}

}  // namespace
}  // namespace switchyard
