// Typed messages against hand-built bytes from PostgreSQL's "Message Formats", and malformed
// payloads that every decoder must refuse.
#include "core/protocol/messages.h"

#include <gtest/gtest.h>

#include <string>
#include <variant>

#include "absl/status/status.h"

namespace switchyard::pg {
namespace {

// Bytes from a literal that may contain NULs.
template <size_t N>
std::string B(const char (&literal)[N]) {
  return std::string(literal, N - 1);
}

std::string Payload(const std::string& message, size_t header = kHeaderSize) {
  return message.substr(header);
}

// ---------------------------------------------------------------- golden encodings

TEST(GoldenTest, Query) {
  EXPECT_EQ(Query{.sql = "SELECT 1"}.Encode(), B("Q\0\0\0\x0dSELECT 1\0"));
  auto query = Query::Decode(B("SELECT 1\0"));
  ASSERT_TRUE(query.ok()) << query.status();
  EXPECT_EQ(query->sql, "SELECT 1");
}

TEST(GoldenTest, AuthenticationRequests) {
  EXPECT_EQ(Authentication{}.Encode(), B("R\0\0\0\x08\0\0\0\0"));
  Authentication md5{.code = Authentication::kMd5Password, .data = B("\x01\x02\x03\x04")};
  EXPECT_EQ(md5.Encode(), B("R\0\0\0\x0c\0\0\0\x05\x01\x02\x03\x04"));
  const std::string sasl = Authentication::Sasl({"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}).Encode();
  EXPECT_EQ(sasl, B("R\0\0\0\x2a\0\0\0\x0aSCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"));
  auto decoded = Authentication::Decode(Payload(sasl));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->code, Authentication::kSasl);
  EXPECT_EQ(decoded->SaslMechanisms(),
            (std::vector<std::string>{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}));
}

TEST(GoldenTest, SaslMechanismsIsEmptyForOtherCodes) {
  Authentication final_message{.code = Authentication::kSaslFinal, .data = B("v=abc\0\0")};
  EXPECT_TRUE(final_message.SaslMechanisms().empty());
}

TEST(GoldenTest, ReadyForQueryAndBackendKeyData) {
  EXPECT_EQ(ReadyForQuery{.status = 'E'}.Encode(), B("Z\0\0\0\x05"
                                                     "E"));
  EXPECT_EQ((BackendKeyData{.pid = 0x01020304, .secret = -1}.Encode()),
            B("K\0\0\0\x0c\x01\x02\x03\x04\xff\xff\xff\xff"));
}

TEST(GoldenTest, StartupFamily) {
  EXPECT_EQ(SslRequest{}.Encode(), B("\0\0\0\x08\x04\xd2\x16\x2f"));
  EXPECT_EQ(GssEncRequest{}.Encode(), B("\0\0\0\x08\x04\xd2\x16\x30"));
  EXPECT_EQ((CancelRequest{.pid = 7, .secret = 9}.Encode()),
            B("\0\0\0\x10\x04\xd2\x16\x2e\0\0\0\x07\0\0\0\x09"));
  StartupMessage startup;
  startup.parameters = {{"user", "bob"}};
  EXPECT_EQ(startup.Encode(), B("\0\0\0\x12\0\x03\0\0user\0bob\0\0"));
}

TEST(GoldenTest, DataRowWithNullAndValue) {
  DataRow row{.values = {std::nullopt, std::string("x"), std::string()}};
  const std::string bytes = B("D\0\0\0\x13\0\x03\xff\xff\xff\xff\0\0\0\x01x\0\0\0\0");
  EXPECT_EQ(row.Encode(), bytes);
  auto decoded = DataRow::Decode(Payload(bytes));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, row);
}

TEST(GoldenTest, RowDescriptionOfOneInt4Column) {
  RowDescription description;
  description.fields.push_back({.name = "?column?",
                                .table_oid = 0,
                                .column = 0,
                                .type_oid = 23,
                                .type_size = 4,
                                .type_modifier = -1,
                                .format = 0});
  EXPECT_EQ(description.Encode(),
            B("T\0\0\0\x21\0\x01?column?\0"
              "\0\0\0\0"          // table oid
              "\0\0"              // column number
              "\0\0\0\x17"        // type oid 23 (int4)
              "\0\x04"            // type size
              "\xff\xff\xff\xff"  // type modifier -1
              "\0\0"));
}

TEST(GoldenTest, BindWithOneBinaryParameter) {
  Bind bind{.portal = "",
            .statement = "s1",
            .parameter_formats = {1},
            .parameters = {std::string("\0\0\0\x2a", 4)},
            .result_formats = {}};
  EXPECT_EQ(bind.Encode(), B("B\0\0\0\x18\0s1\0\0\x01\0\x01\0\x01\0\0\0\x04\0\0\0\x2a\0\0"));
}

TEST(GoldenTest, ParseAndExecute) {
  Parse parse{.name = "", .query = "SELECT $1", .parameter_types = {23}};
  EXPECT_EQ(parse.Encode(), B("P\0\0\0\x15\0SELECT $1\0\0\x01\0\0\0\x17"));
  EXPECT_EQ((Execute{.portal = "", .max_rows = 0}.Encode()), B("E\0\0\0\x09\0\0\0\0\0"));
}

TEST(GoldenTest, BuildErrorHasSeverityCodeAndMessage) {
  const std::string bytes = BuildError("FATAL", "08P01", "bad startup");
  EXPECT_EQ(bytes, B("E\0\0\0\x27SFATAL\0VFATAL\0C08P01\0Mbad startup\0\0"));
  auto error = ErrorFields::Decode('E', Payload(bytes));
  ASSERT_TRUE(error.ok()) << error.status();
  EXPECT_EQ(error->severity(), "FATAL");
  EXPECT_EQ(error->sqlstate(), "08P01");
  EXPECT_EQ(error->Field('M'), "bad startup");
  EXPECT_EQ(error->Field('D'), "");
  EXPECT_TRUE(error->IsFatal());
  const std::string notice = BuildError("WARNING", "01000", "careful", 'N');
  EXPECT_EQ(notice[0], 'N');
}

TEST(GoldenTest, BuildErrorReplacesNulFromPeerText) {
  const std::string bytes = BuildError("ERROR", "28000", std::string("no user \0x\0", 11));
  auto error = ErrorFields::Decode('E', Payload(bytes));
  ASSERT_TRUE(error.ok()) << error.status();
  EXPECT_EQ(error->Field('M'), "no user ?x?");
}

TEST(ErrorFieldsTest, SeverityPrefersTheNonLocalizedField) {
  ErrorFields localized{.type = 'E', .fields = {{'S', "FATAL"}, {'V', "ERROR"}}};
  // 'V' is never translated, so it decides even when 'S' is in another language or differs.
  EXPECT_EQ(localized.severity(), "ERROR");
  EXPECT_FALSE(localized.IsFatal());
  ErrorFields old_server{.type = 'E', .fields = {{'S', "PANIC"}, {'C', "XX000"}}};
  EXPECT_EQ(old_server.severity(), "PANIC");
  EXPECT_TRUE(old_server.IsFatal());
  ErrorFields german{.type = 'E', .fields = {{'S', "FEHLER"}, {'V', "FATAL"}}};
  EXPECT_TRUE(german.IsFatal());
  ErrorFields empty;
  EXPECT_EQ(empty.severity(), "");
  EXPECT_FALSE(empty.IsFatal());
}

// ---------------------------------------------------------------- startup packets

TEST(StartupPacketTest, DispatchesOnTheCode) {
  auto ssl = DecodeStartupPacket(Payload(SslRequest{}.Encode(), 4));
  ASSERT_TRUE(ssl.ok()) << ssl.status();
  EXPECT_TRUE(std::holds_alternative<SslRequest>(*ssl));
  auto gss = DecodeStartupPacket(Payload(GssEncRequest{}.Encode(), 4));
  ASSERT_TRUE(gss.ok()) << gss.status();
  EXPECT_TRUE(std::holds_alternative<GssEncRequest>(*gss));
  auto cancel = DecodeStartupPacket(Payload(CancelRequest{.pid = 5, .secret = 6}.Encode(), 4));
  ASSERT_TRUE(cancel.ok()) << cancel.status();
  ASSERT_TRUE(std::holds_alternative<CancelRequest>(*cancel));
  EXPECT_EQ(std::get<CancelRequest>(*cancel), (CancelRequest{.pid = 5, .secret = 6}));
  StartupMessage message;
  message.protocol = kProtocolVersion3 + 2;  // 3.2: decoded, the server negotiates down
  message.parameters = {{"user", "u"}, {"options", "-c x=y"}};
  auto startup = DecodeStartupPacket(Payload(message.Encode(), 4));
  ASSERT_TRUE(startup.ok()) << startup.status();
  ASSERT_TRUE(std::holds_alternative<StartupMessage>(*startup));
  EXPECT_EQ(std::get<StartupMessage>(*startup), message);
}

TEST(StartupPacketTest, OtherProtocolVersionsAreRefusedByName) {
  auto v2 = DecodeStartupPacket(B("\0\x02\0\0user\0u\0\0"));
  ASSERT_FALSE(v2.ok());
  EXPECT_EQ(v2.status().message(), "unsupported frontend protocol 2.0");
  // A 1234.x code that is none of the three requests.
  auto bogus = DecodeStartupPacket(B("\x04\xd2\x16\x31"));
  ASSERT_FALSE(bogus.ok());
  EXPECT_EQ(bogus.status().message(), "unsupported frontend protocol 1234.5681");
  EXPECT_FALSE(DecodeStartupPacket(B("\0\x03")).ok());
}

TEST(StartupPacketTest, CancelRequestMustBeSixteenBytes) {
  const std::string payload = Payload(CancelRequest{.pid = 1, .secret = 2}.Encode(), 4);
  EXPECT_FALSE(DecodeStartupPacket(payload + "x").ok());
  EXPECT_FALSE(DecodeStartupPacket(payload.substr(0, payload.size() - 1)).ok());
  EXPECT_FALSE(DecodeStartupPacket(Payload(SslRequest{}.Encode(), 4) + "x").ok());
  EXPECT_FALSE(DecodeStartupPacket(Payload(GssEncRequest{}.Encode(), 4) + "x").ok());
}

TEST(StartupPacketTest, MissingUserIsAcceptedAndFindReportsIt) {
  auto startup = StartupMessage::Decode(B("\0\x03\0\0database\0db\0\0"));
  ASSERT_TRUE(startup.ok()) << startup.status();
  EXPECT_EQ(startup->Find("user"), nullptr);
  ASSERT_NE(startup->Find("database"), nullptr);
  EXPECT_EQ(*startup->Find("database"), "db");
  auto bare = StartupMessage::Decode(B("\0\x03\0\0\0"));
  ASSERT_TRUE(bare.ok()) << bare.status();
  EXPECT_TRUE(bare->parameters.empty());
}

TEST(StartupPacketTest, LayoutErrors) {
  // No final terminator.
  EXPECT_FALSE(StartupMessage::Decode(B("\0\x03\0\0user\0bob\0")).ok());
  EXPECT_FALSE(StartupMessage::Decode(B("\0\x03\0\0")).ok());
  // Name without a value.
  EXPECT_FALSE(StartupMessage::Decode(B("\0\x03\0\0user\0")).ok());
  EXPECT_FALSE(StartupMessage::Decode(B("\0\x03\0\0user")).ok());
  // Bytes after the terminator.
  EXPECT_FALSE(StartupMessage::Decode(B("\0\x03\0\0user\0bob\0\0x")).ok());
}

// ---------------------------------------------------------------- malformed payloads

TEST(MalformedTest, DataRow) {
  EXPECT_FALSE(DataRow::Decode(B("\0\x01\xff\xff\xff\xfe")).ok()) << "length -2";
  EXPECT_FALSE(DataRow::Decode(B("\0\x01\x80\0\0\0")).ok()) << "length -2^31";
  EXPECT_FALSE(DataRow::Decode(B("\0\x01\0\0\0\x05"
                                 "abcd"))
                   .ok())
      << "value past the end";
  EXPECT_FALSE(DataRow::Decode(B("\xff\xff\0\0\0\0")).ok()) << "65535 columns in 6 bytes";
  EXPECT_FALSE(DataRow::Decode(B("\0")).ok());
  EXPECT_FALSE(DataRow::Decode(B("\0\0x")).ok()) << "trailing byte";
  auto past_end = DataRow::Decode(B("\0\x01\x7f\xff\xff\xff"));
  ASSERT_FALSE(past_end.ok());
  EXPECT_EQ(past_end.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MalformedTest, CountsBeyondThePayload) {
  EXPECT_FALSE(RowDescription::Decode(B("\xff\xff")).ok());
  EXPECT_FALSE(ParameterDescription::Decode(B("\0\x02\0\0\0\x17")).ok());
  EXPECT_FALSE(Parse::Decode(B("\0SELECT 1\0\xff\xff")).ok());
  EXPECT_FALSE(Bind::Decode(B("\0\0\xff\xff")).ok());
  EXPECT_FALSE(Bind::Decode(B("\0\0\0\0\xff\xff")).ok());
  EXPECT_FALSE(FunctionCall::Decode(B("\0\0\0\x01\0\0\xff\xff")).ok());
  EXPECT_FALSE(CopyResponse::Decode('H', B("\0\0\x03\0\0\0\0")).ok());
  EXPECT_FALSE(NegotiateProtocolVersion::Decode(B("\0\0\0\0\xff\xff\xff\xff")).ok())
      << "negative count";
  EXPECT_FALSE(NegotiateProtocolVersion::Decode(B("\0\0\0\0\x7f\xff\xff\xff")).ok());
}

TEST(MalformedTest, NullWhereNullIsNotAllowedAndWhereItIs) {
  auto null_result = FunctionCallResponse::Decode(B("\xff\xff\xff\xff"));
  ASSERT_TRUE(null_result.ok()) << null_result.status();
  EXPECT_EQ(null_result->result, std::nullopt);
  EXPECT_FALSE(FunctionCallResponse::Decode(B("\xff\xff\xff\xfe")).ok());
  auto no_data = SaslInitialResponse::Decode(B("SCRAM-SHA-256\0\xff\xff\xff\xff"));
  ASSERT_TRUE(no_data.ok()) << no_data.status();
  EXPECT_EQ(no_data->mechanism, "SCRAM-SHA-256");
  EXPECT_EQ(no_data->data, std::nullopt);
  EXPECT_FALSE(SaslInitialResponse::Decode(B("SCRAM-SHA-256\0\xff\xff\xff\xf0")).ok());
  EXPECT_FALSE(SaslInitialResponse::Decode(B("SCRAM-SHA-256\0\0\0\0\x09n,,n=")).ok());
}

TEST(MalformedTest, MissingTerminators) {
  EXPECT_FALSE(Query::Decode("SELECT 1").ok());
  EXPECT_FALSE(Query::Decode("").ok());
  EXPECT_FALSE(CommandComplete::Decode("SELECT 1").ok());
  EXPECT_FALSE(ParameterStatus::Decode(B("client_encoding\0UTF8")).ok());
  EXPECT_FALSE(ErrorFields::Decode('E', B("SERROR\0")).ok());
  EXPECT_FALSE(ErrorFields::Decode('N', B("SERROR")).ok());
  EXPECT_FALSE(ErrorFields::Decode('E', "").ok());
  EXPECT_FALSE(Authentication::Decode(B("\0\0\0\x0aSCRAM-SHA-256\0")).ok());
  EXPECT_FALSE(NotificationResponse::Decode(B("\0\0\0\x01"
                                              "chan\0payload"))
                   .ok());
}

TEST(MalformedTest, TrailingBytes) {
  EXPECT_FALSE(Sync::Decode("x").ok());
  EXPECT_FALSE(ParseComplete::Decode("x").ok());
  EXPECT_FALSE(Query::Decode(B("SELECT 1\0x")).ok());
  EXPECT_FALSE(ErrorFields::Decode('E', B("SERROR\0\0\0")).ok());
  EXPECT_FALSE(BackendKeyData::Decode(B("\0\0\0\x01\0\0\0\x02\0")).ok());
  EXPECT_FALSE(Execute::Decode(B("\0\0\0\0\0\0")).ok());
}

TEST(MalformedTest, EnumeratedBytesOutOfRange) {
  EXPECT_FALSE(ReadyForQuery::Decode("X").ok());
  EXPECT_FALSE(ReadyForQuery::Decode("").ok());
  EXPECT_FALSE(Close::Decode(B("X\0")).ok());
  EXPECT_FALSE(Describe::Decode(B("s\0")).ok());
  auto portal = Describe::Decode(B("Pcursor\0"));
  ASSERT_TRUE(portal.ok()) << portal.status();
  EXPECT_EQ(portal->kind, 'P');
  EXPECT_EQ(portal->name, "cursor");
  EXPECT_FALSE(CopyResponse::Decode('Z', B("\0\0\0")).ok());
  EXPECT_FALSE(ErrorFields::Decode('Z', B("\0")).ok());
}

TEST(MalformedTest, AuthenticationShapes) {
  EXPECT_FALSE(Authentication::Decode(B("\0\0\0\x04")).ok()) << "unknown code 4";
  EXPECT_FALSE(Authentication::Decode(B("\0\0\0")).ok()) << "short code";
  EXPECT_FALSE(Authentication::Decode(B("\0\0\0\0x")).ok()) << "AuthenticationOk with data";
  EXPECT_FALSE(Authentication::Decode(B("\0\0\0\x05\x01\x02\x03")).ok()) << "3-byte salt";
  EXPECT_FALSE(Authentication::Decode(B("\0\0\0\x05\x01\x02\x03\x04\x05")).ok());
  auto cont = Authentication::Decode(B("\0\0\0\x0br=abc,s=xyz,i=4096"));
  ASSERT_TRUE(cont.ok()) << cont.status();
  EXPECT_EQ(cont->code, Authentication::kSaslContinue);
  EXPECT_EQ(cont->data, "r=abc,s=xyz,i=4096");
}

TEST(MalformedTest, ErrorsAreInvalidArgumentNamingTheMessage) {
  auto status = Bind::Decode(B("portal\0")).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("Bind"), std::string_view::npos) << status;
}

// ---------------------------------------------------------------- our own bugs stop the process

TEST(EncodeDeathTest, NulInsideACStringIsABug) {
  EXPECT_DEATH(Query{.sql = std::string("SELECT\0 1", 9)}.Encode(), "check failed");
  StartupMessage empty_name;
  empty_name.parameters = {{"", "x"}};
  EXPECT_DEATH(empty_name.Encode(), "check failed");
  ErrorFields zero_code{.type = 'E', .fields = {{'\0', "x"}}};
  EXPECT_DEATH(zero_code.Encode(), "check failed");
}

}  // namespace
}  // namespace switchyard::pg
