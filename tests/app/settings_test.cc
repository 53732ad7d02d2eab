// `switchyard serve` settings: defaults, TOML overlay, and the validation users see as errors.
#include "app/settings.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace switchyard::app {
namespace {

std::string Message(const absl::Status& status) {
  return std::string(status.message().data(), status.message().size());
}

ServeSettings Trusting() {
  ServeSettings settings = DefaultServeSettings();
  settings.primary = "127.0.0.1:5432";
  settings.auth_type = "trust";
  return settings;
}

TEST(SettingsTest, DefaultsMatchTheDocumentedOnes) {
  auto plan = BuildServePlan(Trusting());
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->proxy.pool_size, 20);
  EXPECT_EQ(plan->proxy.max_server_connections, 100);
  EXPECT_EQ(plan->proxy.max_clients, 1000);
  EXPECT_EQ(plan->proxy.auth_type, auth::AuthType::kTrust);
  EXPECT_EQ(plan->nodes.size(), 1u);
  EXPECT_GE(plan->workers, 1);
  EXPECT_EQ(DefaultServeSettings().auth_type, "scram-sha-256");
}

TEST(SettingsTest, TomlOverlaysAndNamesBadKeys) {
  ServeSettings settings = Trusting();
  ASSERT_TRUE(ApplyToml("pool_size = 5\nauth_timeout_ms = 1500\n", "t.toml", ".", settings).ok());
  EXPECT_EQ(settings.pool_size, 5);
  EXPECT_EQ(settings.auth_timeout_ms, 1500);
  auto plan = BuildServePlan(settings);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->proxy.pool_size, 5);
  EXPECT_EQ(plan->proxy.auth_timeout_ms, 1500);

  absl::Status unknown = ApplyToml("pool_sise = 5\n", "t.toml", ".", settings);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(Message(unknown).find("pool_sise"), std::string::npos);
  absl::Status wrong_type = ApplyToml("pool_size = \"five\"\n", "t.toml", ".", settings);
  ASSERT_FALSE(wrong_type.ok());
  EXPECT_NE(Message(wrong_type).find("pool_size"), std::string::npos);
  EXPECT_FALSE(ApplyToml("this is not toml", "t.toml", ".", settings).ok());
}

TEST(SettingsTest, PasswordAuthNeedsAUsersFile) {
  ServeSettings settings = Trusting();
  settings.auth_type = "md5";
  EXPECT_FALSE(BuildServePlan(settings).ok());
  settings.auth_type = "kerberos";
  EXPECT_FALSE(BuildServePlan(settings).ok());
}

TEST(SettingsTest, UsersFileIsReadAndParsed) {
  const std::string path = ::testing::TempDir() + "/switchyard-users.txt";
  {
    std::ofstream out(path);
    out << "\"alice\" \"secret\"\n";
  }
  ServeSettings settings = Trusting();
  settings.auth_type = "scram-sha-256";
  settings.users = path;
  auto plan = BuildServePlan(settings);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->proxy.users.count("alice"), 1u);
  {
    std::ofstream out(path);
    out << "alice secret-without-quotes\n";
  }
  EXPECT_FALSE(BuildServePlan(settings).ok());
  std::remove(path.c_str());
}

TEST(SettingsTest, OutOfRangeAndBadAddressesAreRefused) {
  ServeSettings settings = Trusting();
  settings.pool_size = -1;
  EXPECT_FALSE(BuildServePlan(settings).ok());
  settings = Trusting();
  settings.listen = "not-an-address";
  EXPECT_FALSE(BuildServePlan(settings).ok());
  settings = Trusting();
  settings.primary = "";
  EXPECT_FALSE(BuildServePlan(settings).ok());
}

}  // namespace
}  // namespace switchyard::app
