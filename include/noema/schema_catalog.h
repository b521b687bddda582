// The schemas/ directory compiled into the binary: one `$jsonSchema` validator per
// collection and the index list (schemas/indexes.json). These files are the single
// source of truth: `noema init` installs them on MongoDB, and the SQLite store enforces
// them itself.
//
// Thread-safety: the catalog is built once, on first use, and is immutable afterwards.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "noema/bson.h"
#include "noema/collections.h"
#include "noema/json_schema.h"

namespace noema {

// One index of schemas/indexes.json, in MongoDB's createIndexes shape.
struct IndexSpec {
  std::string name;                 // "masterAccountId_1_timestamp_1"
  std::vector<std::string> fields;  // dotted paths, in key order
  std::vector<int> directions;      // 1 or -1 per field
  bool unique = false;
  // When set, only documents where this field exists are indexed (MongoDB's
  // partialFilterExpression {field: {$exists: true}}).
  std::string partial_exists_field;
  // True when one of the fields is an array in stored documents (a multikey index).
  bool multikey = false;
};

// The validator for a collection (schemas/<collection>.schema.json).
const JsonSchema& ValidatorFor(Collection collection);
// The JSON text of that validator, as shipped in schemas/.
std::string_view ValidatorJson(Collection collection);
// The indexes of a collection (never includes the implicit unique `_id` index).
const std::vector<IndexSpec>& IndexesFor(Collection collection);
// The text of schemas/indexes.json.
std::string_view IndexesJson();

}  // namespace noema
