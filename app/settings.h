// The settings of `switchyard serve`: defaults, the TOML file, command-line overrides, and the
// validation that turns them into what the driver and the core run with.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/proxy.h"
#include "io_real/address.h"
#include "io_real/capture_writer.h"

namespace switchyard::app {

// Every setting, under the same name on the command line (--pool-size) and in the TOML file
// (pool_size). Integers are kept wide here and range-checked by BuildServePlan.
struct ServeSettings {
  std::string listen = "127.0.0.1:6432";
  std::string primary;
  std::vector<std::string> replica;  // HOST:PORT each
  std::string users;                 // path of the users file
  std::string auth_type = "scram-sha-256";
  int64_t workers = 0;  // 0: one per CPU
  int64_t pool_size = 0;
  int64_t max_server_connections = 0;
  int64_t max_clients = 0;
  int64_t auth_timeout_ms = 0;
  int64_t connect_timeout_ms = 0;
  int64_t checkout_timeout_ms = 0;
  int64_t server_idle_timeout_ms = 0;
  int64_t client_idle_timeout_ms = 0;
  int64_t max_message_bytes = 0;
  int64_t drain_timeout_ms = 30'000;
  std::string pool_mode = "session";
  std::string read_your_writes = "lsn";
  std::string route_reads = "on";
  std::string function_volatility = "pg_proc";
  std::vector<std::string> no_route_users;
  std::vector<std::string> no_route_databases;
  std::string health_user;
  std::string health_database = "postgres";
  int64_t health_check_interval_ms = 0;
  int64_t health_check_timeout_ms = 0;
  int64_t health_check_failures = 0;
  std::string capture;  // directory; empty: no capture
  int64_t capture_file_bytes = int64_t{64} << 20;
  int64_t capture_files_kept = 16;
  std::string capture_sample_rate = "1.0";
  std::string capture_redact = "none";
};

// The defaults: ProxyConfig's, plus the driver's.
ServeSettings DefaultServeSettings();

// One row per setting, in the order --help and docs/configuration.md list them.
struct SettingInfo {
  std::string_view flag;  // without the leading "--"
  std::string_view value_name;
  std::string_view help;
  std::string ServeSettings::*text = nullptr;  // exactly one of these three is set
  int64_t ServeSettings::*number = nullptr;
  int64_t min = 0;  // for numbers
  int64_t max = 0;
  // A list: repeat the flag, or a TOML array of strings.
  std::vector<std::string> ServeSettings::*list = nullptr;
  std::string TomlKey() const;  // flag with '-' replaced by '_'
};
const std::vector<SettingInfo>& ServeSettingTable();

// Overlays the settings found in TOML `text` on `settings`. Unknown keys and values of the wrong
// type are errors that name the key. A relative `users` path is taken relative to `base_dir`
// (the config file's directory). `source` names the file in messages.
absl::Status ApplyToml(std::string_view text, std::string_view source, std::string_view base_dir,
                       ServeSettings& settings);
absl::Status ApplyTomlFile(const std::string& path, ServeSettings& settings);

// What `serve` runs with, checked: names resolved, users file read and parsed.
struct ServePlan {
  ProxyConfig proxy;
  io_real::SocketAddress listen;
  std::vector<io_real::SocketAddress> nodes;  // index 0: the primary
  int workers = 1;
  int64_t drain_timeout_ms = 0;
  io_real::CaptureConfig capture;  // dir empty: capture not available
};
absl::StatusOr<ServePlan> BuildServePlan(const ServeSettings& settings);

}  // namespace switchyard::app
