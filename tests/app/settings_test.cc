// `switchyard serve` settings: defaults, TOML overlay, and the validation users see as errors.
#include "app/settings.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
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

TEST(SettingsTest, PoolModeIsSessionOrTransaction) {
  ServeSettings settings = Trusting();
  auto plan = BuildServePlan(settings);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->proxy.pool_mode, PoolMode::kSession);
  settings.pool_mode = "transaction";
  plan = BuildServePlan(settings);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->proxy.pool_mode, PoolMode::kTransaction);
  settings.pool_mode = "statement";
  absl::StatusOr<ServePlan> refused = BuildServePlan(settings);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(Message(refused.status()).find("session or transaction"), std::string::npos);
}

TEST(SettingsTest, CaptureIsOffByDefaultAndItsSettingsAreChecked) {
  auto plan = BuildServePlan(Trusting());
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->capture.dir.empty());
  EXPECT_EQ(plan->proxy.capture.sample_per_million, kSampleScale);
  EXPECT_EQ(plan->proxy.capture.redact, Redact::kNone);

  ServeSettings settings = Trusting();
  settings.capture_redact = "everything";
  auto bad = BuildServePlan(settings);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(Message(bad.status()).find("--capture-redact (capture_redact)"), std::string::npos);
  for (const char* rate : {"1.5", "-0.1", "half", "nan"}) {
    settings = Trusting();
    settings.capture_sample_rate = rate;
    bad = BuildServePlan(settings);
    ASSERT_FALSE(bad.ok()) << rate;
    EXPECT_NE(Message(bad.status()).find("--capture-sample-rate"), std::string::npos);
  }
  settings = Trusting();
  settings.capture_file_bytes = 1000;
  EXPECT_FALSE(BuildServePlan(settings).ok()) << "a file must hold more than a header";
  settings = Trusting();
  settings.capture = "/proc/no-such-capture-dir";
  bad = BuildServePlan(settings);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(Message(bad.status()).find("--capture (capture)"), std::string::npos);
}

TEST(SettingsTest, CaptureSettingsFromTomlReachTheCoreAndTheWriter) {
  char base[] = "/tmp/settings_test.XXXXXX";
  const std::string dir = ::mkdtemp(base);
  ServeSettings settings = Trusting();
  ASSERT_TRUE(ApplyToml("capture = \"traces\"\ncapture_file_bytes = 1048576\n"
                        "capture_files_kept = 3\ncapture_sample_rate = \"0.25\"\n"
                        "capture_redact = \"rows\"\n",
                        "t.toml", dir, settings)
                  .ok());
  auto plan = BuildServePlan(settings);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->capture.dir, dir + "/traces") << "relative to the config file's directory";
  EXPECT_EQ(plan->capture.file_bytes, 1048576u);
  EXPECT_EQ(plan->capture.files_kept, 3);
  EXPECT_EQ(plan->proxy.capture.sample_per_million, 250'000u);
  EXPECT_EQ(plan->proxy.capture.redact, Redact::kRows);
  EXPECT_EQ(plan->capture.record_body_size_max, plan->proxy.capture.record_body_size_max);
  const trace::KeyValues expected = {
      {"sample_rate", "0.25"}, {"redact", "rows"}, {"file_bytes", "1048576"}, {"files_kept", "3"}};
  EXPECT_EQ(plan->capture.settings, expected);
  struct stat st {};
  ASSERT_EQ(::stat((dir + "/traces").c_str(), &st), 0) << "the directory is made";
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace switchyard::app
