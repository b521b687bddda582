// ObjectId: MongoDB's 12-byte id (4-byte seconds, 5-byte process random, 3-byte counter).
//
// Thread-safety: a value type; Generate() is thread-safe.
#pragma once

#include <bson/bson.h>

#include <compare>
#include <cstring>
#include <string>
#include <string_view>

#include "noema/status.h"
#include "noema/time.h"

namespace noema {

class ObjectId {
 public:
  ObjectId() { std::memset(&oid_, 0, sizeof oid_); }
  explicit ObjectId(const bson_oid_t& oid) : oid_(oid) {}

  // A fresh, process-unique id.
  static ObjectId Generate();
  // An id whose time part is `time` (for time-ordered test data and range bounds).
  static ObjectId GenerateAt(Timestamp time);
  // Parses 24 hexadecimal characters (either case); `field` names the input in errors.
  static Result<ObjectId> Parse(std::string_view hex, std::string_view field = {});

  std::string ToHex() const;
  Timestamp CreationTime() const;
  const bson_oid_t& raw() const { return oid_; }

  friend bool operator==(const ObjectId& a, const ObjectId& b) {
    return bson_oid_equal(&a.oid_, &b.oid_);
  }
  friend std::strong_ordering operator<=>(const ObjectId& a, const ObjectId& b) {
    int c = bson_oid_compare(&a.oid_, &b.oid_);
    return c < 0 ? std::strong_ordering::less
                 : (c > 0 ? std::strong_ordering::greater : std::strong_ordering::equal);
  }

 private:
  bson_oid_t oid_;
};

}  // namespace noema
