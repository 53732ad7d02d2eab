// The trace-backed node of `replay --target sim`, driven over the simulated network as the proxy
// drives it: the login, a captured answer (once per request the client sent), the health poll on
// either role, the proxy's own statements, a write refused by a replica, and an unknown request.
#include "sim/trace_node.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/cluster/health_checker.h"
#include "core/protocol/messages.h"
#include "io_sim/decision.h"

namespace switchyard::sim {
namespace {

class NoProxy final : public io_sim::ProxyEndpoint {
 public:
  ConnId OnAccept(io_sim::LinkId, io_sim::PeerId) override { return ConnId{}; }
  void OnChanged(ConnId) override {}
};

std::string Q(std::string sql) { return pg::Query{std::move(sql)}.Encode(); }

class TraceNodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    network_.Attach(&proxy_);
    script_.set_login_parameters({pg::ParameterStatus{"server_version", "15.20"}.Encode(),
                                  pg::ParameterStatus{"in_hot_standby", "off"}.Encode()});
    ScriptRequest select_one{
        .bytes = Q("SELECT 1"),
        .answer = {pg::RowDescription{{{.name = "one", .type_oid = 23}}}.Encode(),
                   pg::DataRow{{std::string("1")}}.Encode(),
                   pg::CommandComplete{"SELECT 1"}.Encode(), pg::ReadyForQuery{'I'}.Encode()},
        .read_only = true,
        .text = "SELECT 1"};
    ScriptRequest update{
        .bytes = Q("UPDATE t SET v = 1"),
        .answer = {pg::CommandComplete{"UPDATE 1"}.Encode(), pg::ReadyForQuery{'I'}.Encode()},
        .read_only = false,
        .text = "UPDATE t SET v = 1"};
    script_.AddSession({select_one, update});
  }

  void Start(bool replica) {
    node_ = std::make_unique<TraceNode>(
        script_, network_, timeline_,
        TraceNodeOptions{.name = "n0", .node = NodeId{0}, .peer = {1000}, .replica = replica});
    node_->set_observer([this](const TraceNodeEvent& e) { events_.push_back(e); });
    network_.Connect(conn_, NodeId{0});
    Run();
    ASSERT_EQ(network_.ConnectStatus(conn_), io_sim::SimNetwork::ConnectState::kConnected);
  }

  void Run() {
    while (std::optional<io_sim::Timeline::Entry> event = timeline_.PopNext()) event->payload();
  }

  // Sends `bytes` and returns the types of the messages that came back (with the SQLSTATE of an
  // error, the status of a ReadyForQuery and the values of a DataRow).
  std::vector<std::string> Exchange(const std::string& bytes) {
    EXPECT_EQ(network_.Write(conn_, bytes).accepted, bytes.size());
    Run();
    std::string received;
    for (;;) {
      io_sim::ReadResult read = network_.Read(conn_, size_t{1} << 20);
      if (read.kind != io_sim::ReadResult::Kind::kData) break;
      received += read.bytes;
    }
    pg::FrameReader reader(pg::Direction::kBackend);
    reader.Append(received);
    std::vector<std::string> out;
    while (true) {
      auto frame = reader.Next();
      if (!frame.ok() || !frame->has_value()) break;
      const pg::Frame& f = **frame;
      std::string item(1, f.type);
      if (f.type == 'E') item += std::string(pg::ErrorFields::Decode('E', f.payload)->sqlstate());
      if (f.type == 'Z') item += f.payload[0];
      if (f.type == 'C') item += ":" + pg::CommandComplete::Decode(f.payload)->tag;
      if (f.type == 'S')
        item += ":" + pg::ParameterStatus::Decode(f.payload)->name + "=" +
                pg::ParameterStatus::Decode(f.payload)->value;
      if (f.type == 'D') {
        const absl::StatusOr<pg::DataRow> row = pg::DataRow::Decode(f.payload);
        for (const auto& value : row->values) item += "|" + value.value_or("NULL");
      }
      out.push_back(item);
    }
    return out;
  }

  std::vector<std::string> Login() {
    pg::StartupMessage startup;
    startup.parameters = {{"user", "app"}, {"database", "db"}};
    return Exchange(startup.Encode());
  }

  io_sim::Timeline timeline_;
  io_sim::ScriptedDecisions decisions_{{}};
  io_sim::SimNetwork network_{io_sim::NetworkConfig{}, timeline_, decisions_};
  NoProxy proxy_;
  TraceScript script_;
  std::unique_ptr<TraceNode> node_;
  std::vector<TraceNodeEvent> events_;
  ConnId conn_{1, 1};
};

