// Evaluates dotted paths and Filters on decoded BSON, with MongoDB's semantics for the
// operators the Store offers. The SQLite store uses it for every predicate that no
// extracted column serves, for Replace preconditions, and to compute multikey keys.
//
// Path resolution (MongoDB's): each part names a field of a document; an array met on
// the way is entered element by element (its documents are searched for the rest of
// the path), and a numeric part also selects that element; an array at the end of the
// path is reported whole and then element by element (one level).
//
// Thread-safety: pure functions.
#pragma once

#include <bson/bson.h>

#include <optional>
#include <string_view>
#include <vector>

#include "noema/bson.h"
#include "noema/store.h"

namespace noema::sqlite {

enum class PathHit {
  kValue,         // a value that is not an array, at the end of the path
  kArray,         // an array at the end of the path, as a whole
  kArrayElement,  // one element of an array at the end of the path
  kMissing,       // a document on the way lacks the next field (value is nullptr)
};

// Calls visit(const bson_iter_t* value, PathHit hit) for everything `path` reaches in
// `doc`; visit returns false to stop. Returns false when stopped.
template <typename Visit>
bool VisitPath(const bson_t* doc, std::string_view path, Visit&& visit);

// MongoDB's comparison of two values of the same canonical type (numbers of any kind
// together, strings, objectIds, dates, bools, null, documents, arrays, binary). nullopt
// when the types differ: such values neither match nor order against each other.
std::optional<int> CompareValues(const bson_value_t& a, const bson_value_t& b);

// True when `doc` satisfies every predicate of `filter`.
bool MatchesFilter(DocumentView doc, const Filter& filter);

// The sort key of `path` in `doc`: the first value the path reaches that is not an array
// (BSON types with no column encoding give nullopt).
std::optional<bson_iter_t> FirstScalar(const bson_t* doc, std::string_view path);

// ---- implementation of the template ---------------------------------------------------

namespace internal {

bool FindKey(bson_iter_t* iter, std::string_view key);
bool IsArrayIndex(std::string_view part);

template <typename Visit>
bool VisitParts(const bson_t* container, std::string_view rest, Visit& visit) {
  size_t dot = rest.find('.');
  std::string_view key = rest.substr(0, dot);
  bson_iter_t iter;
  if (!bson_iter_init(&iter, container) || !FindKey(&iter, key)) {
    return visit(static_cast<const bson_iter_t*>(nullptr), PathHit::kMissing);
  }
  if (dot == std::string_view::npos) {
    if (!BSON_ITER_HOLDS_ARRAY(&iter)) return visit(&iter, PathHit::kValue);
    if (!visit(&iter, PathHit::kArray)) return false;
    bson_iter_t element;
    if (!bson_iter_recurse(&iter, &element)) return true;
    while (bson_iter_next(&element)) {
      if (!visit(&element, PathHit::kArrayElement)) return false;
    }
    return true;
  }
  std::string_view tail = rest.substr(dot + 1);
  uint32_t length = 0;
  const uint8_t* data = nullptr;
  bson_t child;
  if (BSON_ITER_HOLDS_DOCUMENT(&iter)) {
    bson_iter_document(&iter, &length, &data);
    if (!bson_init_static(&child, data, length)) return true;
    return VisitParts(&child, tail, visit);
  }
  if (!BSON_ITER_HOLDS_ARRAY(&iter)) {
    return visit(static_cast<const bson_iter_t*>(nullptr), PathHit::kMissing);
  }
  bson_iter_array(&iter, &length, &data);
  bson_t array;
  if (!bson_init_static(&array, data, length)) return true;
  std::string_view next = tail.substr(0, tail.find('.'));
  if (IsArrayIndex(next)) {
    // An array is a document whose keys are "0", "1", ...: the index selects one
    // element (MongoDB would also look for a field named like the index inside each
    // element; documents of noema never have numeric field names).
    return VisitParts(&array, tail, visit);
  }
  bson_iter_t element;
  if (!bson_iter_init(&element, &array)) return true;
  while (bson_iter_next(&element)) {
    if (!BSON_ITER_HOLDS_DOCUMENT(&element)) continue;
    bson_iter_document(&element, &length, &data);
    if (!bson_init_static(&child, data, length)) continue;
    if (!VisitParts(&child, tail, visit)) return false;
  }
  return true;
}

}  // namespace internal

template <typename Visit>
bool VisitPath(const bson_t* doc, std::string_view path, Visit&& visit) {
  return internal::VisitParts(doc, path, visit);
}

}  // namespace noema::sqlite
