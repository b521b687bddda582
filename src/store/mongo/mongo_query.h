// Turns a Filter or a Query into MongoDB query documents, and encodes the opaque page
// cursor.
//
//   equals   {field: value}   (on an array field any element matches, MongoDB's multikey
//                              semantics; {field: null} matches null or missing)
//   range    {field: {$gte: min, $lt: max}}  (type-bracketed, as on SQLite)
//   exists   {field: {$exists: bool}}
// Predicates on distinct fields share one document; a field named twice makes the
// query an $and of one document per predicate.
//
// A Query becomes find(filter, {sort: {sort_field: ±1, _id: ±1}, limit: limit + 1}): the
// extra document says whether there is a next page. The cursor is base64url of (version,
// direction, a fingerprint of the filter and order, the last page's sort value and
// _id), in the style of the SQLite store's cursor; the next page adds
//   ascending:  {$or: [{s: {$gt: v}}, {s: v, _id: {$gt: id}}]}
//   descending: {$or: [{s: {$lt: v}}, {s: v, _id: {$lt: id}}, {s: null}]}
// (missing and null sort first ascending, last descending; a null v keeps to them).
//
// Thread-safety: values and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "noema/bson.h"
#include "noema/store.h"
#include "store/query_common.h"

namespace noema::mongo {

// Field paths are checked the same way by every store (src/store/query_common.h).
using store_internal::CheckFieldPath;

// The query document of a filter.
Result<Document> FilterQuery(const Filter& filter);
// The query document of `_id == id` and the precondition (Replace's selector).
Result<Document> IdQuery(const ObjectId& id, const Filter& precondition);

// A Find, planned.
struct FindPlan {
  Document filter;   // the query, with the cursor's continuation
  Document options;  // sort, limit (+1), batchSize
  std::string sort_field;
  bool descending = false;
  uint32_t fingerprint = 0;
};

// REQUIRES: 1 <= query.limit <= kPageSizeMax (InvalidArgument otherwise).
Result<FindPlan> PlanFind(const Query& query);

// The cursor that continues after `last`, the last document of a page.
std::string NextCursor(const FindPlan& plan, DocumentView last);

}  // namespace noema::mongo