TEST_F(TraceNodeTest, LogsInWithTheCapturedParametersAndItsRole) {
  Start(/*replica=*/true);
  EXPECT_EQ(Login(), (std::vector<std::string>{"R", "S:server_version=15.20", "S:in_hot_standby=on",
                                               "K", "ZI"}));
}

TEST_F(TraceNodeTest, AnswersASentRequestFromTheCaptureOnce) {
  Start(/*replica=*/false);
  Login();
  script_.OnClientSent(0, 0);
  EXPECT_EQ(Exchange(Q("SELECT 1")), (std::vector<std::string>{"T", "D|1", "C:SELECT 1", "ZI"}));
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].kind, TraceNodeEvent::Kind::kClientRequest);
  EXPECT_EQ(events_[0].match->deliveries, 0u);
  // Answered: the client has not sent it again, so the capture holds no answer for it now.
  script_.OnClientAnswered(0);
  EXPECT_EQ(Exchange(Q("SELECT 1")), (std::vector<std::string>{"E0A000", "ZI"}));
  EXPECT_EQ(events_.back().kind, TraceNodeEvent::Kind::kUnknown);
}

TEST_F(TraceNodeTest, AnswersHealthPollsByRoleAndTimeline) {
  Start(/*replica=*/true);
  Login();
  const std::string poll = Q(std::string(kHealthPollQuery));
  std::vector<std::string> replica = Exchange(poll);
  ASSERT_EQ(replica.size(), 4u);
  EXPECT_EQ(replica[1], "D|t|0/3000000|NULL");
  node_->Promote();
  Run();
  EXPECT_EQ(Exchange(""), (std::vector<std::string>{"S:in_hot_standby=off"}));
  std::vector<std::string> primary = Exchange(poll);
  ASSERT_EQ(primary.size(), 4u);
  EXPECT_EQ(primary[1], "D|f|0/3000000|000000020000000000000003");
  EXPECT_EQ(primary[3], "ZI");
}

TEST_F(TraceNodeTest, SynthesizesTheProxysOwnStatements) {
  Start(/*replica=*/false);
  Login();
  EXPECT_EQ(Exchange(Q("SET application_name TO 'x';\nRESET work_mem;")),
            (std::vector<std::string>{"C:SET", "C:RESET", "ZI"}));
  EXPECT_EQ(Exchange(Q("DISCARD ALL")), (std::vector<std::string>{"C:DISCARD ALL", "ZI"}));
  EXPECT_EQ(Exchange(pg::Parse{"s1", "SELECT $1", {}}.Encode() + pg::Sync{}.Encode()),
            (std::vector<std::string>{"1", "ZI"}));
  EXPECT_EQ(Exchange(Q("BEGIN")), (std::vector<std::string>{"C:BEGIN", "ZT"}));
  EXPECT_EQ(Exchange(Q("ROLLBACK")), (std::vector<std::string>{"C:ROLLBACK", "ZI"}));
  for (const TraceNodeEvent& event : events_) {
    EXPECT_EQ(event.kind, TraceNodeEvent::Kind::kOwnStatement) << event.text;
  }
}

TEST_F(TraceNodeTest, AnswersAnUnknownRequestWithAnErrorNotSilence) {
  Start(/*replica=*/false);
  Login();
  EXPECT_EQ(Exchange(Q("SELECT 42")), (std::vector<std::string>{"E0A000", "ZI"}));
  EXPECT_EQ(events_.back().kind, TraceNodeEvent::Kind::kUnknown);
}

TEST_F(TraceNodeTest, ReplicaRefusesACapturedWriteAsAHotStandbyWould) {
  Start(/*replica=*/true);
  Login();
  script_.OnClientSent(0, 1);
  EXPECT_EQ(Exchange(Q("UPDATE t SET v = 1")), (std::vector<std::string>{"E25006", "ZI"}));
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_TRUE(events_[0].refused);
}

TEST_F(TraceNodeTest, ShutdownSendsAdminShutdownThenCloses) {
  Start(/*replica=*/false);
  Login();
  node_->Shutdown();
  EXPECT_EQ(Exchange(""), (std::vector<std::string>{"E57P01"}));
  EXPECT_FALSE(node_->up());
}

}  // namespace
}  // namespace switchyard::sim
