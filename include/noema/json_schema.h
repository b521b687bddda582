// MongoDB's `$jsonSchema` dialect, evaluated over BSON.
//
// Supported keywords: bsonType (a name or a list; every BSON type name MongoDB accepts,
// plus "number"), type (JSON type names), required, properties, additionalProperties
// (bool or schema), patternProperties, items (schema or list), additionalItems, enum
// (null included), minProperties/maxProperties, minItems/maxItems, uniqueItems,
// minimum/maximum with exclusiveMinimum/exclusiveMaximum, multipleOf,
// minLength/maxLength, pattern, allOf/anyOf/oneOf/not, dependencies, title and
// description. Keywords MongoDB's $jsonSchema rejects ($ref, $schema, default, format,
// id, ...) make Parse fail, as MongoDB's createCollection would.
//
// An error names the path of the offending value ("wallets.0.address") and the rule
// that failed ("bsonType: expected string, got int").
//
// Thread-safety: a parsed JsonSchema is immutable; Validate may be called concurrently.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "noema/bson.h"
#include "noema/status.h"

namespace noema {

struct SchemaNode;  // the compiled form; private to json_schema.cc

class JsonSchema {
 public:
  // Compiles a schema document (the value of `$jsonSchema`).
  static Result<JsonSchema> Parse(DocumentView schema);
  static Result<JsonSchema> ParseJson(std::string_view json);

  JsonSchema(JsonSchema&&) noexcept;
  JsonSchema& operator=(JsonSchema&&) noexcept;
  ~JsonSchema();

  // OK, or InvalidArgument naming the first failing path and rule.
  Status Validate(DocumentView doc) const;
  // Every failure, each an InvalidArgument with its path (capped at `max_errors`).
  std::vector<Status> ValidateAll(DocumentView doc, size_t max_errors = 100) const;

 private:
  explicit JsonSchema(std::unique_ptr<SchemaNode> root);
  std::unique_ptr<SchemaNode> root_;
};

}  // namespace noema
