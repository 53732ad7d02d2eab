// `serve` settings: the table shared by the command line, the TOML file and the docs, and the
// validation into a ServePlan.
#include "app/settings.h"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "core/auth/users.h"
#include "core/base/strings.h"
#include "toml++/toml.h"

namespace switchyard::app {
namespace {

// PostgreSQL's own timeout settings stop at INT_MAX milliseconds (about 24.8 days).
constexpr int64_t kTimeoutMsMax = INT_MAX;
// The wire protocol's length field is 32 bits, and PostgreSQL caps a message at 1 GiB.
constexpr int64_t kMessageBytesMax = int64_t{1} << 30;
// Large enough for the startup packet and any ordinary message.
constexpr int64_t kMessageBytesMin = 16 * 1024;
// A users file is a list of names and hashes; anything bigger is a mistake.
constexpr int64_t kUsersFileBytesMax = 16 << 20;
// A capture file holds at least a header and a few records; at most 1 TiB.
constexpr int64_t kCaptureFileBytesMin = 64 << 10;
constexpr int64_t kCaptureFileBytesMax = int64_t{1} << 40;

using Info = SettingInfo;

std::string FlagAndKey(const SettingInfo& info) {
  return Cat("--", info.flag, " (", info.TomlKey(), ")");
}

absl::StatusOr<std::string> ReadUsersFile(const std::string& path) {
  std::error_code error;
  const auto size = std::filesystem::file_size(path, error);
  if (error) {
    return absl::InvalidArgumentError(
        Cat("cannot read users file '", path, "': ", error.message()));
  }
  if (size > static_cast<uintmax_t>(kUsersFileBytesMax)) {
    return absl::InvalidArgumentError(
        Cat("users file '", path, "' is larger than ", kUsersFileBytesMax, " bytes"));
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in.good() && !in.eof()) {
    return absl::InvalidArgumentError(Cat("cannot read users file '", path, "'"));
  }
  return text.str();
}

absl::Status CheckRanges(const ServeSettings& settings) {
  for (const SettingInfo& info : ServeSettingTable()) {
    if (info.number == nullptr) continue;
    const int64_t value = settings.*info.number;
    if (value < info.min || value > info.max) {
      return absl::InvalidArgumentError(
          Cat(FlagAndKey(info), " must be between ", info.min, " and ", info.max, ", got ", value));
    }
  }
  return absl::OkStatus();
}

absl::Status LoadAuth(const ServeSettings& settings, ProxyConfig& proxy) {
  absl::StatusOr<auth::AuthType> type = auth::ParseAuthType(settings.auth_type);
  if (!type.ok()) {
    return absl::InvalidArgumentError(
        Cat("--auth-type (auth_type) must be trust, md5 or scram-sha-256, got '",
            settings.auth_type, "'"));
  }
  proxy.auth_type = *type;
  if (settings.users.empty()) {
    if (*type != auth::AuthType::kTrust) {
      return absl::InvalidArgumentError(
          Cat("--auth-type ", settings.auth_type,
              " needs a users file: give --users FILE (or users = \"FILE\" in the config file), "
              "or use --auth-type trust"));
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> text = ReadUsersFile(settings.users);
  if (!text.ok()) return text.status();
  absl::StatusOr<auth::Users> users = auth::ParseUsersFile(*text);
  if (!users.ok()) {
    return absl::InvalidArgumentError(
        Cat("users file '", settings.users, "': ", users.status().message()));
  }
  proxy.users = *std::move(users);
  return absl::OkStatus();
}

// A setting that takes one of two words: true for `first`, false for `second`, else the error
// a user sees ("--flag (key) must be first or second, got 'value'").
absl::StatusOr<bool> OneOfTwo(std::string_view flag, std::string_view key, const std::string& value,
                              std::string_view first, std::string_view second) {
  if (value == first) return true;
  if (value == second) return false;
  return absl::InvalidArgumentError(
      Cat("--", flag, " (", key, ") must be ", first, " or ", second, ", got '", value, "'"));
}

absl::Status LoadRouting(const ServeSettings& settings, size_t nodes, ProxyConfig& proxy) {
  proxy.node_count = nodes;
  absl::StatusOr<bool> session =
      OneOfTwo("pool-mode", "pool_mode", settings.pool_mode, "session", "transaction");
  absl::StatusOr<bool> lsn =
      OneOfTwo("read-your-writes", "read_your_writes", settings.read_your_writes, "lsn", "none");
  absl::StatusOr<bool> route =
      OneOfTwo("route-reads", "route_reads", settings.route_reads, "on", "off");
  absl::StatusOr<bool> pg_proc = OneOfTwo("function-volatility", "function_volatility",
                                          settings.function_volatility, "pg_proc", "builtin");
  for (const absl::StatusOr<bool>* choice : {&session, &lsn, &route, &pg_proc}) {
    if (!choice->ok()) return choice->status();
  }
  proxy.pool_mode = *session ? PoolMode::kSession : PoolMode::kTransaction;
  proxy.read_your_writes = *lsn ? ReadYourWrites::kLsn : ReadYourWrites::kNone;
  proxy.route_reads = *route;
  proxy.load_functions = *pg_proc;
  proxy.no_route_users = settings.no_route_users;
  proxy.no_route_databases = settings.no_route_databases;
  proxy.health_user = settings.health_user;
  proxy.health_database = settings.health_database;
  proxy.health_check_interval_ms = settings.health_check_interval_ms;
  proxy.health_check_timeout_ms = settings.health_check_timeout_ms;
  proxy.health_check_failures_to_down = static_cast<int>(settings.health_check_failures);
  if (nodes > 1 && proxy.health_user.empty()) {
    return absl::InvalidArgumentError(
        "with --replica, give --health-user (health_user): roles and lag come from its polls");
  }
  if (!proxy.health_user.empty() && proxy.auth_type != auth::AuthType::kTrust &&
      !proxy.users.contains(proxy.health_user)) {
    return absl::InvalidArgumentError(
        Cat("--health-user ", proxy.health_user, " has no entry in the users file (its password)"));
  }
  return absl::OkStatus();
}

absl::Status LoadCapture(const ServeSettings& settings, ServePlan& plan) {
  std::optional<Redact> redact = ParseRedact(settings.capture_redact);
  if (!redact) {
    return absl::InvalidArgumentError(
        Cat("--capture-redact (capture_redact) must be none, rows or all-values, got '",
            settings.capture_redact, "'"));
  }
  double rate = -1;
  if (!absl::SimpleAtod(settings.capture_sample_rate, &rate) || !(rate >= 0 && rate <= 1)) {
    return absl::InvalidArgumentError(
        Cat("--capture-sample-rate (capture_sample_rate) must be a fraction from 0 to 1, got '",
            settings.capture_sample_rate, "'"));
  }
  CaptureOptions& options = plan.proxy.capture;
  options.redact = *redact;
  options.sample_per_million = static_cast<uint32_t>(std::llround(rate * kSampleScale));
  // Room for the largest message the proxy accepts, plus the record's metadata.
  options.record_body_size_max = static_cast<uint32_t>(
      std::min(trace::kRecordBodySizeMax,
               std::max(trace::kRecordBodySizeMaxDefault, plan.proxy.message_size_max + 4096)));
  if (settings.capture.empty()) return absl::OkStatus();
  std::error_code error;
  if (!std::filesystem::exists(settings.capture, error) &&
      std::filesystem::create_directories(settings.capture, error)) {
    // Only its owner may list the captures (the files themselves are 0600).
    std::filesystem::permissions(settings.capture, std::filesystem::perms::owner_all, error);
  }
  if (error || !std::filesystem::is_directory(settings.capture) ||
      ::access(settings.capture.c_str(), W_OK | X_OK) != 0) {
    return absl::InvalidArgumentError(Cat("--capture (capture): '", settings.capture,
                                          "' is not a directory this process can write"));
  }
  io_real::CaptureConfig& capture = plan.capture;
  capture.dir = settings.capture;
  capture.file_bytes = static_cast<uint64_t>(settings.capture_file_bytes);
  capture.files_kept = static_cast<int>(settings.capture_files_kept);
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  capture.proxy_id = host;
  capture.settings = {{"sample_rate", settings.capture_sample_rate},
                      {"redact", std::string(RedactName(*redact))},
                      {"file_bytes", Cat(settings.capture_file_bytes)},
                      {"files_kept", Cat(settings.capture_files_kept)}};
  capture.record_body_size_max = options.record_body_size_max;  // declared in every header
  return absl::OkStatus();
}

}  // namespace

std::string SettingInfo::TomlKey() const {
  std::string key(flag);
  std::replace(key.begin(), key.end(), '-', '_');
  return key;
}

ServeSettings DefaultServeSettings() {
  const ProxyConfig proxy;
  ServeSettings settings;
  settings.pool_size = proxy.pool_size;
  settings.max_server_connections = proxy.max_server_connections;
  settings.max_clients = proxy.max_clients;
  settings.auth_timeout_ms = proxy.auth_timeout_ms;
  settings.connect_timeout_ms = proxy.connect_timeout_ms;
  settings.checkout_timeout_ms = proxy.checkout_timeout_ms;
  settings.server_idle_timeout_ms = proxy.server_idle_timeout_ms;
  settings.client_idle_timeout_ms = proxy.client_idle_timeout_ms;
  settings.max_message_bytes = static_cast<int64_t>(proxy.message_size_max);
  settings.health_check_interval_ms = proxy.health_check_interval_ms;
  settings.health_check_timeout_ms = proxy.health_check_timeout_ms;
  settings.health_check_failures = proxy.health_check_failures_to_down;
  return settings;
}

const std::vector<SettingInfo>& ServeSettingTable() {
  using S = ServeSettings;
  static const std::vector<SettingInfo> table = {
      {"listen", "HOST:PORT", "Address to accept clients on (port 0: any free port)", &S::listen},
      {"primary", "HOST:PORT", "The PostgreSQL primary server (required)", &S::primary},
      {"replica", "HOST:PORT",
       "A streaming replica for reads; repeat for more (TOML: an array). Roles are detected: a "
       "promoted replica takes the writes",
       nullptr, nullptr, 0, 0, &S::replica},
      {"users", "FILE",
       "Users file: lines of \"user\" \"password\", the password plain, md5 or SCRAM-SHA-256",
       &S::users},
      {"auth-type", "TYPE", "How clients log in: trust, md5 or scram-sha-256", &S::auth_type},
      {"workers", "N", "Worker threads running sessions (0: one per CPU)", nullptr, &S::workers, 0,
       1024},
      {"pool-size", "N", "Server connections per pool (node, user, database, parameters)", nullptr,
       &S::pool_size, 1, 100'000},
      {"max-server-connections", "N", "Server connections over all pools", nullptr,
       &S::max_server_connections, 1, 1'000'000},
      {"max-clients", "N", "Client connections; above it clients are refused with 53300", nullptr,
       &S::max_clients, 1, 10'000'000},
      {"auth-timeout-ms", "MS", "A client must finish startup and login within this", nullptr,
       &S::auth_timeout_ms, 1, kTimeoutMsMax},
      {"connect-timeout-ms", "MS", "Connecting and logging in to a server must finish within this",
       nullptr, &S::connect_timeout_ms, 1, kTimeoutMsMax},
      {"checkout-timeout-ms", "MS",
       "A client waits this long for a pooled server connection, then gets 53300", nullptr,
       &S::checkout_timeout_ms, 1, kTimeoutMsMax},
      {"server-idle-timeout-ms", "MS", "Idle pooled server connections are closed after this",
       nullptr, &S::server_idle_timeout_ms, 1, kTimeoutMsMax},
      {"client-idle-timeout-ms", "MS", "Idle clients are disconnected after this (0: never)",
       nullptr, &S::client_idle_timeout_ms, 0, kTimeoutMsMax},
      {"max-message-bytes", "BYTES", "Largest protocol message accepted from a client or server",
       nullptr, &S::max_message_bytes, kMessageBytesMin, kMessageBytesMax},
      {"drain-timeout-ms", "MS",
       "On SIGTERM/SIGINT, sessions get this long to finish before they are cut (0: cut at once)",
       nullptr, &S::drain_timeout_ms, 0, kTimeoutMsMax},
      {"pool-mode", "MODE",
       "session: a client keeps its server connections for its whole session; transaction: "
       "only for a transaction (or one statement outside one), its SETs and prepared "
       "statements replayed on the next connection",
       &S::pool_mode},
      {"read-your-writes", "MODE",
       "lsn: after a client's write, its reads wait for a replica that has replayed it; none: "
       "any healthy replica",
       &S::read_your_writes},
      {"route-reads", "on|off", "Send read-only statements to replicas", &S::route_reads},
      {"function-volatility", "SOURCE",
       "pg_proc: read each database's function volatility from pg_proc (on its first routed "
       "session, and again after CREATE/ALTER/DROP FUNCTION through the proxy); builtin: only "
       "PostgreSQL's built-in functions are known, others count as volatile",
       &S::function_volatility},
      {"no-route-users", "USER",
       "Users whose statements all go to the primary; repeat for more (TOML: an array)", nullptr,
       nullptr, 0, 0, &S::no_route_users},
      {"no-route-databases", "DB",
       "Databases whose statements all go to the primary; repeat for more (TOML: an array)",
       nullptr, nullptr, 0, 0, &S::no_route_databases},
      {"health-user", "USER",
       "The health checker's login (needed with replicas); its password comes from the users "
       "file",
       &S::health_user},
      {"health-database", "DB", "The database the health checker connects to", &S::health_database},
      {"health-check-interval-ms", "MS", "How often every node is polled", nullptr,
       &S::health_check_interval_ms, 10, kTimeoutMsMax},
      {"health-check-timeout-ms", "MS", "A poll (connect, login, query) that takes longer fails",
       nullptr, &S::health_check_timeout_ms, 10, kTimeoutMsMax},
      {"health-check-failures", "N", "Failed polls in a row after which a node is down", nullptr,
       &S::health_check_failures, 1, 1000},
      {"capture", "DIR",
       "Record the traffic into trace files in DIR (made if missing); SIGUSR1 switches capture "
       "off and on",
       &S::capture},
      {"capture-file-bytes", "BYTES",
       "A capture file is closed, and the next one begun, once it holds this much", nullptr,
       &S::capture_file_bytes, kCaptureFileBytesMin, kCaptureFileBytesMax},
      {"capture-files-kept", "N", "Capture files kept in the directory; older ones are removed",
       nullptr, &S::capture_files_kept, 1, 1'000'000},
      {"capture-sample-rate", "FRACTION",
       "The fraction of client sessions captured, 0 to 1 (chosen by a hash of the session id)",
       &S::capture_sample_rate},
      {"capture-redact", "MODE",
       "none; rows (DataRow and COPY data emptied); all-values (also parameters, literals and "
       "error text)",
       &S::capture_redact},
  };
  return table;
}

absl::Status ApplyToml(std::string_view text, std::string_view source, std::string_view base_dir,
                       ServeSettings& settings) {
  toml::table table;
  try {
    table = toml::parse(text, source);
  } catch (const toml::parse_error& error) {
    return absl::InvalidArgumentError(
        Cat(source, ":", error.source().begin.line, ": ", error.description()));
  }
  std::set<std::string, std::less<>> known;
  for (const SettingInfo& info : ServeSettingTable()) {
    const std::string key = info.TomlKey();
    known.insert(key);
    const toml::node* node = table.get(key);
    if (node == nullptr) continue;
    if (info.list != nullptr) {
      const toml::array* array = node->as_array();
      std::vector<std::string> values;
      if (node->is_string()) {
        values.push_back(**node->as_string());
      } else if (array != nullptr) {
        for (const toml::node& item : *array) {
          if (!item.is_string()) {
            return absl::InvalidArgumentError(
                Cat(source, ": ", key, " must be an array of strings"));
          }
          values.push_back(**item.as_string());
        }
      } else {
        return absl::InvalidArgumentError(Cat(source, ": ", key, " must be an array of strings"));
      }
      settings.*info.list = std::move(values);
    } else if (info.text != nullptr) {
      if (!node->is_string()) {
        return absl::InvalidArgumentError(Cat(source, ": ", key, " must be a string"));
      }
      std::string value = **node->as_string();
      if ((info.text == &ServeSettings::users || info.text == &ServeSettings::capture) &&
          !value.empty() && std::filesystem::path(value).is_relative() && !base_dir.empty()) {
        value = (std::filesystem::path(base_dir) / value).string();
      }
      settings.*info.text = std::move(value);
    } else {
      if (!node->is_integer()) {
        return absl::InvalidArgumentError(Cat(source, ": ", key, " must be an integer"));
      }
      settings.*info.number = **node->as_integer();
    }
  }
  for (const auto& [key, node] : table) {
    if (!known.contains(key.str())) {
      return absl::InvalidArgumentError(Cat(source, ":", key.source().begin.line,
                                            ": unknown setting '", key.str(),
                                            "' (see switchyard serve --help)"));
    }
  }
  return absl::OkStatus();
}

absl::Status ApplyTomlFile(const std::string& path, ServeSettings& settings) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(Cat("cannot read config file '", path, "'"));
  std::ostringstream text;
  text << in.rdbuf();
  const std::string base_dir = std::filesystem::path(path).parent_path().string();
  return ApplyToml(text.str(), path, base_dir, settings);
}

absl::StatusOr<ServePlan> BuildServePlan(const ServeSettings& settings) {
  if (absl::Status status = CheckRanges(settings); !status.ok()) return status;
  if (settings.primary.empty()) {
    return absl::InvalidArgumentError(
        "--primary (primary) is required: the PostgreSQL server to proxy, as HOST:PORT");
  }
  ServePlan plan;
  absl::StatusOr<io_real::SocketAddress> listen = io_real::Resolve(settings.listen, true);
  if (!listen.ok()) {
    return absl::InvalidArgumentError(Cat("--listen: ", listen.status().message()));
  }
  plan.listen = *std::move(listen);
  absl::StatusOr<io_real::SocketAddress> primary = io_real::Resolve(settings.primary, false);
  if (!primary.ok()) {
    return absl::InvalidArgumentError(Cat("--primary: ", primary.status().message()));
  }
  plan.nodes.push_back(*std::move(primary));
  for (const std::string& replica : settings.replica) {
    absl::StatusOr<io_real::SocketAddress> address = io_real::Resolve(replica, false);
    if (!address.ok()) {
      return absl::InvalidArgumentError(
          Cat("--replica ", replica, ": ", address.status().message()));
    }
    plan.nodes.push_back(*std::move(address));
  }
  ProxyConfig& proxy = plan.proxy;
  if (absl::Status status = LoadAuth(settings, proxy); !status.ok()) return status;
  if (absl::Status status = LoadRouting(settings, plan.nodes.size(), proxy); !status.ok()) {
    return status;
  }
  proxy.pool_size = static_cast<int>(settings.pool_size);
  proxy.max_server_connections = static_cast<int>(settings.max_server_connections);
  proxy.max_clients = static_cast<int>(settings.max_clients);
  proxy.auth_timeout_ms = settings.auth_timeout_ms;
  proxy.connect_timeout_ms = settings.connect_timeout_ms;
  proxy.checkout_timeout_ms = settings.checkout_timeout_ms;
  proxy.server_idle_timeout_ms = settings.server_idle_timeout_ms;
  proxy.client_idle_timeout_ms = settings.client_idle_timeout_ms;
  proxy.message_size_max = static_cast<size_t>(settings.max_message_bytes);
  proxy.full_checks = false;
  plan.workers = settings.workers > 0
                     ? static_cast<int>(settings.workers)
                     : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  plan.drain_timeout_ms = settings.drain_timeout_ms;
  if (absl::Status status = LoadCapture(settings, plan); !status.ok()) return status;
  return plan;
}

}  // namespace switchyard::app
