// The MongoDB store in the Store conformance suite.
//
// The suite runs against a real MongoDB only when NOEMA_TEST_MONGO_URI is set, e.g.
//   NOEMA_TEST_MONGO_URI='mongodb://localhost:27017/?replicaSet=rs0'
// (a replica set: a one-node one is enough, see docs/operations.md). Each test then gets
// a database of its own, named after its temporary directory, which is dropped when the
// test ends. When the variable is unset, the MongoDB parameter of every test is skipped
// with a message saying so.
#pragma once

#include <string>

namespace noema::conformance {

inline constexpr char kMongoUriVariable[] = "NOEMA_TEST_MONGO_URI";

// The URI of a fresh database for the test whose temporary directory is `directory`,
// under NOEMA_TEST_MONGO_URI; empty when the variable is unset.
std::string MongoTestDatabaseUri(const std::string& directory);

// Why the MongoDB tests did not run.
std::string MongoSkipMessage();

// Drops the database of `uri` when it is a MongoDB URI; does nothing otherwise.
void DropMongoTestDatabase(const std::string& uri);

}  // namespace noema::conformance
