// Internal to src/service: the event catalog (EVENT_CATALOG.md) compiled from
// schemas/event_catalog.json, and the validation of `eventData` against it.
//
// The catalog file maps each eventType to its eventData fields:
//   {"<eventType>": {"<field>": <type>, "<field>?": <type>, ...}, ...}
// A trailing `?` marks an optional field. A <type> is one of
//   - a BSON type name: "string", "long", "int", "bool", "objectId", "decimal", "object",
//     "array", "date", "null", or "any" (every BSON type);
//   - a list of such names: any of them;
//   - {"enum": ["a", "b"]}: a string equal to one of the values;
//   - {"arrayOf": {<fields>}}: an array of objects, each checked like eventData itself;
//   - {"arrayOf": <type>}: an array whose every element is of <type>.
// Every known type also accepts an optional `legacy` object (LEGACY.md) without listing it.
//
// Validation is strict for known types: a missing required field, a field of the wrong
// type and a field the catalog does not list are refused with InvalidArgument whose
// field() is "eventData.<path>". It also normalises values, so that clients sending plain
// JSON are accepted:
//   - decimal: a Decimal128 or a decimal string ("12.50"), stored as the Decimal128 of the
//     exact Money value (more than 8 fractional digits or binary floating point: refused);
//   - long: an int32 is widened to int64;
//   - int: an int64 within the int32 range is narrowed;
//   - objectId: a 24-hex-digit string is converted to an ObjectId.
// Unknown types follow UnknownEventPolicy: kAccept stores eventData as given; kReject is
// InvalidArgument with field "eventType".
//
// Thread-safety: a compiled EventCatalog is immutable; DefaultEventCatalog() is built once
// (thread-safe static initialisation) and may be used from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "noema/bson.h"
#include "noema/service/context.h"
#include "noema/status.h"

namespace noema::service_internal {

// The base types of the catalog language.
enum class EventFieldBaseType : uint8_t {
  kString,
  kLong,
  kInt,
  kBool,
  kObjectId,
  kDecimal,
  kObject,
  kArray,
  kDate,
  kNull,
  kAny,
};

struct EventFieldSpec;

// What one field (or one array element) may hold.
struct EventTypeSpec {
  enum class Kind : uint8_t { kBaseTypes, kEnum, kArrayOfFields, kArrayOfType };
  Kind kind = Kind::kBaseTypes;
  std::vector<EventFieldBaseType> base_types;  // kBaseTypes
  std::vector<std::string> enum_values;        // kEnum
  std::vector<EventFieldSpec> fields;          // kArrayOfFields
  std::vector<EventTypeSpec> element;          // kArrayOfType: exactly one entry
};

struct EventFieldSpec {
  std::string name;
  bool required = true;
  EventTypeSpec type;
};

class EventCatalog {
 public:
  // Compiles a catalog file. InvalidArgument naming the offending entry when the text is
  // not in the format above.
  static Result<EventCatalog> Compile(std::string_view json);

  bool IsKnown(std::string_view event_type) const;
  // The event types, sorted.
  std::vector<std::string> Types() const;
  // The fields of a known type (including the implicit optional `legacy`), in catalog
  // order; nullptr for an unknown type.
  const std::vector<EventFieldSpec>* FieldsOf(std::string_view event_type) const;

  // Validates `*data` (eventData) for `event_type` and replaces it with its normalised
  // form. On error `*data` is unchanged.
  // REQUIRES: data != nullptr.
  Status ValidateAndNormalize(std::string_view event_type, Document* data,
                              UnknownEventPolicy policy) const;

 private:
  std::map<std::string, std::vector<EventFieldSpec>, std::less<>> types_;
};

// The catalog embedded from schemas/event_catalog.json. Aborts the process if the
// embedded file does not compile (a build defect, covered by event_catalog_test).
const EventCatalog& DefaultEventCatalog();

// The text of schemas/event_catalog.json as embedded in the binary.
std::string_view EventCatalogJson();

}  // namespace noema::service_internal
