// The replay's login state machine (see login.h).
#include "replay/login.h"

#include <utility>

#include "absl/strings/str_format.h"
#include "core/auth/md5.h"
#include "replay/statements.h"

namespace switchyard::replay {

LoginClient::LoginClient(LoginSettings settings, std::string scram_nonce)
    : settings_(std::move(settings)), scram_nonce_(std::move(scram_nonce)) {}

LoginClient::~LoginClient() = default;

std::string LoginClient::StartupPacket() const {
  pg::StartupMessage startup;
  startup.parameters.emplace_back("user", settings_.user);
  startup.parameters.emplace_back("database", settings_.database);
  for (const auto& [name, value] : settings_.parameters) {
    if (name != "user" && name != "database") startup.parameters.emplace_back(name, value);
  }
  return startup.Encode();
}

absl::StatusOr<std::string> LoginClient::OnMessage(std::string_view message) {
  if (done_) return absl::FailedPreconditionError("login already finished");
  if (message.empty()) return absl::InvalidArgumentError("empty message during login");
  std::string_view payload = Payload(message);
  switch (message[0]) {
    case 'R':
      return OnAuthentication(payload);
    case 'E': {
      auto fields = pg::ErrorFields::Decode('E', payload);
      if (!fields.ok()) return fields.status();
      sqlstate_ = std::string(fields->sqlstate());
      return absl::PermissionDeniedError(absl::StrFormat(
          "login refused: %s %s: %s", fields->severity(), fields->sqlstate(), fields->Field('M')));
    }
    case 'Z':
      if (!authenticated_)
        return absl::InvalidArgumentError("ReadyForQuery before AuthenticationOk");
      done_ = true;
      return std::string();
    case 'K': {
      auto key = pg::BackendKeyData::Decode(payload);
      if (!key.ok()) return key.status();
      key_ = *key;
      return std::string();
    }
    case 'S':
    case 'N':
    case 'v':
      return std::string();  // parameters, notices, protocol negotiation: nothing to answer
    default:
      return absl::InvalidArgumentError(absl::StrFormat(
          "unexpected %s during login", pg::TypeName(pg::Direction::kBackend, message[0])));
  }
}

absl::StatusOr<std::string> LoginClient::OnAuthentication(std::string_view payload) {
  auto request = pg::Authentication::Decode(payload);
  if (!request.ok()) return request.status();
  switch (request->code) {
    case pg::Authentication::kOk:
      authenticated_ = true;
      return std::string();
    case pg::Authentication::kCleartextPassword: {
      auto password = Password();
      if (!password.ok()) return password.status();
      return pg::PasswordMessage{.password = *password}.Encode();
    }
    case pg::Authentication::kMd5Password: {
      auto password = Password();
      if (!password.ok()) return password.status();
      if (request->data.size() != 4) return absl::InvalidArgumentError("MD5 salt is not 4 bytes");
      std::string response = auth::Md5Response(settings_.user, *password, request->data);
      return pg::PasswordMessage{.password = response}.Encode();
    }
    case pg::Authentication::kSasl:
      return StartSasl(*request);
    case pg::Authentication::kSaslContinue: {
      if (scram_ == nullptr) return absl::InvalidArgumentError("SASLContinue without SASL");
      auto final_message = scram_->HandleServerFirst(request->data);
      if (!final_message.ok()) return final_message.status();
      return pg::SaslResponse{.data = *final_message}.Encode();
    }
    case pg::Authentication::kSaslFinal: {
      if (scram_ == nullptr) return absl::InvalidArgumentError("SASLFinal without SASL");
      if (absl::Status status = scram_->HandleServerFinal(request->data); !status.ok()) {
        return status;
      }
      return std::string();
    }
    default:
      return absl::UnimplementedError(absl::StrFormat(
          "the target asks for authentication method %d; replay speaks trust, password, md5 and "
          "SCRAM-SHA-256",
          request->code));
  }
}

absl::StatusOr<std::string> LoginClient::StartSasl(const pg::Authentication& request) {
  bool offered = false;
  for (const std::string& mechanism : request.SaslMechanisms()) {
    offered = offered || mechanism == auth::kScramMechanism;
  }
  if (!offered) {
    return absl::UnimplementedError("the target offers no SASL mechanism replay speaks");
  }
  auto password = Password();
  if (!password.ok()) return password.status();
  scram_ = std::make_unique<auth::ScramClient>(*password, scram_nonce_);
  return pg::SaslInitialResponse{.mechanism = std::string(auth::kScramMechanism),
                                 .data = scram_->ClientFirst()}
      .Encode();
}

absl::StatusOr<std::string> LoginClient::Password() const {
  if (!settings_.password.has_value()) {
    return absl::FailedPreconditionError(
        "the target asks for a password: give one with --password-file");
  }
  return *settings_.password;
}

}  // namespace switchyard::replay
