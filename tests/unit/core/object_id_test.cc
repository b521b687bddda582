#include "noema/object_id.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <string>

namespace noema {
namespace {

TEST(ObjectIdTest, GeneratesDistinctIds) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) seen.insert(ObjectId::Generate().ToHex());
  EXPECT_EQ(seen.size(), 1000u);
}

// A forked process (the import's crash test forks) makes ids of its own: ids carry the
// process's random bytes, and a child that kept its parent's would repeat the parent's
// next ids.
TEST(ObjectIdTest, AForkedChildDoesNotRepeatItsParentsIds) {
  ObjectId::Generate();  // the parent's context exists before the fork
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::string hex = ObjectId::Generate().ToHex();
    ssize_t written = write(fds[1], hex.data(), hex.size());
    _exit(written == static_cast<ssize_t>(hex.size()) ? 0 : 1);
  }
  close(fds[1]);
  std::string parent_next = ObjectId::Generate().ToHex();
  char buffer[24];
  ASSERT_EQ(read(fds[0], buffer, sizeof buffer), 24);
  close(fds[0]);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  std::string child_first(buffer, 24);
  // Bytes 4..8 of an ObjectId are the process's random value.
  EXPECT_NE(child_first.substr(8, 10), parent_next.substr(8, 10));
}

TEST(ObjectIdTest, ParsesAndPrintsHex) {
  auto id = ObjectId::Parse("507f1f77bcf86cd799439011");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->ToHex(), "507f1f77bcf86cd799439011");
  EXPECT_EQ(ObjectId::Parse("507F1F77BCF86CD799439011")->ToHex(), "507f1f77bcf86cd799439011");
}

TEST(ObjectIdTest, RefusesBadHexNamingTheField) {
  for (const char* bad :
       {"", "507f1f77bcf86cd79943901", "507f1f77bcf86cd7994390111", "507f1f77bcf86cd79943901g"}) {
    auto id = ObjectId::Parse(bad, "masterAccountId");
    ASSERT_FALSE(id.ok()) << bad;
    EXPECT_EQ(id.status().field(), "masterAccountId");
  }
}

TEST(ObjectIdTest, GenerateAtCarriesTheTime) {
  auto t = Timestamp::FromMillis(1746619200000);
  EXPECT_EQ(ObjectId::GenerateAt(t).CreationTime(), t);
}

TEST(ObjectIdTest, OrdersByBytes) {
  auto a = *ObjectId::Parse("000000000000000000000001");
  auto b = *ObjectId::Parse("000000000000000000000002");
  EXPECT_LT(a, b);
  EXPECT_EQ(a, *ObjectId::Parse("000000000000000000000001"));
}

}  // namespace
}  // namespace noema
