#include "noema/money.h"

#include <gtest/gtest.h>

namespace noema {
namespace {

TEST(MoneyTest, ParsesAndPrints) {
  auto m = Money::Parse("12.5");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->ToString(), "12.50");
  EXPECT_EQ(m->units(), 1'250'000'000);
}

}  // namespace
}  // namespace noema
