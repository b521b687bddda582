#include "store/mongo/mongo_errors.h"

#include <string>

#include "store/mongo/mongo_documents.h"

namespace noema::mongo {
namespace {

// "E11000 duplicate key error collection: noema.userCore index: identityKeys_1 dup key:
// { ... }" names the index after "index: ".
std::string_view DuplicateIndexName(std::string_view message) {
  constexpr std::string_view kIndex = "index: ";
  size_t start = message.find(kIndex);
  if (start == std::string_view::npos) return {};
  start += kIndex.size();
  size_t end = message.find(' ', start);
  return message.substr(start, end == std::string_view::npos ? end : end - start);
}

bool IsUnavailableCode(int32_t code) {
  switch (code) {
    case kHostUnreachable:
    case kHostNotFound:
    case kLockTimeout:
    case kMaxTimeMsExpired:
    case kWriteConcernFailed:
    case kNetworkTimeout:
    case kShutdownInProgress:
    case kWriteConflict:
    case kFailedToSatisfyReadPreference:
    case kReadConcernMajorityNotAvailableYet:
    case kPrimarySteppedDown:
    case kNoSuchTransaction:
    case kExceededTimeLimit:
    case kSocketException:
    case kNotWritablePrimary:
    case kInterruptedAtShutdown:
    case kInterruptedDueToReplStateChange:
    case kNotPrimaryNoSecondaryOk:
    case kNotPrimaryOrSecondary: return true;
    default: return false;
  }
}

Status FromServerCode(int32_t code, const std::string& message, const ErrorContext& context,
                      std::string_view server_message) {
  switch (code) {
    case kDuplicateKey:
    case kDuplicateKeyLegacy:
    case kDuplicateKeyOnUpdate:
      if (context.collection) {
        return DuplicateKeyStatus(*context.collection, DuplicateIndexName(server_message));
      }
      return Status::AlreadyExists(message);
    case kDocumentValidationFailure:
      return Status::InvalidArgument("the server's validator refused the document: " + message);
    case kNamespaceNotFound:
      return Status::FailedPrecondition("the store's collections are missing; run `noema init`: " +
                                        message);
    case kIllegalOperation:
      if (server_message.find("replica set") != std::string_view::npos) {
        return Status::FailedPrecondition(message + "; " + std::string(kReplicaSetFix));
      }
      return Status::Internal(message);
    case kUnauthorized:
    case kAuthenticationFailed:
      return Status::Unavailable("MongoDB refused noema's credentials or privileges: " + message);
    case kBsonObjectTooLarge:
    case kKeyTooLong: return Status::ResourceExhausted(message);
    default: break;
  }
  if (IsUnavailableCode(code)) return Status::Unavailable(message);
  return Status::Internal("MongoDB error " + std::to_string(code) + ": " + message);
}

}  // namespace

bool HasErrorLabel(const bson_t* reply, const char* label) {
  return reply != nullptr && mongoc_error_has_label(reply, label);
}

Status TranslateError(const bson_error_t& error, const bson_t* reply, const ErrorContext& context) {
  std::string_view server_message = error.message;
  std::string message = context.action.empty()
                            ? std::string(server_message)
                            : std::string(context.action) + ": " + std::string(server_message);
  switch (error.domain) {
    case MONGOC_ERROR_SERVER:
    case MONGOC_ERROR_WRITE_CONCERN: {
      Status status =
          FromServerCode(static_cast<int32_t>(error.code), message, context, server_message);
      // A label outranks the code: the operation may succeed if tried again.
      if (status.code() == StatusCode::kInternal &&
          (HasErrorLabel(reply, kTransientTransactionError) ||
           HasErrorLabel(reply, "RetryableWriteError"))) {
        return Status::Unavailable(message);
      }
      return status;
    }
    case MONGOC_ERROR_STREAM:
    case MONGOC_ERROR_SERVER_SELECTION:
      return Status::Unavailable("the MongoDB server cannot be reached: " + message);
    case MONGOC_ERROR_CLIENT:
      if (error.code == MONGOC_ERROR_CLIENT_AUTHENTICATE) {
        return Status::Unavailable("MongoDB refused noema's credentials: " + message);
      }
      if (error.code == MONGOC_ERROR_CLIENT_TOO_BIG) return Status::ResourceExhausted(message);
      break;
    case MONGOC_ERROR_SASL:
    case MONGOC_ERROR_SCRAM:
      return Status::Unavailable("MongoDB refused noema's credentials: " + message);
    case MONGOC_ERROR_PROTOCOL:
      if (error.code == MONGOC_ERROR_PROTOCOL_BAD_WIRE_VERSION) {
        return Status::FailedPrecondition(
            "the MongoDB server is too old for noema (4.0 or newer; 4.2 or newer for a sharded "
            "cluster): " +
            message);
      }
      return Status::Unavailable(message);
    case MONGOC_ERROR_BSON: return Status::InvalidArgument(message);
    case MONGOC_ERROR_COMMAND:
      if (error.code == MONGOC_ERROR_COMMAND_INVALID_ARG) return Status::InvalidArgument(message);
      break;
    default: break;
  }
  if (HasErrorLabel(reply, kTransientTransactionError)) return Status::Unavailable(message);
  return Status::Internal(message);
}

}  // namespace noema::mongo
