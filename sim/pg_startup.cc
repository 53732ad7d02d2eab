// Connection startup on a simulated node: SSLRequest/GSSENCRequest ('N'), CancelRequest,
// StartupMessage, trust / MD5 / SCRAM-SHA-256 authentication, startup parameters,
// ParameterStatus, BackendKeyData and the first ReadyForQuery.
#include <cstring>
#include <utility>

#include "absl/strings/str_format.h"
#include "core/auth/md5.h"
#include "core/base/check.h"
#include "sim/pg_exec_internal.h"
#include "sim/text.h"

namespace switchyard::sim::internal {
namespace {

constexpr size_t kScramNonceBytes = 18;
constexpr size_t kScramSaltBytes = 16;

std::string PasswordFailed(std::string_view user) {
  return absl::StrFormat("password authentication failed for user \"%s\"", user);
}

int32_t RandomInt32(NodeState& node) {
  const std::string bytes = RandomBytes(node, 4);
  uint32_t value = 0;
  std::memcpy(&value, bytes.data(), sizeof(value));
  return static_cast<int32_t>(value);
}

// `options` holds "-c name=value" and "--name=value" words, as libpq's PGOPTIONS does.
std::optional<SqlError> ApplyOptions(Session& session, std::string_view options) {
  std::vector<std::string> words = SplitOn(options, ' ', true);
  for (size_t i = 0; i < words.size(); ++i) {
    std::string setting;
    if (words[i] == "-c" && i + 1 < words.size()) {
      setting = words[++i];
    } else if (words[i].starts_with("-c")) {
      setting = words[i].substr(2);
    } else if (words[i].starts_with("--")) {
      setting = words[i].substr(2);
    } else {
      return SqlError{.sqlstate = "42601",
                      .message = absl::StrFormat("invalid command-line argument for server "
                                                 "process: %s",
                                                 words[i])};
    }
    const size_t equals = setting.find('=');
    if (equals == std::string::npos) {
      return SqlError{.sqlstate = "42601",
                      .message = absl::StrFormat("-c %s requires a value", setting)};
    }
    if (std::optional<SqlError> error =
            session.gucs.SetResetValue(setting.substr(0, equals), setting.substr(equals + 1))) {
      return error;
    }
  }
  return std::nullopt;
}

// Authentication succeeded: settle the session's parameters and open it.
void FinishStartup(NodeState& node, Session& session) {
  if (!node.options.databases.empty() && !node.options.databases.contains(session.database)) {
    SendFatal(node, session, "3D000",
              absl::StrFormat("database \"%s\" does not exist", session.database));
    return;
  }
  Gucs& gucs = session.gucs;
  CHECK(!gucs.SetResetValue("server_version", node.options.server_version));
  CHECK(!gucs.SetResetValue("session_authorization", session.user));
  CHECK(!gucs.SetResetValue("is_superuser", session.user == "postgres" ? "on" : "off"));
  CHECK(
      !gucs.SetResetValue("max_connections", std::to_string(node.options.limits.max_connections)));
  for (const auto& [name, value] : session.startup_parameters) {
    std::optional<SqlError> error =
        name == "options" ? ApplyOptions(session, value) : gucs.SetResetValue(name, value);
    if (error) {
      SendFatal(node, session, error->sqlstate, error->message);
      return;
    }
  }
  session.output += pg::Authentication{.code = pg::Authentication::kOk}.Encode();
  ReportParameters(node, session);
  session.pid = node.next_pid++;
  session.secret = RandomInt32(node);
  node.pid_to_session[session.pid] = session.id;
  session.output += pg::BackendKeyData{.pid = session.pid, .secret = session.secret}.Encode();
  session.phase = Session::Phase::kReady;
  SendReadyForQuery(node, session);
}

void HandleCancel(NodeState& node, Session& session, const pg::CancelRequest& cancel) {
  ++node.counters.cancels_received;
  auto found = node.pid_to_session.find(cancel.pid);
  if (found != node.pid_to_session.end()) {
    auto target = node.sessions.find(found->second);
    if (target != node.sessions.end() && target->second.secret == cancel.secret) {
      RequestCancel(node, target->second);
    }
  }
  // The cancel connection itself gets no answer; the server just closes it.
  EndSession(node, session);
}

void HandleStartupMessage(NodeState& node, Session& session, const pg::StartupMessage& startup) {
  const int major = startup.protocol >> 16;
  const int minor = startup.protocol & 0xffff;
  if (major != 3) {
    SendFatal(node, session, "0A000",
              absl::StrFormat("unsupported frontend protocol %d.%d: server supports 3.0 to 3.0",
                              major, minor));
    return;
  }
  const std::string* user = startup.Find("user");
  if (user == nullptr || user->empty()) {
    SendFatal(node, session, "28000", "no PostgreSQL user name specified in startup packet");
    return;
  }
  pg::NegotiateProtocolVersion negotiate{.newest_minor = 0};
  for (const auto& [name, value] : startup.parameters) {
    if (name == "user" || name == "database") continue;
    if (name == "replication") {
      if (value != "false" && value != "off" && value != "0" && value != "no") {
        SendFatal(node, session, "0A000",
                  "switchyard-sim does not support replication connections");
        return;
      }
      continue;
    }
    if (name.starts_with("_pq_.")) {
      negotiate.unrecognized_options.push_back(name);
      continue;
    }
    session.startup_parameters.emplace_back(name, value);
  }
  if (minor > 0 || !negotiate.unrecognized_options.empty()) {
    session.output += negotiate.Encode();
  }
  size_t counted = 0;
  for (const auto& [id, other] : node.sessions) counted += other.counted ? 1 : 0;
  if (counted >= node.options.limits.max_connections) {
    SendFatal(node, session, "53300", "sorry, too many clients already");
    return;
  }
  session.counted = true;
  session.user = *user;
  const std::string* database = startup.Find("database");
  session.database = database && !database->empty() ? *database : *user;
  switch (node.options.auth) {
    case NodeAuth::kTrust:
      if (!node.options.users.empty() && !node.options.users.contains(session.user)) {
        SendFatal(node, session, "28000",
                  absl::StrFormat("role \"%s\" does not exist", session.user));
        return;
      }
      FinishStartup(node, session);
      return;
    case NodeAuth::kMd5:
      session.md5_salt = RandomBytes(node, 4);
      session.output +=
          pg::Authentication{.code = pg::Authentication::kMd5Password, .data = session.md5_salt}
              .Encode();
      session.phase = Session::Phase::kAuthMd5;
      return;
    case NodeAuth::kScramSha256:
      session.output += pg::Authentication::Sasl({std::string(auth::kScramMechanism)}).Encode();
      session.phase = Session::Phase::kAuthSasl;
      return;
  }
}

// The verifier of a user, or one nobody can match (PostgreSQL runs a mock exchange for unknown
// users and users without a password, so a client cannot tell them apart).
auth::ScramVerifier VerifierFor(NodeState& node, std::string_view user) {
  auto found = node.verifiers.find(user);
  if (found != node.verifiers.end()) return found->second;
  return auth::ScramVerifier{.iterations = node.options.scram_iterations,
                             .salt = RandomBytes(node, kScramSaltBytes),
                             .stored_key = RandomBytes(node, 32),
                             .server_key = RandomBytes(node, 32)};
}

void FailAuth(NodeState& node, Session& session, const absl::Status& status) {
  if (status.code() == absl::StatusCode::kUnauthenticated) {
    SendFatal(node, session, "28P01", PasswordFailed(session.user));
  } else {
    SendFatal(node, session, "08P01", std::string(status.message()));
  }
}

void HandleSasl(NodeState& node, Session& session, std::string_view payload) {
  if (session.phase == Session::Phase::kAuthSasl) {
    absl::StatusOr<pg::SaslInitialResponse> initial = pg::SaslInitialResponse::Decode(payload);
    if (!initial.ok())
      return FailAuth(node, session, absl::InvalidArgumentError(initial.status().message()));
    if (initial->mechanism != auth::kScramMechanism) {
      return SendFatal(node, session, "08P01",
                       "client selected an invalid SASL authentication mechanism");
    }
    if (!initial->data) {
      return SendFatal(node, session, "08P01", "malformed SCRAM message (empty message)");
    }
    session.scram = std::make_unique<auth::ScramServer>(VerifierFor(node, session.user),
                                                        RandomBytes(node, kScramNonceBytes));
    absl::StatusOr<std::string> server_first = session.scram->HandleClientFirst(*initial->data);
    if (!server_first.ok()) return FailAuth(node, session, server_first.status());
    session.output +=
        pg::Authentication{.code = pg::Authentication::kSaslContinue, .data = *server_first}
            .Encode();
    session.phase = Session::Phase::kAuthSaslContinue;
    return;
  }
  absl::StatusOr<pg::SaslResponse> response = pg::SaslResponse::Decode(payload);
  if (!response.ok()) {
    return FailAuth(node, session, absl::InvalidArgumentError(response.status().message()));
  }
  absl::StatusOr<std::string> server_final = session.scram->HandleClientFinal(response->data);
  session.scram.reset();
  if (!server_final.ok()) return FailAuth(node, session, server_final.status());
  session.output +=
      pg::Authentication{.code = pg::Authentication::kSaslFinal, .data = *server_final}.Encode();
  FinishStartup(node, session);
}

}  // namespace

void HandleStartupPacket(NodeState& node, Session& session, const pg::StartupFrame& frame) {
  absl::StatusOr<pg::StartupPacket> packet = pg::DecodeStartupPacket(frame.payload);
  if (!packet.ok()) {
    SendFatal(node, session, "08P01", "invalid startup packet layout");
    return;
  }
  if (std::holds_alternative<pg::SslRequest>(*packet) ||
      std::holds_alternative<pg::GssEncRequest>(*packet)) {
    session.output += "N";
    return;
  }
  if (const auto* cancel = std::get_if<pg::CancelRequest>(&*packet)) {
    HandleCancel(node, session, *cancel);
    return;
  }
  HandleStartupMessage(node, session, std::get<pg::StartupMessage>(*packet));
}

void HandleAuthMessage(NodeState& node, Session& session, const pg::Frame& frame) {
  if (frame.type == 'X') {
    EndSession(node, session);
    return;
  }
  if (frame.type != 'p') {
    SendFatal(node, session, "08P01",
              absl::StrFormat("expected password response, got message type %d", frame.type));
    return;
  }
  if (session.phase != Session::Phase::kAuthMd5) {
    HandleSasl(node, session, frame.payload);
    return;
  }
  absl::StatusOr<pg::PasswordMessage> password = pg::PasswordMessage::Decode(frame.payload);
  if (!password.ok()) {
    SendFatal(node, session, "08P01", "invalid password packet size");
    return;
  }
  auto user = node.options.users.find(session.user);
  if (user == node.options.users.end() || !user->second ||
      auth::Md5Response(session.user, *user->second, session.md5_salt) != password->password) {
    SendFatal(node, session, "28P01", PasswordFailed(session.user));
    return;
  }
  FinishStartup(node, session);
}

void ReportParameters(NodeState& node, Session& session) {
  // A reported value depends on the session's parameters and, for in_hot_standby, on whether the
  // node is in recovery, nothing else (see ShowValue). When neither changed since the last round,
  // no value can differ from what the client has; this runs before every ReadyForQuery.
  const std::pair<uint64_t, bool> inputs{session.gucs.version(), node.in_recovery};
  if (session.reported_from == inputs) return;
  session.reported_from = inputs;
  for (const GucDefinition& guc : AllGucs()) {
    if (!guc.report) continue;
    std::string value = ShowValue(node, session, guc.name).value_or("");
    auto it = session.reported.find(guc.name);
    if (it == session.reported.end()) {
      it = session.reported.emplace(std::string(guc.name), std::string()).first;
    } else if (it->second == value) {
      continue;
    }
    session.output += pg::ParameterStatus{.name = std::string(guc.name), .value = value}.Encode();
    it->second = std::move(value);
  }
}

}  // namespace switchyard::sim::internal
