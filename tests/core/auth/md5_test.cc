// Tests of PostgreSQL's MD5 password scheme (core/auth/md5.h) against known values.
#include "core/auth/md5.h"

#include <gtest/gtest.h>

#include <string>

namespace switchyard::auth {
namespace {

TEST(Md5Test, HashMatchesPostgres) {
  // pg_authid for user "postgres", password "postgres".
  EXPECT_EQ(Md5Hash("postgres", "postgres"), "md53175bce1d3201d16594cebf9d7eb3f9d");
  // Made by PostgreSQL 15: CREATE ROLE md5_user PASSWORD 'postgres' (password_encryption md5).
  EXPECT_EQ(Md5Hash("md5_user", "postgres"), "md5807f0498c1247381d8b9f4676ca614a3");
}

TEST(Md5Test, ResponseFromPlaintextAndFromHashAgree) {
  const std::string salt("\x01\x02\x03\x04", 4);
  // md5(hex(md5("postgrespostgres")) + salt), computed independently with Python's hashlib.
  const std::string expected = "md568be9ed08db75f318087ab337aaea044";
  EXPECT_EQ(Md5Response("postgres", "postgres", salt), expected);
  EXPECT_EQ(Md5Response("postgres", "md53175bce1d3201d16594cebf9d7eb3f9d", salt), expected);
}

TEST(Md5Test, ResponseDependsOnUserPasswordAndSalt) {
  const std::string salt("\xde\xad\xbe\xef", 4);
  EXPECT_EQ(Md5Response("bob", "s3cr3t", salt), "md5df748308da84ad75e9d0127f47bcd726");
  EXPECT_NE(Md5Response("bob", "s3cr3t", std::string("\xde\xad\xbe\xee", 4)),
            Md5Response("bob", "s3cr3t", salt));
  EXPECT_NE(Md5Response("bob2", "s3cr3t", salt), Md5Response("bob", "s3cr3t", salt));
}

TEST(Md5Test, OnlyAWellFormedHashIsUsedAsTheInnerHash) {
  const std::string salt("\x01\x02\x03\x04", 4);
  // Uppercase hex is not an md5 hash to PostgreSQL: it is the plaintext password itself.
  const std::string upper = "md53175BCE1D3201D16594CEBF9D7EB3F9D";
  EXPECT_EQ(Md5Response("postgres", upper, salt),
            Md5Response("postgres", Md5Hash("postgres", upper), salt));
  EXPECT_NE(Md5Response("postgres", upper, salt), "md568be9ed08db75f318087ab337aaea044");
}

}  // namespace
}  // namespace switchyard::auth
