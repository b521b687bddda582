#include "noema/status.h"

#include <gtest/gtest.h>

namespace noema {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return Status::InvalidArgument("odd", "x");
  return x / 2;
}

Result<int> Quarter(int x) {
  NOEMA_ASSIGN_OR_RETURN(int half, Half(x));
  NOEMA_ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

Status CheckEven(int x) {
  NOEMA_RETURN_IF_ERROR(Half(x).status());
  return Status::Ok();
}

TEST(StatusTest, OkByDefault) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(StatusTest, CarriesCodeMessageAndField) {
  Status s = Status::InvalidArgument("expected string, got int", "address");
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_EQ(s.ToString(), "InvalidArgument: address: expected string, got int");
  EXPECT_EQ(s.WithFieldPrefix("wallets.0").field(), "wallets.0.address");
  EXPECT_EQ(Status::NotFound("x").WithFieldPrefix("body").field(), "body");
}

TEST(StatusTest, ResultPropagatesErrors) {
  EXPECT_EQ(*Quarter(8), 2);
  auto r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().field(), "x");
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_FALSE(CheckEven(3).ok());
}

}  // namespace
}  // namespace noema
