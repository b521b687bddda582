// Status and Result<T>: how every library function in noema reports an expected error.
//
// A Status is a cheap value: a code, a message and, when the error is about one field of
// the input, that field's path ("wallets.0.address"). Expected errors (bad input, not
// found, conflicts, an unavailable store) are Status values; exceptions are used only at
// the edges (CLI, server) and for programmer errors.
//
// Thread-safety: Status and Result are values; distinct objects may be used from
// distinct threads without synchronisation.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace noema {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // the input is malformed or breaks a rule (HTTP 400)
  kNotFound,            // no such record, or not visible to the caller (HTTP 404)
  kAlreadyExists,       // a unique index or key would be violated (HTTP 409)
  kConflict,            // the state forbids it: idempotency key reuse, final states (409)
  kFailedPrecondition,  // the record is in the wrong state for this (HTTP 409/422)
  kInsufficientFunds,   // available credit does not cover the amount (HTTP 402)
  kPermissionDenied,    // authenticated, but not allowed (HTTP 403)
  kUnauthenticated,     // no or bad credential (HTTP 401)
  kResourceExhausted,   // a limit was hit: size, rate, batch (HTTP 413/429)
  kUnavailable,         // the store cannot be reached or is busy; retry later (HTTP 503)
  kDataLoss,            // stored data is corrupt or inconsistent (HTTP 500)
  kInternal,            // a bug or an unexpected library error (HTTP 500)
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message, std::string field = {})
      : code_(code), message_(std::move(message)), field_(std::move(field)) {}

  static Status Ok() { return {}; }
  static Status InvalidArgument(std::string msg, std::string field = {}) {
    return {StatusCode::kInvalidArgument, std::move(msg), std::move(field)};
  }
  static Status NotFound(std::string msg) { return {StatusCode::kNotFound, std::move(msg)}; }
  static Status AlreadyExists(std::string msg, std::string field = {}) {
    return {StatusCode::kAlreadyExists, std::move(msg), std::move(field)};
  }
  static Status Conflict(std::string msg, std::string field = {}) {
    return {StatusCode::kConflict, std::move(msg), std::move(field)};
  }
  static Status FailedPrecondition(std::string msg, std::string field = {}) {
    return {StatusCode::kFailedPrecondition, std::move(msg), std::move(field)};
  }
  static Status InsufficientFunds(std::string msg, std::string field = {}) {
    return {StatusCode::kInsufficientFunds, std::move(msg), std::move(field)};
  }
  static Status PermissionDenied(std::string msg) {
    return {StatusCode::kPermissionDenied, std::move(msg)};
  }
  static Status Unauthenticated(std::string msg) {
    return {StatusCode::kUnauthenticated, std::move(msg)};
  }
  static Status ResourceExhausted(std::string msg, std::string field = {}) {
    return {StatusCode::kResourceExhausted, std::move(msg), std::move(field)};
  }
  static Status Unavailable(std::string msg) { return {StatusCode::kUnavailable, std::move(msg)}; }
  static Status DataLoss(std::string msg) { return {StatusCode::kDataLoss, std::move(msg)}; }
  static Status Internal(std::string msg) { return {StatusCode::kInternal, std::move(msg)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // The path of the input field the error is about, or empty.
  const std::string& field() const { return field_; }

  bool IsNotFound() const { return code_ == StatusCode::kNotFound; }
  bool IsAlreadyExists() const { return code_ == StatusCode::kAlreadyExists; }
  bool IsInvalidArgument() const { return code_ == StatusCode::kInvalidArgument; }
  bool IsConflict() const { return code_ == StatusCode::kConflict; }
  bool IsUnavailable() const { return code_ == StatusCode::kUnavailable; }

  // Returns a copy whose field path is `prefix` + "." + field (or `prefix` alone).
  Status WithFieldPrefix(std::string_view prefix) const;

  // "InvalidArgument: wallets.0.address: expected string, got int32"
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  std::string field_;
};

// Either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT(google-explicit-constructor)
  Result(Status status) : status_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!status_.ok() && "a Result built from a Status must carry an error");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }

  // REQUIRES: ok()
  T& value() & {
    assert(ok());
    return *value_;
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace noema

// Returns early from the enclosing function when `expr` (a Status) is not OK.
#define NOEMA_RETURN_IF_ERROR(expr)                \
  do {                                             \
    ::noema::Status noema_status_ = (expr);        \
    if (!noema_status_.ok()) return noema_status_; \
  } while (0)

#define NOEMA_CONCAT_INNER(a, b) a##b
#define NOEMA_CONCAT(a, b) NOEMA_CONCAT_INNER(a, b)

// `NOEMA_ASSIGN_OR_RETURN(auto x, Compute());` assigns the value or returns the error.
#define NOEMA_ASSIGN_OR_RETURN(lhs, expr) \
  NOEMA_ASSIGN_OR_RETURN_IMPL(NOEMA_CONCAT(noema_result_, __LINE__), lhs, expr)
#define NOEMA_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()
