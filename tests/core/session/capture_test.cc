// Traffic capture in the unit (DESIGN.md section 6): the records a captured session produces,
// in every direction and in order, with nothing of the login but its session-open; snapshots
// when capture starts mid-session or a new file begins; sampling; redaction.
#include "core/capture.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <tuple>

#include "core/auth/md5.h"
#include "core/base/strings.h"
#include "core/protocol/messages.h"
#include "core/trace/encoder.h"
#include "core/trace/reader.h"
#include "tests/core/session/harness.h"

namespace switchyard {
namespace {

using testing::Harness;

constexpr std::string_view kPassword = "pass-w0rd-s3cret";

std::string Startup() {
  return pg::StartupMessage{pg::kProtocolVersion3,
                            {{"user", "alice"}, {"database", "shop"}, {"application_name", "t"}}}
      .Encode();
}
std::string Ready(char status = 'I') { return pg::ReadyForQuery{status}.Encode(); }
std::string Complete(std::string tag) { return pg::CommandComplete{std::move(tag)}.Encode(); }
std::string Q(std::string sql) { return pg::Query{std::move(sql)}.Encode(); }
std::string ServerWelcome(int32_t pid) {
  return pg::Authentication{pg::Authentication::kOk, ""}.Encode() +
         pg::ParameterStatus{"server_version", "15.18"}.Encode() +
         pg::BackendKeyData{pid, 777}.Encode() + Ready();
}

// A config whose clients log in with md5 and whose server then asks the proxy for the cleartext
// password (from the users file): the password crosses the unit, and must reach no record.
ProxyConfig PasswordConfig() {
  ProxyConfig config = Harness::DefaultConfig();
  config.auth_type = auth::AuthType::kMd5;
  config.users["alice"] = *auth::ParseSecret(kPassword);
  return config;
}

// Logs the client in with its password, and the proxy in to the server with the server's.
ConnId LogInWithPasswords(Harness& h, size_t unit, int32_t pid = 4242) {
  h.Receive(h.client(unit), Startup());
  auto request = pg::Authentication::Decode(h.TakeFrames(h.client(unit))[0].second);
  EXPECT_EQ(request->code, pg::Authentication::kMd5Password);
  h.Receive(h.client(unit),
            pg::PasswordMessage{auth::Md5Response("alice", kPassword, request->data)}.Encode());
  ConnId server = h.LastConnect();
  h.Connected(server);
  h.Receive(server, pg::Authentication{pg::Authentication::kCleartextPassword, ""}.Encode());
  EXPECT_NE(h.TakeSent(server).find(kPassword), std::string::npos)
      << "the test must make the password cross the unit";
  h.Receive(server, ServerWelcome(pid));
  h.TakeSent(h.client(unit));
  return server;
}

ConnId LogInTrusted(Harness& h, size_t unit, int32_t pid = 4242) {
  h.Receive(h.client(unit), Startup());
  ConnId server = h.LastConnect();
  h.Connected(server);
  h.Receive(server, ServerWelcome(pid));
  h.TakeSent(server);
  h.TakeSent(h.client(unit));
  return server;
}

// "open", "close", "snapshot", "cancel", or direction and message type ("client->proxy Q").
std::string Describe(const trace::Record& record) {
  if (record.kind() != trace::RecordKind::kMessage) return std::string(KindName(record.kind()));
  const std::string& bytes = std::get<trace::Message>(record.body).bytes;
  return Cat(DirectionName(record.direction), " ", std::string(1, bytes[0]));
}

// The records of Trace actions, read back as a file holding them would be.
std::vector<trace::Record> Decode(const std::vector<Trace>& traces) {
  std::string file;
  EXPECT_TRUE(trace::AppendHeader(trace::TraceHeader{}, file).ok());
  uint64_t count = 0;
  for (const Trace& trace : traces) {
    file += trace.records;
    count += trace.count;
    EXPECT_EQ(trace.refused, 0u);
  }
  trace::TraceContents contents = trace::ReadTrace(file);
  EXPECT_TRUE(contents.status.ok()) << contents.status;
  EXPECT_EQ(contents.records.size(), count);
  return contents.records;
}

std::vector<trace::Record> Records(Harness& h) { return Decode(h.TakeTraces()); }

std::vector<std::string> Described(const std::vector<trace::Record>& records) {
  std::vector<std::string> out;
  for (const trace::Record& record : records) out.push_back(Describe(record));
  return out;
}

const std::string& Bytes(const trace::Record& record) {
  return std::get<trace::Message>(record.body).bytes;
}

TEST(CaptureTest, EveryDirectionIsRecordedInOrderAndTheLoginNever) {
  Harness h(PasswordConfig());
  size_t u = h.Accept();
  h.SetCapture(true, 1);
  ConnId server = LogInWithPasswords(h, u);
  h.Receive(h.client(u), Q("select 1"));
  EXPECT_EQ(h.TakeSent(server), Q("select 1"));
  h.Receive(server, Complete("SELECT 1") + Ready());
  h.Receive(h.client(u), pg::Terminate{}.Encode());
  EXPECT_EQ(h.TakeSent(server), Q("DISCARD ALL"));
  h.Receive(server, Complete("DISCARD ALL") + Ready());

  std::vector<trace::Record> records = Records(h);
  EXPECT_EQ(Described(records),
            (std::vector<std::string>{"session-open", "proxy->client R", "proxy->client S",
                                      "proxy->client K", "proxy->client Z", "client->proxy Q",
                                      "proxy->server Q", "server->proxy C", "server->proxy Z",
                                      "proxy->client C", "proxy->client Z", "client->proxy X",
                                      "session-close"}));
  // The reset after the client left is the proxy's own business: no record of it.
  const auto& open = std::get<trace::SessionOpen>(records.front().body);
  EXPECT_EQ(open.user, "alice");
  EXPECT_EQ(open.database, "shop");
  EXPECT_EQ(open.client_address, "127.0.0.1:1");
  EXPECT_EQ(open.startup_parameters.size(), 3u);
  EXPECT_EQ(std::get<trace::SessionClose>(records.back().body).reason, "client terminated");
  trace::TraceEncoder encoder;
  std::string file;
  for (size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(records[i].session, 1u);
    EXPECT_EQ(records[i].sequence, i) << "sequence numbers count the session's records";
    EXPECT_TRUE(encoder.Append(records[i], file).ok());
  }
  EXPECT_EQ(records[6].node, 0u);
  EXPECT_EQ(records[6].backend_pid, 4242);
  EXPECT_EQ(records[6].connection, server.packed());
  EXPECT_EQ(records[5].connection, h.client(u).packed());
  // Neither the password nor the client's md5 answer is anywhere in what would be written.
  EXPECT_EQ(file.find(kPassword), std::string::npos);
  EXPECT_EQ(file.find("md5"), std::string::npos);
}

TEST(CaptureTest, TheWelcomeKeepsOnlyAuthenticationOk) {
  Harness h;
  size_t u = h.Accept();
  h.SetCapture(true, 1);
  LogInTrusted(h, u);
  std::vector<trace::Record> records = Records(h);
  ASSERT_GE(records.size(), 2u);
  EXPECT_EQ(Describe(records[1]), "proxy->client R");
  EXPECT_EQ(Bytes(records[1]), (pg::Authentication{pg::Authentication::kOk, ""}.Encode()));
}

TEST(CaptureTest, CaptureStartedMidSessionBeginsWithASnapshot) {
  Harness h;
  size_t u = h.Accept();
  ConnId server = LogInTrusted(h, u);
  h.Receive(h.client(u), Q("set search_path = app"));
  h.Receive(server, Complete("SET") + Ready());
  h.Receive(h.client(u),
            pg::Parse{"s1", "select $1 where 'x' = 'x'", {23}}.Encode() + pg::Sync{}.Encode());
  h.Receive(server, pg::ParseComplete{}.Encode() + Ready());
  h.Receive(h.client(u), Q("begin"));
  h.Receive(server, Complete("BEGIN") + Ready('T'));
  EXPECT_TRUE(h.TakeTraces().empty()) << "nothing is recorded while capture is off";

  h.SetCapture(true, 7);
  std::vector<trace::Record> records = Records(h);
  ASSERT_EQ(Described(records), std::vector<std::string>{"snapshot"});
  EXPECT_EQ(records[0].sequence, 0u);
  const auto& snapshot = std::get<trace::Snapshot>(records[0].body);
  EXPECT_EQ(snapshot.session.user, "alice");
  EXPECT_EQ(snapshot.transaction_status, 'T');
  ASSERT_EQ(snapshot.prepared_statements.size(), 1u);
  EXPECT_EQ(snapshot.prepared_statements[0].name, "s1");
  EXPECT_EQ(snapshot.prepared_statements[0].query, "select $1 where 'x' = 'x'");
  EXPECT_EQ(snapshot.prepared_statements[0].parameter_types, std::vector<uint32_t>{23});
  ASSERT_EQ(snapshot.settings.size(), 1u);
  EXPECT_EQ(snapshot.settings[0].first, "search_path");
  EXPECT_EQ(snapshot.settings[0].second, "app");

  // The same epoch again changes nothing; a new file (epoch) gets a new snapshot, and the
  // sequence goes on.
  h.SetCapture(true, 7);
  EXPECT_TRUE(h.TakeTraces().empty());
  h.Receive(h.client(u), Q("commit"));
  h.SetCapture(true, 8);
  std::vector<Trace> traces = h.TakeTraces();
  ASSERT_EQ(traces.size(), 2u) << "one Trace action per event handled";
  EXPECT_EQ(traces[0].epoch, 7u);
  EXPECT_EQ(Described(Decode({traces[0]})),
            (std::vector<std::string>{"client->proxy Q", "proxy->server Q"}));
  EXPECT_EQ(traces[1].epoch, 8u);
  std::vector<trace::Record> snapshot_file = Decode({traces[1]});
  ASSERT_EQ(Described(snapshot_file), std::vector<std::string>{"snapshot"});
  EXPECT_EQ(snapshot_file[0].sequence, 3u);

  h.SetCapture(false, 0);
  h.Receive(server, Complete("COMMIT") + Ready());
  h.Receive(h.client(u), Q("select 1"));
  EXPECT_TRUE(h.TakeTraces().empty()) << "nothing is recorded once capture is off";
}

TEST(CaptureTest, RecordTimesCountFromTheCaptureStart) {
  Harness h;
  size_t u = h.Accept();
  ConnId server = LogInTrusted(h, u);
  h.Deliver(u, CaptureChanged{true, 1, h.now()});
  h.AdvanceMs(5);
  h.Receive(h.client(u), Q("select 1"));
  h.AdvanceMs(3);
  h.Receive(server, Complete("SELECT 1") + Ready());
  std::vector<trace::Record> records = Records(h);
  ASSERT_EQ(
      Described(records),
      (std::vector<std::string>{"snapshot", "client->proxy Q", "proxy->server Q", "server->proxy C",
                                "server->proxy Z", "proxy->client C", "proxy->client Z"}));
  EXPECT_EQ(records[0].time_us, 0);
  EXPECT_EQ(records[1].time_us, 5000);
  EXPECT_EQ(records[6].time_us, 8000);
}

TEST(CaptureTest, UnsampledSessionsProduceNoRecords) {
  ProxyConfig config = Harness::DefaultConfig();
  config.capture.sample_per_million = 0;
  Harness h(config);
  size_t u = h.Accept();
  h.SetCapture(true, 1);
  ConnId server = LogInTrusted(h, u);
  h.Receive(h.client(u), Q("select 1"));
  h.Receive(server, Complete("SELECT 1") + Ready());
  h.SetCapture(true, 2);
  EXPECT_TRUE(h.TakeTraces().empty());
}

TEST(CaptureTest, SamplingIsAStableFractionOfSessionIds) {
  CaptureOptions options;
  options.sample_per_million = 250'000;
  int sampled = 0;
  for (uint64_t id = 1; id <= 100'000; ++id) sampled += Sampled(options, UnitId{id});
  EXPECT_NEAR(sampled, 25'000, 1'000);
  for (uint64_t id = 1; id <= 1000; ++id) {
    ASSERT_EQ(Sampled(options, UnitId{id}), Sampled(options, UnitId{id}));
  }
  CaptureOptions reseeded = options;
  reseeded.sample_seed = 99;
  int differ = 0;
  for (uint64_t id = 1; id <= 1000; ++id) {
    differ += Sampled(options, UnitId{id}) != Sampled(reseeded, UnitId{id});
  }
  EXPECT_GT(differ, 100) << "the seed chooses another set of sessions";
  options.sample_per_million = kSampleScale;
  EXPECT_TRUE(Sampled(options, UnitId{12345}));
}

TEST(CaptureTest, RowsRedactionEmptiesDataRowsAndCopyData) {
  ProxyConfig config = Harness::DefaultConfig();
  config.capture.redact = Redact::kRows;
  Harness h(config);
  size_t u = h.Accept();
  h.SetCapture(true, 1);
  ConnId server = LogInTrusted(h, u);
  Records(h);
  const std::string row = pg::DataRow{{"secret-value", std::nullopt}}.Encode();
  h.Receive(h.client(u), Q("select secret from t"));
  h.Receive(server, row + Complete("SELECT 1") + Ready());
  EXPECT_NE(h.TakeSent(h.client(u)).find("secret-value"), std::string::npos)
      << "the client gets its data: only the record is redacted";
  h.Receive(h.client(u), Q("copy t from stdin"));
  h.Receive(server, pg::CopyResponse{'G', 0, {0}}.Encode());
  h.Receive(h.client(u), pg::CopyData{"copied-secret\n"}.Encode() + pg::CopyDone{}.Encode());
  std::vector<trace::Record> records = Records(h);
  const std::string empty_row = pg::DataRow{{"", std::nullopt}}.Encode();
  int redacted = 0;
  for (const trace::Record& record : records) {
    const std::string& bytes = Bytes(record);
    EXPECT_EQ(bytes.find("secret-value"), std::string::npos) << Describe(record);
    EXPECT_EQ(bytes.find("copied-secret"), std::string::npos) << Describe(record);
    if (bytes[0] == 'D') EXPECT_EQ(bytes, empty_row);
    if (bytes[0] == 'd') EXPECT_EQ(bytes, pg::CopyData{""}.Encode());
    const bool covered = bytes[0] == 'D' || bytes[0] == 'd';
    EXPECT_EQ(record.redacted(), covered) << Describe(record);
    redacted += record.redacted();
  }
  // The DataRow from the server and to the client, the CopyData from the client and to it.
  EXPECT_EQ(redacted, 4);
}

TEST(CaptureTest, AllValuesRedactionHidesParametersLiteralsAndErrorText) {
  ProxyConfig config = Harness::DefaultConfig();
  config.capture.redact = Redact::kAllValues;
  Harness h(config);
  size_t u = h.Accept();
  h.SetCapture(true, 1);
  ConnId server = LogInTrusted(h, u);
  Records(h);
  h.Receive(h.client(u), Q("select * from t where name = 'bob' and id = 42"));
  h.Receive(server, pg::BuildError("ERROR", "23505", "bob is taken") + Ready());
  h.Receive(h.client(u),
            pg::Parse{"", "select $1 || E'x\\'y'", {}}.Encode() +
                pg::Bind{"", "", {}, {std::string("hunter2"), std::nullopt}, {}}.Encode() +
                pg::Sync{}.Encode());
  std::vector<trace::Record> records = Records(h);
  ASSERT_GE(records.size(), 8u);
  EXPECT_EQ(Bytes(records[0]), Q("select * from t where name = '' and id = 0"));
  EXPECT_TRUE(records[0].redacted());
  EXPECT_EQ(Bytes(records[2]).find("bob"), std::string::npos);  // the server's error text
  auto error = pg::ErrorFields::Decode('E', std::string_view(Bytes(records[2])).substr(5));
  ASSERT_TRUE(error.ok());
  EXPECT_EQ(error->sqlstate(), "23505") << "the SQLSTATE stays: a replay compares it";
  EXPECT_EQ(Describe(records[6]), "client->proxy P");
  EXPECT_EQ(Bytes(records[6]), (pg::Parse{"", "select $1 || ''", {}}.Encode()));
  EXPECT_EQ(Bytes(records[7]), (pg::Bind{"", "", {}, {std::string(), std::nullopt}, {}}.Encode()));
  EXPECT_TRUE(records[7].redacted());
}

TEST(CaptureTest, SnapshotSettingsAreValuesAsSetConfigTakesThem) {
  EXPECT_EQ(SettingValue("work_mem", "'8MB'"), "8MB");
  EXPECT_EQ(SettingValue("application_name", "'it''s'"), "it's");
  EXPECT_EQ(SettingValue("timezone", "E'Europe\\/Paris'"), "Europe/Paris");
  EXPECT_EQ(SettingValue("extra_float_digits", "-1"), "-1");
  EXPECT_EQ(SettingValue("datestyle", "'ISO', 'MDY'"), "ISO, MDY");
  EXPECT_EQ(SettingValue("search_path", "app"), "app");
  EXPECT_EQ(SettingValue("search_path", "'$user', public, \"My Schema\""),
            "\"$user\", public, \"My Schema\"");
}

TEST(CaptureTest, RedactSqlLiteralsKeepsNamesAndParameters) {
  EXPECT_EQ(RedactSqlLiterals("select \"col1\", t2.x, $1 from t2 where a = 'it''s' and b = 3.5"),
            "select \"col1\", t2.x, $1 from t2 where a = '' and b = 0.0");
  EXPECT_EQ(RedactSqlLiterals("select $$dollar$$, $q$x$q$ -- 'comment'"),
            "select '', '' -- 'comment'");
  EXPECT_EQ(RedactSqlLiterals("select 'unterminated"), "select ");
}

TEST(CaptureTest, CancelIsRecordedForTheSessionItTargets) {
  Harness h;
  size_t u = h.Accept();
  h.SetCapture(true, 1);
  h.Receive(h.client(u), Startup());
  ConnId server = h.LastConnect();
  h.Connected(server);
  h.Receive(server, ServerWelcome(4242));
  auto frames = h.TakeFrames(h.client(u));
  ASSERT_EQ(Harness::Types(frames), "RSKZ");
  auto key = pg::BackendKeyData::Decode(frames[2].second);
  ASSERT_TRUE(key.ok());
  h.Receive(h.client(u), Q("select pg_sleep(10)"));
  Records(h);

  // Another connection carries the cancel; it never logs in, so it has no records of its own.
  size_t v = h.Accept();
  h.SetCapture(true, 1);
  h.Receive(h.client(v), pg::CancelRequest{key->pid, key->secret}.Encode());
  std::vector<trace::Record> records = Records(h);
  ASSERT_EQ(Described(records), std::vector<std::string>{"cancel"});
  EXPECT_EQ(records[0].session, 1u);
  EXPECT_TRUE(std::get<trace::Cancel>(records[0].body).forwarded);
  EXPECT_EQ(records[0].backend_pid, 4242);
  EXPECT_EQ(records[0].connection, server.packed());
}

TEST(CaptureTest, FastMessageRecordsAreWhatTheEncoderWrites) {
  const trace::TraceEncoder encoder;
  for (const auto& [direction, flags, pid] :
       {std::tuple{trace::Direction::kClientToProxy, uint16_t{0}, int32_t{0}},
        std::tuple{trace::Direction::kServerToProxy, trace::kFlagRedacted, int32_t{-2}},
        std::tuple{trace::Direction::kProxyToClient, uint16_t{0}, int32_t{0x7fffffff}}}) {
    trace::Record record;
    record.direction = direction;
    record.flags = flags;
    record.session = 0x0102030405060708;
    record.sequence = 99;
    record.time_us = 123'456'789;
    record.connection = ConnId{5, 2}.packed();
    record.node = 3;
    record.backend_pid = pid;
    const std::string message = Q("select 'fast path'");
    record.body = trace::Message{message};
    std::string expected = "prefix";
    ASSERT_TRUE(encoder.Append(record, expected).ok());
    std::string fast = "prefix";
    ASSERT_TRUE(AppendMessageRecord(record, message, trace::kRecordBodySizeMaxDefault, fast));
    EXPECT_EQ(fast, expected);
  }
  trace::Record record;
  record.direction = trace::Direction::kClientToProxy;
  std::string out;
  EXPECT_FALSE(AppendMessageRecord(record, Q("select 1"), trace::kRecordMetadataSize + 5, out));
  EXPECT_TRUE(out.empty()) << "a refused record appends nothing";
}

// Not a pass/fail timing (the machine is shared): prints what a query round trip through a unit
// costs with capture off, on for another session only (this one not sampled), and recording.
// Off must cost one branch per message: no record, no allocation, no copy.
TEST(CaptureTest, CostOfARoundTripWithCaptureOffAndOn) {
  constexpr int kRoundTrips = 20'000;
  const std::string query = Q("select 1");
  const std::string answer = pg::RowDescription{}.Encode() + Complete("SELECT 1") + Ready();
  auto measure = [&](bool on, uint32_t sample_per_million) {
    ProxyConfig config = Harness::DefaultConfig();
    config.capture.sample_per_million = sample_per_million;
    Harness h(config);
    size_t u = h.Accept();
    if (on) h.SetCapture(true, 1);
    ConnId server = LogInTrusted(h, u);
    h.TakeTraces();
    size_t records = 0;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < kRoundTrips; ++i) {
      h.Receive(h.client(u), query);
      h.Receive(server, answer);
      h.TakeSent(server);
      h.TakeSent(h.client(u));
      for (const Trace& trace : h.TakeTraces()) records += trace.count;
    }
    const double ns =
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count() /
        kRoundTrips;
    return std::make_pair(ns, records);
  };
  measure(false, kSampleScale);  // warm-up
  const auto [off_ns, off_records] = measure(false, kSampleScale);
  const auto [unsampled_ns, unsampled_records] = measure(true, 0);
  const auto [on_ns, on_records] = measure(true, kSampleScale);
  EXPECT_EQ(off_records, 0u);
  EXPECT_EQ(unsampled_records, 0u);
  // Query in, Query out, three messages back from the server and three to the client.
  EXPECT_EQ(on_records, size_t{kRoundTrips} * 8);
  std::printf(
      "capture cost per round trip (8 messages) through a unit: off %.0f ns, "
      "on but not sampled %.0f ns, recording %.0f ns\n",
      off_ns, unsampled_ns, on_ns);
}

}  // namespace
}  // namespace switchyard
