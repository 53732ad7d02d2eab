// ClientSession: startup packet, negotiation, and authentication of one client.
#include "core/session/client_session.h"

#include <algorithm>

#include "core/auth/md5.h"
#include "core/base/check.h"
#include "core/base/strings.h"
#include "core/proxy.h"

namespace switchyard {
namespace {

// A client may send SSLRequest and GSSENCRequest before its StartupMessage; more packets than
// this before logging in is not a real client.
constexpr int kStartupPacketsMax = 4;
constexpr size_t kScramNonceBytes = 18;
constexpr size_t kScramSaltBytes = 16;
constexpr size_t kMd5SaltBytes = 4;

std::string RandomString(Environment& env, size_t n) {
  std::string bytes(n, '\0');
  env.RandomBytes(bytes.data(), n);
  return bytes;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

bool IsReplicationRequest(const std::string& value) {
  for (std::string_view no : {"false", "off", "no", "0"}) {
    if (EqualsIgnoreCase(value, no)) return false;
  }
  return true;
}

}  // namespace

std::string_view ClientStateName(ClientSession::State state) {
  switch (state) {
    case ClientSession::State::kStartup:
      return "startup";
    case ClientSession::State::kAuthenticating:
      return "authenticating";
    case ClientSession::State::kWaitingForServer:
      return "waiting_for_server";
    case ClientSession::State::kReady:
      return "ready";
    case ClientSession::State::kClosing:
      return "closing";
  }
  return "unknown";
}

ClientSession::ClientSession(ConnId conn, const ProxyConfig& config, bool admitted)
    : conn_(conn),
      config_(config),
      admitted_(admitted),
      reader_(pg::Direction::kFrontend, config.message_size_max) {}

void ClientSession::TransitionTo(State next) {
  bool legal = next == State::kClosing;
  switch (state_) {
    case State::kStartup:
      legal |= next == State::kAuthenticating || next == State::kWaitingForServer;
      break;
    case State::kAuthenticating:
      legal |= next == State::kWaitingForServer;
      break;
    case State::kWaitingForServer:
      legal |= next == State::kReady;
      break;
    case State::kReady:
      break;
    case State::kClosing:
      legal = next == State::kClosing;
      break;
  }
  CHECK(legal) << "illegal client session transition " << ClientStateName(state_) << " -> "
               << ClientStateName(next);
  state_ = next;
}

ClientSession::Step ClientSession::Reject(std::string_view sqlstate, std::string_view message) {
  Fatal(sqlstate, message);
  return Step::kReject;
}

void ClientSession::Fatal(std::string_view sqlstate, std::string_view message) {
  output_ += pg::BuildError("FATAL", sqlstate, message);
  TransitionTo(State::kClosing);
}

void ClientSession::RejectWith(std::string_view error_bytes) {
  output_.append(error_bytes);
  TransitionTo(State::kClosing);
}

ClientSession::Step ClientSession::HandleStartupPacket(const pg::StartupFrame& packet,
                                                       Environment& env) {
  CHECK(state_ == State::kStartup);
  if (++startup_packets_ > kStartupPacketsMax) {
    return Reject("08P01", "too many startup packets");
  }
  auto decoded = pg::DecodeStartupPacket(packet.payload);
  if (!decoded.ok()) {
    return Reject("08P01", Cat("invalid startup packet: ", decoded.status().message()));
  }
  if (std::holds_alternative<pg::SslRequest>(*decoded) ||
      std::holds_alternative<pg::GssEncRequest>(*decoded)) {
    // No TLS or GSS encryption yet: the client may go on in plaintext.
    output_ += 'N';
    return Step::kContinue;
  }
  if (auto* cancel = std::get_if<pg::CancelRequest>(&*decoded)) {
    cancel_key_ = *cancel;
    TransitionTo(State::kClosing);
    return Step::kCancel;
  }
  return HandleStartupMessage(std::get<pg::StartupMessage>(std::move(*decoded)), env);
}

ClientSession::Step ClientSession::HandleStartupMessage(pg::StartupMessage startup,
                                                        Environment& env) {
  if (!admitted_) return Reject("53300", "sorry, too many clients already");
  const int32_t minor = startup.protocol & 0xffff;
  pg::NegotiateProtocolVersion negotiate;
  std::erase_if(startup.parameters, [&](const auto& parameter) {
    if (!parameter.first.starts_with("_pq_.")) return false;
    negotiate.unrecognized_options.push_back(parameter.first);
    return true;
  });
  if (minor > 0 || !negotiate.unrecognized_options.empty()) {
    // We speak 3.0 only, as PostgreSQL 15 does: tell the client so and go on.
    output_ += negotiate.Encode();
    startup.protocol = pg::kProtocolVersion3;
  }
  const std::string* user = startup.Find("user");
  if (user == nullptr || user->empty()) {
    return Reject("28000", "no PostgreSQL user name specified in startup packet");
  }
  if (const std::string* replication = startup.Find("replication");
      replication != nullptr && IsReplicationRequest(*replication)) {
    return Reject("0A000", "switchyard does not proxy replication connections");
  }
  user_ = *user;
  const std::string* database = startup.Find("database");
  database_ = (database == nullptr || database->empty()) ? user_ : *database;
  startup_ = std::move(startup);
  if (auto it = config_.users.find(user_); it != config_.users.end()) secret_ = &it->second;

  switch (config_.auth_type) {
    case auth::AuthType::kTrust:
      TransitionTo(State::kWaitingForServer);
      return Step::kAuthenticated;
    case auth::AuthType::kMd5:
      md5_salt_ = RandomString(env, kMd5SaltBytes);
      output_ += pg::Authentication{pg::Authentication::kMd5Password, md5_salt_}.Encode();
      TransitionTo(State::kAuthenticating);
      return Step::kContinue;
    case auth::AuthType::kScramSha256:
      output_ += pg::Authentication::Sasl({std::string(auth::kScramMechanism)}).Encode();
      TransitionTo(State::kAuthenticating);
      return Step::kContinue;
  }
  return Reject("28000", "unsupported authentication type");
}

ClientSession::Step ClientSession::HandleAuthFrame(const pg::Frame& frame, Environment& env) {
  CHECK(state_ == State::kAuthenticating);
  if (frame.type != 'p') {
    return Reject("08P01", Cat("expected a password response, got ",
                               pg::TypeName(pg::Direction::kFrontend, frame.type)));
  }
  if (config_.auth_type == auth::AuthType::kMd5) return HandlePassword(frame);
  if (!scram_first_seen_) {
    auto initial = pg::SaslInitialResponse::Decode(frame.payload);
    if (!initial.ok()) return Reject("08P01", "malformed SASLInitialResponse");
    if (initial->mechanism != auth::kScramMechanism) {
      return Reject("28000", "client selected an invalid SASL authentication mechanism");
    }
    scram_first_seen_ = true;
    // Unknown users and non-SCRAM secrets go through a mock exchange that fails at the proof,
    // as PostgreSQL does, so the reply never tells whether a user exists.
    auth::ScramVerifier verifier;
    if (secret_ != nullptr && secret_->kind == auth::UserSecret::Kind::kScram) {
      verifier = *secret_->verifier;
    } else {
      const bool plain = secret_ != nullptr && secret_->kind == auth::UserSecret::Kind::kPlain;
      verifier =
          auth::MakeVerifier(plain ? secret_->text : RandomString(env, 16),
                             RandomString(env, kScramSaltBytes), auth::kScramIterationsDefault);
    }
    scram_.emplace(std::move(verifier), RandomString(env, kScramNonceBytes));
    auto server_first = scram_->HandleClientFirst(initial->data.value_or(""));
    if (!server_first.ok()) {
      return Reject("08P01", Cat("malformed SCRAM message: ", server_first.status().message()));
    }
    output_ += pg::Authentication{pg::Authentication::kSaslContinue, *server_first}.Encode();
    return Step::kContinue;
  }
  return HandleSasl(frame);
}

ClientSession::Step ClientSession::HandleSasl(const pg::Frame& frame) {
  auto response = pg::SaslResponse::Decode(frame.payload);
  if (!response.ok()) return Reject("08P01", "malformed SASLResponse");
  auto server_final = scram_->HandleClientFinal(response->data);
  if (!server_final.ok()) {
    if (server_final.status().code() == absl::StatusCode::kUnauthenticated) return AuthFailed();
    return Reject("08P01", Cat("malformed SCRAM message: ", server_final.status().message()));
  }
  if (secret_ == nullptr || secret_->kind == auth::UserSecret::Kind::kMd5) return AuthFailed();
  output_ += pg::Authentication{pg::Authentication::kSaslFinal, *server_final}.Encode();
  scram_client_key_ = scram_->client_key();
  TransitionTo(State::kWaitingForServer);
  return Step::kAuthenticated;
}

ClientSession::Step ClientSession::HandlePassword(const pg::Frame& frame) {
  auto password = pg::PasswordMessage::Decode(frame.payload);
  if (!password.ok()) return Reject("08P01", "malformed PasswordMessage");
  if (secret_ == nullptr || secret_->kind == auth::UserSecret::Kind::kScram) return AuthFailed();
  const std::string expected = auth::Md5Response(user_, secret_->text, md5_salt_);
  if (!ConstantTimeEquals(expected, password->password)) return AuthFailed();
  TransitionTo(State::kWaitingForServer);
  return Step::kAuthenticated;
}

ClientSession::Step ClientSession::AuthFailed() {
  return Reject("28P01", Cat("password authentication failed for user \"", user_, "\""));
}

PoolKey ClientSession::MakePoolKey(NodeId node) const {
  PoolKey key{node, user_, database_, {}};
  for (const auto& [name, value] : startup_.parameters) {
    if (name == "user" || name == "database") continue;
    key.parameters.emplace_back(name, value);
  }
  std::sort(key.parameters.begin(), key.parameters.end());
  return key;
}

void ClientSession::Welcome(const pg::Parameters& parameters, int32_t pid, int32_t secret,
                            char status) {
  CHECK(state_ == State::kWaitingForServer);
  output_ += pg::Authentication{pg::Authentication::kOk, ""}.Encode();
  for (const auto& [name, value] : parameters) {
    output_ += pg::ParameterStatus{name, value}.Encode();
  }
  output_ += pg::BackendKeyData{pid, secret}.Encode();
  output_ += pg::ReadyForQuery{status}.Encode();
  TransitionTo(State::kReady);
}

void ClientSession::CheckInvariants() const {
  if (state_ == State::kAuthenticating) CHECK(config_.auth_type != auth::AuthType::kTrust);
  if (state_ == State::kReady || state_ == State::kWaitingForServer) CHECK(!user_.empty());
}

}  // namespace switchyard
