// What both stores share in planning a query: the check of a dotted field path, the text
// form of the opaque page cursors they hand out (store.h, Query::cursor), and the
// fingerprint that ties a cursor to the query it came from. Each store decides
// what bytes its cursor carries; this file only turns them into URL-safe text and back,
// with libsodium's base64 codec (unpadded base64url, strict: no padding, no stray bits).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "noema/status.h"

namespace noema::store_internal {

// Checks a dotted field path: non-empty parts, no leading '$'. InvalidArgument names
// `what` ("filter", "sort_field").
Status CheckFieldPath(std::string_view path, std::string_view what);

// Unpadded base64url of `bytes`.
std::string EncodeCursorText(std::string_view bytes);

// The bytes of a cursor made by EncodeCursorText; false for anything else.
bool DecodeCursorText(std::string_view text, std::string* bytes);

// A 32-bit digest (BLAKE2b, truncated) of a sequence of strings; ("ab","c") and ("a","bc")
// differ. Enough to catch a cursor used with another query by mistake.
class QueryFingerprint {
 public:
  QueryFingerprint();
  void Add(std::string_view text);
  uint32_t value() const;

 private:
  std::string parts_;
};

}  // namespace noema::store_internal
