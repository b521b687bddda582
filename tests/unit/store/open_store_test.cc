// OpenStore's URI handling: what may be printed of a URI, and a scheme it does not know.
#include <gtest/gtest.h>

#include "noema/store.h"

namespace noema {
namespace {

TEST(OpenStoreTest, APasswordInTheUriIsNeverPrinted) {
  EXPECT_EQ(RedactedStoreUri("mongodb://noema:s3cret@db1,db2/noema?replicaSet=rs0"),
            "mongodb://noema:***@db1,db2/noema?replicaSet=rs0");
  EXPECT_EQ(RedactedStoreUri("mongodb+srv://noema:p%40ss@cluster.example/noema"),
            "mongodb+srv://noema:***@cluster.example/noema");
  // Nothing to hide: kept as given.
  EXPECT_EQ(RedactedStoreUri("mongodb://noema@db1/noema"), "mongodb://noema@db1/noema");
  EXPECT_EQ(RedactedStoreUri("mongodb://db1:27017/noema"), "mongodb://db1:27017/noema");
  EXPECT_EQ(RedactedStoreUri("sqlite:./noema-data/noema.db"), "sqlite:./noema-data/noema.db");
  EXPECT_EQ(RedactedStoreUri("mongodb://db1/noema?x=a@b"), "mongodb://db1/noema?x=a@b");
  // A mistyped scheme is refused without echoing the password.
  auto typo = OpenStore("mongo://noema:s3cret@db1/noema");
  EXPECT_EQ(typo.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(typo.status().message().find("s3cret"), std::string::npos) << typo.status().ToString();
}

}  // namespace
}  // namespace noema
