// The one place where a libmongoc error becomes a noema Status (after mongo-cxx-driver's
// exception.hh: a C library's errors are translated in exactly one function).
//
//   duplicate key (11000, 11001, 12582)            AlreadyExists naming the unique index,
//                                                   with the same text as the SQLite store
//   network, server selection, not primary,        Unavailable: retry later (the driver
//   stepdown, shutdown, write conflict, any error   has already retried once where the
//   labelled TransientTransactionError or           operation is safe to retry)
//   RetryableWriteError, bad credentials
//   document validation failure (121), a document  InvalidArgument
//   libmongoc refuses to send
//   a missing namespace (26)                        FailedPrecondition: run `noema init`
//   transaction numbers on a standalone (20),       FailedPrecondition naming the fix
//   a server older than the wire versions noema
//   needs
//   a document or key too large                     ResourceExhausted
//   anything else                                   Internal, with libmongoc's message
//
// Thread-safety: pure functions.
#pragma once

#include <mongoc/mongoc.h>

#include <optional>
#include <string_view>

#include "noema/collections.h"
#include "noema/status.h"

namespace noema::mongo {

// Error labels of the transactions specification.
inline constexpr char kTransientTransactionError[] = "TransientTransactionError";
inline constexpr char kUnknownTransactionCommitResult[] = "UnknownTransactionCommitResult";

// How to get multi-document transactions, for the errors that need them.
inline constexpr std::string_view kReplicaSetFix =
    "run MongoDB as a replica set (one node is enough: start mongod with --replSet rs0 and run "
    "rs.initiate() once in mongosh); see docs/operations.md";

// The server error codes that noema treats specially (MongoDB's error_codes.yml).
enum ServerCode : int32_t {
  kHostUnreachable = 6,
  kHostNotFound = 7,
  kUnauthorized = 13,
  kAuthenticationFailed = 18,
  kIllegalOperation = 20,
  kLockTimeout = 24,
  kNamespaceNotFound = 26,
  kMaxTimeMsExpired = 50,
  kWriteConcernFailed = 64,
  kNetworkTimeout = 89,
  kShutdownInProgress = 91,
  kWriteConflict = 112,
  kDocumentValidationFailure = 121,
  kFailedToSatisfyReadPreference = 133,
  kReadConcernMajorityNotAvailableYet = 134,
  kPrimarySteppedDown = 189,
  kNoSuchTransaction = 251,
  kExceededTimeLimit = 262,
  kSocketException = 9001,
  kNotWritablePrimary = 10107,
  kBsonObjectTooLarge = 10334,
  kDuplicateKey = 11000,
  kDuplicateKeyLegacy = 11001,
  kInterruptedAtShutdown = 11600,
  kInterruptedDueToReplStateChange = 11602,
  kDuplicateKeyOnUpdate = 12582,
  kNotPrimaryNoSecondaryOk = 13435,
  kNotPrimaryOrSecondary = 13436,
  kKeyTooLong = 17280,
};

// What the store was doing when the error happened.
struct ErrorContext {
  std::string_view action;               // "inserting into userCore"; prefixes the message
  std::optional<Collection> collection;  // names the collection of a duplicate key
};

// Translates an error reported by libmongoc (`error`, and the server's reply when there
// is one: it carries error labels). Never returns OK.
Status TranslateError(const bson_error_t& error, const bson_t* reply, const ErrorContext& context);

// True when the reply (a server reply or libmongoc's error reply) carries `label`.
bool HasErrorLabel(const bson_t* reply, const char* label);

}  // namespace noema::mongo
