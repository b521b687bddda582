#include "store/redaction.h"

#include <bson/bson.h>

#include <cstring>
#include <string>
#include <string_view>

namespace noema::store_internal {
namespace {

std::string_view Key(const bson_iter_t& iter) {
  return std::string_view(bson_iter_key(&iter), bson_iter_key_len(&iter));
}

// Whether two elements hold the same value: the same type and the same bytes.
bool SameValue(const bson_iter_t& a, const bson_iter_t& b) {
  if (bson_iter_type(&a) != bson_iter_type(&b)) return false;
  bson_t left = BSON_INITIALIZER;
  bson_t right = BSON_INITIALIZER;
  bson_append_iter(&left, "v", 1, &a);
  bson_append_iter(&right, "v", 1, &b);
  const bool same = left.len == right.len &&
                    std::memcmp(bson_get_data(&left), bson_get_data(&right), left.len) == 0;
  bson_destroy(&left);
  bson_destroy(&right);
  return same;
}

// Whether every member of `kept` appears in `original` with the same value, in the same
// order (kept is original with some members removed).
bool IsSubsequence(const bson_iter_t& original_field, const bson_iter_t& kept_field) {
  bson_iter_t original;
  bson_iter_t kept;
  if (!bson_iter_recurse(&original_field, &original) || !bson_iter_recurse(&kept_field, &kept)) {
    return false;
  }
  while (bson_iter_next(&kept)) {
    bool found = false;
    while (bson_iter_next(&original)) {
      if (Key(original) == Key(kept)) {
        found = SameValue(original, kept);
        break;
      }
    }
    if (!found) return false;
  }
  return true;
}

}  // namespace

Status CheckRedactable(Collection collection) {
  if (IsRedactable(collection)) return Status::Ok();
  return Status::FailedPrecondition(std::string(CollectionName(collection)) +
                                    " cannot be redacted: only userEvents' eventData can");
}

Status CheckRedaction(Collection collection, const ObjectId& id, DocumentView stored,
                      DocumentView redacted) {
  NOEMA_RETURN_IF_ERROR(CheckRedactable(collection));
  const std::string context = " (redaction of " + std::string(CollectionName(collection)) + " " +
                              id.ToHex() + " may only remove members of eventData)";
  bson_iter_t before;
  bson_iter_t after;
  if (!bson_iter_init(&before, stored.get()) || !bson_iter_init(&after, redacted.get())) {
    return Status::InvalidArgument("unreadable document" + context);
  }
  bool before_more = bson_iter_next(&before);
  bool after_more = bson_iter_next(&after);
  while (before_more || after_more) {
    if (before_more && Key(before) == kRedactableField &&
        (!after_more || Key(after) != kRedactableField)) {
      before_more = bson_iter_next(&before);  // eventData removed whole
      continue;
    }
    if (!before_more) {
      return Status::InvalidArgument("a field that the stored document lacks" + context,
                                     std::string(Key(after)));
    }
    if (!after_more || Key(before) != Key(after)) {
      return Status::InvalidArgument("a field that must be kept" + context,
                                     std::string(Key(before)));
    }
    if (Key(before) == kRedactableField) {
      if (!BSON_ITER_HOLDS_DOCUMENT(&before) || !BSON_ITER_HOLDS_DOCUMENT(&after) ||
          !IsSubsequence(before, after)) {
        return Status::InvalidArgument("a member added or changed" + context,
                                       std::string(kRedactableField));
      }
    } else if (!SameValue(before, after)) {
      return Status::InvalidArgument("a field that must not change" + context,
                                     std::string(Key(before)));
    }
    before_more = bson_iter_next(&before);
    after_more = bson_iter_next(&after);
  }
  return Status::Ok();
}

}  // namespace noema::store_internal
