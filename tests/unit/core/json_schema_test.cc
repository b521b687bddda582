#include "noema/json_schema.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace noema {
namespace {

Document Doc(std::string_view json) {
  Result<Document> doc = Document::FromJson(json);
  EXPECT_TRUE(doc.ok()) << json << ": " << doc.status().ToString();
  return doc.ok() ? std::move(doc).value() : Document();
}

JsonSchema MustParse(std::string_view json) {
  Result<JsonSchema> schema = JsonSchema::ParseJson(json);
  EXPECT_TRUE(schema.ok()) << json << ": " << schema.status().ToString();
  if (!schema.ok()) return std::move(JsonSchema::ParseJson("{}")).value();
  return std::move(schema).value();
}

Status Check(std::string_view schema_json, std::string_view doc_json) {
  JsonSchema schema = MustParse(schema_json);
  Document doc = Doc(doc_json);
  return schema.Validate(doc.view());
}

Status ParseError(std::string_view schema_json) {
  Result<JsonSchema> schema = JsonSchema::ParseJson(schema_json);
  return schema.ok() ? Status::Ok() : schema.status();
}

// Asserts that `status` is an InvalidArgument about `field` whose message contains `text`.
#define EXPECT_FAILS(status, expected_field, text)                          \
  do {                                                                      \
    ::noema::Status s_ = (status);                                          \
    EXPECT_TRUE(s_.IsInvalidArgument()) << s_.ToString();                   \
    EXPECT_EQ(s_.field(), (expected_field)) << s_.ToString();               \
    EXPECT_NE(s_.message().find(text), std::string::npos) << s_.ToString(); \
  } while (0)

#define EXPECT_PASSES(status)              \
  do {                                     \
    ::noema::Status s_ = (status);         \
    EXPECT_TRUE(s_.ok()) << s_.ToString(); \
  } while (0)

// ---- bsonType / type -----------------------------------------------------------------------

TEST(JsonSchemaTest, BsonTypeAcceptsItsTypeAndNamesTheMismatch) {
  const char* schema = R"({"properties": {"a": {"bsonType": "string"}}})";
  EXPECT_PASSES(Check(schema, R"({"a": "x"})"));
  EXPECT_PASSES(Check(schema, R"({})"));
  Status s = Check(schema, R"({"a": 5})");
  EXPECT_FAILS(s, "a", "bsonType: expected string, got int");
}

struct TypeCase {
  const char* alias;
  const char* value_json;  // a value of exactly that BSON type
};

const TypeCase kTypeCases[] = {
    {"double", R"({"$numberDouble": "1.5"})"},
    {"string", R"("text")"},
    {"object", R"({"k": 1})"},
    {"array", R"([1, 2])"},
    {"binData", R"({"$binary": {"base64": "AA==", "subType": "00"}})"},
    {"undefined", R"({"$undefined": true})"},
    {"objectId", R"({"$oid": "65f0a1b2c3d4e5f601234567"})"},
    {"bool", R"(true)"},
    {"date", R"({"$date": "2025-05-07T12:00:00Z"})"},
    {"null", R"(null)"},
    {"regex", R"({"$regularExpression": {"pattern": "a", "options": "i"}})"},
    {"dbPointer", R"({"$dbPointer": {"$ref": "c", "$id": {"$oid": "65f0a1b2c3d4e5f601234567"}}})"},
    {"javascript", R"({"$code": "return 1"})"},
    {"symbol", R"({"$symbol": "s"})"},
    {"javascriptWithScope", R"({"$code": "return 1", "$scope": {"x": 1}})"},
    {"int", R"({"$numberInt": "7"})"},
    {"timestamp", R"({"$timestamp": {"t": 1, "i": 2}})"},
    {"long", R"({"$numberLong": "7"})"},
    {"decimal", R"({"$numberDecimal": "7.5"})"},
    {"minKey", R"({"$minKey": 1})"},
    {"maxKey", R"({"$maxKey": 1})"},
};

TEST(JsonSchemaTest, EveryBsonTypeAliasMatchesExactlyItsType) {
  for (const TypeCase& type : kTypeCases) {
    JsonSchema schema =
        MustParse(std::string(R"({"properties": {"v": {"bsonType": ")") + type.alias + R"("}}})");
    for (const TypeCase& value : kTypeCases) {
      Document doc = Doc(std::string(R"({"v": )") + value.value_json + "}");
      Status s = schema.Validate(doc.view());
      if (std::string_view(type.alias) == value.alias) {
        EXPECT_TRUE(s.ok()) << type.alias << " should accept " << value.value_json << ": "
                            << s.ToString();
      } else {
        EXPECT_FAILS(s, "v",
                     std::string("bsonType: expected ") + type.alias + ", got " + value.alias);
      }
    }
  }
}

TEST(JsonSchemaTest, BsonTypeNumberMeansAnyNumericType) {
  const char* schema = R"({"properties": {"n": {"bsonType": "number"}}})";
  EXPECT_PASSES(Check(schema, R"({"n": {"$numberInt": "1"}})"));
  EXPECT_PASSES(Check(schema, R"({"n": {"$numberLong": "1"}})"));
  EXPECT_PASSES(Check(schema, R"({"n": {"$numberDouble": "1.5"}})"));
  EXPECT_PASSES(Check(schema, R"({"n": {"$numberDecimal": "1.5"}})"));
  EXPECT_FAILS(Check(schema, R"({"n": "1"})"), "n", "bsonType: expected number, got string");
}

TEST(JsonSchemaTest, BsonTypeListAcceptsAnyListedType) {
  const char* schema = R"({"properties": {"t": {"bsonType": ["date", "null"]}}})";
  EXPECT_PASSES(Check(schema, R"({"t": null})"));
  EXPECT_PASSES(Check(schema, R"({"t": {"$date": "2025-05-07T12:00:00Z"}})"));
  EXPECT_FAILS(Check(schema, R"({"t": "2025-05-07"})"), "t",
               "bsonType: expected one of [date, null], got string");
}

TEST(JsonSchemaTest, TypeUsesJsonTypeNames) {
  const char* schema = R"({"properties": {
      "o": {"type": "object"}, "a": {"type": "array"}, "n": {"type": "number"},
      "b": {"type": "boolean"}, "s": {"type": "string"}, "z": {"type": "null"},
      "m": {"type": ["string", "null"]}}})";
  EXPECT_PASSES(Check(schema, R"({"o": {}, "a": [], "n": {"$numberLong": "3"}, "b": false,
                                  "s": "x", "z": null, "m": null})"));
  EXPECT_PASSES(Check(schema, R"({"n": {"$numberDecimal": "3.1"}, "m": "x"})"));
  EXPECT_FAILS(Check(schema, R"({"b": 1})"), "b", "type: expected boolean, got int");
  EXPECT_FAILS(Check(schema, R"({"n": {"$oid": "65f0a1b2c3d4e5f601234567"}})"), "n",
               "type: expected number, got objectId");
  EXPECT_FAILS(Check(schema, R"({"m": 1})"), "m", "type: expected one of [string, null]");
}

TEST(JsonSchemaTest, TypeRefusesBsonOnlyNamesAndInteger) {
  EXPECT_FAILS(ParseError(R"({"properties": {"a": {"type": "objectId"}}})"), "properties.a.type",
               "unknown type name");
  EXPECT_FAILS(ParseError(R"({"properties": {"a": {"type": "integer"}}})"), "properties.a.type",
               "not supported");
  EXPECT_FAILS(ParseError(R"({"properties": {"a": {"bsonType": "boolean"}}})"),
               "properties.a.bsonType", "unknown type name");
  EXPECT_FAILS(ParseError(R"({"properties": {"a": {"bsonType": "strng"}}})"),
               "properties.a.bsonType", "strng");
  EXPECT_FAILS(ParseError(R"({"properties": {"a": {"type": "string", "bsonType": "string"}}})"),
               "properties.a.type", "bsonType");
}

TEST(JsonSchemaTest, MalformedTypeListsAreRefused) {
  EXPECT_FAILS(ParseError(R"({"properties": {"a": {"bsonType": []}}})"), "properties.a.bsonType",
               "empty");
  EXPECT_FAILS(ParseError(R"({"properties": {"a": {"bsonType": ["int", "int"]}}})"),
               "properties.a.bsonType", "twice");
  EXPECT_FAILS(ParseError(R"({"properties": {"a": {"bsonType": 2}}})"), "properties.a.bsonType",
               "must be a string or an array of strings");
  EXPECT_FAILS(ParseError(R"({"properties": {"a": {"bsonType": ["int", 2]}}})"),
               "properties.a.bsonType", "must be a string or an array of strings");
}

TEST(JsonSchemaTest, TopLevelTypeMustIncludeObject) {
  EXPECT_FAILS(ParseError(R"({"bsonType": "string"})"), "bsonType", "top level");
  EXPECT_PASSES(ParseError(R"({"bsonType": ["object", "null"]})"));
  EXPECT_PASSES(ParseError(R"({"type": "object"})"));
}

// ---- objects --------------------------------------------------------------------------------

TEST(JsonSchemaTest, RequiredNamesTheMissingPath) {
  const char* schema = R"({"required": ["a"], "properties": {
      "a": {"bsonType": "object", "required": ["b", "c"]}}})";
  EXPECT_PASSES(Check(schema, R"({"a": {"b": 1, "c": null}})"));
  EXPECT_FAILS(Check(schema, R"({})"), "a", "required");
  EXPECT_FAILS(Check(schema, R"({"a": {"b": 1}})"), "a.c", "required: field is missing");
}

TEST(JsonSchemaTest, RequiredOnlyAppliesToObjects) {
  EXPECT_PASSES(Check(R"({"properties": {"a": {"required": ["x"]}}})", R"({"a": 5})"));
}

TEST(JsonSchemaTest, MalformedRequiredIsRefused) {
  EXPECT_FAILS(ParseError(R"({"required": "a"})"), "required", "array of strings");
  EXPECT_FAILS(ParseError(R"({"required": []})"), "required", "empty");
  EXPECT_FAILS(ParseError(R"({"required": ["a", "a"]})"), "required", "twice");
  EXPECT_FAILS(ParseError(R"({"required": [1]})"), "required", "array of strings");
}

TEST(JsonSchemaTest, AdditionalPropertiesFalseNamesTheExtraKey) {
  const char* schema = R"({"properties": {"r": {"bsonType": "object",
      "properties": {"x": {"bsonType": "int"}}, "additionalProperties": false}}})";
  EXPECT_PASSES(Check(schema, R"({"r": {"x": 1}})"));
  EXPECT_PASSES(Check(schema, R"({"r": {}, "top": "extra keys allowed here"})"));
  EXPECT_FAILS(Check(schema, R"({"r": {"x": 1, "y": 2}})"), "r.y",
               "additionalProperties: field is not allowed");
}

TEST(JsonSchemaTest, AdditionalPropertiesSchemaAppliesToUnlistedKeys) {
  const char* schema = R"({"properties": {"m": {"bsonType": "object",
      "properties": {"fixed": {"bsonType": "int"}},
      "additionalProperties": {"bsonType": "string"}}}})";
  EXPECT_PASSES(Check(schema, R"({"m": {"fixed": 1, "telegram": "123", "web": "u"}})"));
  EXPECT_FAILS(Check(schema, R"({"m": {"fixed": 1, "discord": 42}})"), "m.discord",
               "bsonType: expected string, got int");
  EXPECT_PASSES(Check(R"({"additionalProperties": true})", R"({"anything": 1})"));
  EXPECT_FAILS(ParseError(R"({"additionalProperties": "no"})"), "additionalProperties",
               "boolean or an object");
}

TEST(JsonSchemaTest, PatternProperties) {
  const char* schema = R"({"patternProperties": {"^x_": {"bsonType": "int"}},
      "properties": {"name": {"bsonType": "string"}}, "additionalProperties": false})";
  EXPECT_PASSES(Check(schema, R"({"name": "n", "x_a": 1, "x_b": 2})"));
  EXPECT_FAILS(Check(schema, R"({"x_a": "no"})"), "x_a", "bsonType: expected int");
  EXPECT_FAILS(Check(schema, R"({"y": 1})"), "y", "additionalProperties");
  EXPECT_FAILS(ParseError(R"({"patternProperties": {"(": {}}})"), "patternProperties",
               "invalid regular expression");
  EXPECT_FAILS(ParseError(R"({"patternProperties": {"^a": 1}})"), "patternProperties.^a",
               "must be an object");
}

TEST(JsonSchemaTest, MinAndMaxProperties) {
  const char* schema = R"({"properties": {"o": {"minProperties": 1, "maxProperties": 2}}})";
  EXPECT_PASSES(Check(schema, R"({"o": {"a": 1}})"));
  EXPECT_PASSES(Check(schema, R"({"o": {"a": 1, "b": 2}})"));
  EXPECT_FAILS(Check(schema, R"({"o": {}})"), "o", "minProperties");
  EXPECT_FAILS(Check(schema, R"({"o": {"a": 1, "b": 2, "c": 3}})"), "o", "maxProperties");
  EXPECT_FAILS(Check(R"({"maxProperties": 0})", R"({"a": 1})"), "", "maxProperties");
  EXPECT_FAILS(ParseError(R"({"minProperties": -1})"), "minProperties", "non-negative integer");
}

TEST(JsonSchemaTest, Dependencies) {
  const char* schema = R"({"dependencies": {
      "card": ["billingAddress"],
      "refund": {"required": ["reason"], "properties": {"reason": {"bsonType": "string"}}}}})";
  EXPECT_PASSES(Check(schema, R"({})"));
  EXPECT_PASSES(Check(schema, R"({"card": 1, "billingAddress": "x"})"));
  EXPECT_FAILS(Check(schema, R"({"card": 1})"), "billingAddress", "dependencies");
  EXPECT_FAILS(Check(schema, R"({"refund": true})"), "reason", "required");
  EXPECT_FAILS(Check(schema, R"({"refund": true, "reason": 1})"), "reason", "bsonType");
  EXPECT_FAILS(ParseError(R"({"dependencies": {"a": 1}})"), "dependencies.a",
               "object or an array of strings");
  EXPECT_FAILS(ParseError(R"({"dependencies": {"a": []}})"), "dependencies.a", "empty");
}

// ---- arrays --------------------------------------------------------------------------------

TEST(JsonSchemaTest, ItemsSchemaNamesTheIndexInNestedArrays) {
  const char* schema = R"({"properties": {"a": {"bsonType": "array", "items": {
      "bsonType": "object", "properties": {"b": {"bsonType": "array",
      "items": {"bsonType": "int"}}}}}}})";
  EXPECT_PASSES(Check(schema, R"({"a": [{"b": [1, 2]}, {"b": []}, {}]})"));
  EXPECT_FAILS(Check(schema, R"({"a": [{"b": [1]}, {"b": [1, "x"]}]})"), "a.1.b.1",
               "bsonType: expected int, got string");
  EXPECT_FAILS(Check(schema, R"({"a": [5]})"), "a.0", "bsonType: expected object, got int");
}

TEST(JsonSchemaTest, ItemsListAndAdditionalItems) {
  const char* closed = R"({"properties": {"t": {"items": [{"bsonType": "string"},
      {"bsonType": "int"}], "additionalItems": false}}})";
  EXPECT_PASSES(Check(closed, R"({"t": ["a", 1]})"));
  EXPECT_PASSES(Check(closed, R"({"t": ["a"]})"));
  EXPECT_FAILS(Check(closed, R"({"t": [1, 1]})"), "t.0", "bsonType: expected string");
  EXPECT_FAILS(Check(closed, R"({"t": ["a", 1, 2]})"), "t.2", "additionalItems");
  const char* typed = R"({"properties": {"t": {"items": [{"bsonType": "string"}],
      "additionalItems": {"bsonType": "bool"}}}})";
  EXPECT_PASSES(Check(typed, R"({"t": ["a", true, false]})"));
  EXPECT_FAILS(Check(typed, R"({"t": ["a", true, 3]})"), "t.2", "bsonType: expected bool");
  // additionalItems means nothing without an items list.
  EXPECT_PASSES(Check(R"({"properties": {"t": {"additionalItems": false}}})", R"({"t": [1, 2]})"));
  EXPECT_FAILS(ParseError(R"({"items": 3})"), "items", "object or an array of objects");
  EXPECT_FAILS(ParseError(R"({"items": [{}, 3]})"), "items.1", "must be an object");
}

TEST(JsonSchemaTest, MinAndMaxItems) {
  const char* schema = R"({"properties": {"a": {"minItems": 1, "maxItems": 2}}})";
  EXPECT_PASSES(Check(schema, R"({"a": [1]})"));
  EXPECT_FAILS(Check(schema, R"({"a": []})"), "a", "minItems");
  EXPECT_FAILS(Check(schema, R"({"a": [1, 2, 3]})"), "a", "maxItems");
  EXPECT_PASSES(Check(schema, R"({"a": "not an array"})"));
  EXPECT_PASSES(ParseError(R"({"minItems": {"$numberDouble": "2.0"}})"));
  EXPECT_FAILS(ParseError(R"({"minItems": 1.5})"), "minItems", "non-negative integer");
  EXPECT_FAILS(ParseError(R"({"maxItems": "2"})"), "maxItems", "non-negative integer");
}

TEST(JsonSchemaTest, UniqueItems) {
  const char* schema = R"({"properties": {"a": {"uniqueItems": true}}})";
  EXPECT_PASSES(Check(schema, R"({"a": [1, "1", {"x": 1}, {"x": 2}, [1], null]})"));
  EXPECT_FAILS(Check(schema, R"({"a": ["x", "y", "x"]})"), "a.2", "uniqueItems");
  EXPECT_FAILS(Check(schema, R"({"a": [{"x": [1, 2]}, {"x": [1, 2]}]})"), "a.1", "uniqueItems");
  // Numbers compare by value across types, as in MongoDB.
  EXPECT_FAILS(Check(schema, R"({"a": [1, {"$numberDouble": "1.0"}]})"), "a.1", "uniqueItems");
  EXPECT_PASSES(Check(R"({"properties": {"a": {"uniqueItems": false}}})", R"({"a": [1, 1]})"));
  EXPECT_FAILS(ParseError(R"({"uniqueItems": 1})"), "uniqueItems", "boolean");
}

// ---- numbers --------------------------------------------------------------------------------

TEST(JsonSchemaTest, MinimumAndMaximumInclusive) {
  const char* schema = R"({"properties": {"n": {"minimum": 0, "maximum": 10}}})";
  EXPECT_PASSES(Check(schema, R"({"n": 0})"));
  EXPECT_PASSES(Check(schema, R"({"n": 10})"));
  EXPECT_PASSES(Check(schema, R"({"n": {"$numberDecimal": "10.00"}})"));
  EXPECT_FAILS(Check(schema, R"({"n": -1})"), "n", "minimum: -1 is less than 0");
  EXPECT_FAILS(Check(schema, R"({"n": {"$numberLong": "11"}})"), "n", "maximum");
  EXPECT_FAILS(Check(schema, R"({"n": {"$numberDecimal": "10.000000000000000000000000001"}})"), "n",
               "maximum");
  EXPECT_FAILS(Check(schema, R"({"n": {"$numberDouble": "-0.5"}})"), "n", "minimum");
  // Only numbers are constrained.
  EXPECT_PASSES(Check(schema, R"({"n": "-5"})"));
}

TEST(JsonSchemaTest, ExclusiveBounds) {
  const char* schema = R"({"properties": {"n": {"minimum": 0, "exclusiveMinimum": true,
      "maximum": 1, "exclusiveMaximum": true}}})";
  EXPECT_PASSES(Check(schema, R"({"n": 0.5})"));
  EXPECT_FAILS(Check(schema, R"({"n": 0})"), "n", "minimum: 0 is less than or equal to 0");
  EXPECT_FAILS(Check(schema, R"({"n": {"$numberDecimal": "1"}})"), "n", "maximum");
  EXPECT_FAILS(ParseError(R"({"exclusiveMinimum": true})"), "exclusiveMinimum", "requires minimum");
  EXPECT_FAILS(ParseError(R"({"maximum": 1, "exclusiveMaximum": 1})"), "exclusiveMaximum",
               "boolean");
  EXPECT_FAILS(ParseError(R"({"minimum": "0"})"), "minimum", "must be a number");
}

TEST(JsonSchemaTest, BoundsCompareExactlyAcrossNumericTypes) {
  // 2^53 + 1 is a long no double can hold; it is still above the double 2^53.
  EXPECT_PASSES(Check(R"({"properties": {"n": {"minimum": {"$numberDouble": "9007199254740992"},
                          "exclusiveMinimum": true}}})",
                      R"({"n": {"$numberLong": "9007199254740993"}})"));
  // The double nearest 0.1 is 0.1000000000000000055...: above the decimal 0.1.
  const char* decimal_max = R"({"properties": {"n": {"maximum": {"$numberDecimal": "0.1"}}}})";
  EXPECT_FAILS(Check(decimal_max, R"({"n": {"$numberDouble": "0.1"}})"), "n",
               "maximum: double 0.1 is greater than decimal 0.1");
  EXPECT_PASSES(Check(decimal_max, R"({"n": {"$numberDecimal": "0.10"}})"));
  EXPECT_PASSES(Check(decimal_max, R"({"n": {"$numberDouble": "0.09999999"}})"));
  // Decimals far outside the range of doubles and longs.
  const char* big = R"({"properties": {"n": {"maximum": {"$numberLong": "9223372036854775807"}}}})";
  EXPECT_FAILS(Check(big, R"({"n": {"$numberDecimal": "9223372036854775808"}})"), "n", "maximum");
  EXPECT_PASSES(Check(big, R"({"n": {"$numberDecimal": "-1E+6000"}})"));
  EXPECT_FAILS(Check(big, R"({"n": {"$numberDouble": "Infinity"}})"), "n", "maximum");
  // NaN is in no range.
  EXPECT_FAILS(Check(big, R"({"n": {"$numberDouble": "NaN"}})"), "n", "maximum");
  EXPECT_FAILS(
      Check(R"({"properties": {"n": {"minimum": 0}}})", R"({"n": {"$numberDecimal": "NaN"}})"), "n",
      "minimum");
}

TEST(JsonSchemaTest, MultipleOf) {
  const char* five = R"({"properties": {"n": {"multipleOf": 5}}})";
  EXPECT_PASSES(Check(five, R"({"n": 10})"));
  EXPECT_PASSES(Check(five, R"({"n": 0})"));
  EXPECT_PASSES(Check(five, R"({"n": {"$numberLong": "-9223372036854775805"}})"));
  EXPECT_PASSES(Check(five, R"({"n": {"$numberDecimal": "1.5E+3"}})"));
  EXPECT_FAILS(Check(five, R"({"n": 7})"), "n", "multipleOf: 7 is not a multiple of 5");
  EXPECT_FAILS(Check(five, R"({"n": 10.5})"), "n", "multipleOf");
  // Decimal arithmetic, as MongoDB does it: doubles are read to 15 significant digits.
  const char* tenth = R"({"properties": {"n": {"multipleOf": 0.1}}})";
  EXPECT_PASSES(Check(tenth, R"({"n": 0.3})"));
  EXPECT_PASSES(Check(tenth, R"({"n": {"$numberDecimal": "12.5"}})"));
  EXPECT_FAILS(Check(tenth, R"({"n": {"$numberDecimal": "12.55"}})"), "n", "multipleOf");
  const char* cents = R"({"properties": {"n": {"multipleOf": {"$numberDecimal": "0.01"}}}})";
  EXPECT_PASSES(Check(cents, R"({"n": {"$numberDecimal": "-19.99"}})"));
  EXPECT_FAILS(Check(cents, R"({"n": {"$numberDecimal": "19.999"}})"), "n", "multipleOf");
  EXPECT_FAILS(Check(cents, R"({"n": {"$numberDouble": "Infinity"}})"), "n", "multipleOf");
  EXPECT_FAILS(ParseError(R"({"multipleOf": 0})"), "multipleOf", "positive");
  EXPECT_FAILS(ParseError(R"({"multipleOf": -2})"), "multipleOf", "positive");
  EXPECT_FAILS(ParseError(R"({"multipleOf": "2"})"), "multipleOf", "number");
}

// ---- strings --------------------------------------------------------------------------------

TEST(JsonSchemaTest, LengthsCountCodePoints) {
  const char* schema = R"({"properties": {"s": {"minLength": 2, "maxLength": 5}}})";
  EXPECT_PASSES(Check(schema, R"({"s": "héllo"})"));  // 6 bytes, 5 code points
  EXPECT_PASSES(Check(schema, R"({"s": "日本"})"));   // 6 bytes, 2 code points
  EXPECT_PASSES(Check(schema, "{\"s\": \"\xF0\x9F\x98\x80\xF0\x9F\x98\x80\"}"));  // 2 emoji
  EXPECT_FAILS(Check(schema, R"({"s": "é"})"), "s", "minLength: 1 characters, at least 2");
  EXPECT_FAILS(Check(schema, R"({"s": "ééééééé"})"), "s", "maxLength: 7 characters");
  EXPECT_PASSES(Check(schema, R"({"s": 1})"));
  EXPECT_FAILS(ParseError(R"({"maxLength": -1})"), "maxLength", "non-negative integer");
}

TEST(JsonSchemaTest, PatternSearchesWithEcmaScriptSyntax) {
  const char* schema = R"({"properties": {"p": {"pattern": "^[a-z0-9_]{1,32}$"},
      "q": {"pattern": "\\d+"}}})";
  EXPECT_PASSES(Check(schema, R"({"p": "telegram", "q": "abc123def"})"));
  EXPECT_FAILS(Check(schema, R"({"p": "Telegram"})"), "p",
               R"(pattern: does not match "^[a-z0-9_]{1,32}$")");
  EXPECT_FAILS(Check(schema, R"({"q": "none"})"), "q", "pattern");
  EXPECT_PASSES(Check(schema, R"({"p": 5})"));
  EXPECT_FAILS(ParseError(R"({"properties": {"p": {"pattern": "(unclosed"}}})"),
               "properties.p.pattern", "invalid regular expression");
  EXPECT_FAILS(ParseError(R"({"pattern": 1})"), "pattern", "must be a string");
}

// ---- enum -----------------------------------------------------------------------------------

TEST(JsonSchemaTest, EnumComparesBsonValues) {
  const char* schema = R"({"properties": {
      "s": {"enum": ["a", "b", null]},
      "n": {"enum": [1, {"$numberDecimal": "2.5"}]},
      "o": {"enum": [{"k": [1, 2]}]}}})";
  EXPECT_PASSES(Check(schema, R"({"s": "a", "n": 1, "o": {"k": [1, 2]}})"));
  EXPECT_PASSES(Check(schema, R"({"s": null})"));
  EXPECT_FAILS(Check(schema, R"({"s": "c"})"), "s", R"(enum: "c" is not one of)");
  EXPECT_FAILS(Check(schema, R"({"s": {"$undefined": true}})"), "s", "enum");
  EXPECT_FAILS(Check(schema, R"({"s": ["a"]})"), "s", "enum");
  // Numbers are equal by value whatever their BSON type (MongoDB's rule).
  EXPECT_PASSES(Check(schema, R"({"n": {"$numberDouble": "1.0"}})"));
  EXPECT_PASSES(Check(schema, R"({"n": {"$numberLong": "1"}})"));
  EXPECT_PASSES(Check(schema, R"({"n": 2.5})"));
  EXPECT_FAILS(Check(schema, R"({"n": "1"})"), "n", "enum");
  // Documents are equal field by field, in order.
  EXPECT_FAILS(Check(schema, R"({"o": {"k": [2, 1]}})"), "o", "enum");
  EXPECT_FAILS(Check(schema, R"({"o": {"k": [1, 2], "x": 1}})"), "o", "enum");
  EXPECT_FAILS(ParseError(R"({"enum": []})"), "enum", "empty");
  EXPECT_FAILS(ParseError(R"({"enum": "a"})"), "enum", "array");
  EXPECT_FAILS(ParseError(R"({"enum": ["a", "a"]})"), "enum", "twice");
}

// ---- combinators ------------------------------------------------------------------------------

TEST(JsonSchemaTest, AllOf) {
  const char* schema = R"({"properties": {"v": {"allOf": [{"bsonType": "int"}, {"minimum": 3}]}}})";
  EXPECT_PASSES(Check(schema, R"({"v": 4})"));
  EXPECT_FAILS(Check(schema, R"({"v": 2})"), "v", "minimum");
  EXPECT_FAILS(Check(schema, R"({"v": 4.5})"), "v", "bsonType");
  EXPECT_FAILS(ParseError(R"({"allOf": []})"), "allOf", "empty");
  EXPECT_FAILS(ParseError(R"({"allOf": [1]})"), "allOf.0", "must be an object");
}

TEST(JsonSchemaTest, AnyOf) {
  const char* schema =
      R"({"properties": {"v": {"anyOf": [{"bsonType": "string"}, {"bsonType": "int"}]}}})";
  EXPECT_PASSES(Check(schema, R"({"v": "x"})"));
  EXPECT_PASSES(Check(schema, R"({"v": 1})"));
  EXPECT_FAILS(Check(schema, R"({"v": true})"), "v", "anyOf: matches none of the 2 schemas");
}

TEST(JsonSchemaTest, OneOf) {
  const char* schema =
      R"({"properties": {"v": {"oneOf": [{"bsonType": "number"}, {"bsonType": "int"}]}}})";
  EXPECT_PASSES(Check(schema, R"({"v": 1.5})"));
  EXPECT_FAILS(Check(schema, R"({"v": 1})"), "v", "oneOf: matches 2 of the 2 schemas");
  EXPECT_FAILS(Check(schema, R"({"v": "x"})"), "v", "oneOf: matches 0");
}

TEST(JsonSchemaTest, Not) {
  const char* schema = R"({"properties": {"v": {"not": {"bsonType": "null"}}}})";
  EXPECT_PASSES(Check(schema, R"({"v": 0})"));
  EXPECT_FAILS(Check(schema, R"({"v": null})"), "v", "not:");
  EXPECT_FAILS(ParseError(R"({"not": true})"), "not", "must be an object");
}

TEST(JsonSchemaTest, TitleAndDescriptionMustBeStrings) {
  EXPECT_PASSES(ParseError(R"({"title": "t", "description": "d"})"));
  EXPECT_FAILS(ParseError(R"({"properties": {"a": {"description": 1}}})"),
               "properties.a.description", "must be a string");
  EXPECT_FAILS(ParseError(R"({"title": null})"), "title", "must be a string");
}

// ---- refused keywords -------------------------------------------------------------------------

TEST(JsonSchemaTest, KeywordsMongoDbDoesNotSupportAreRefused) {
  for (const char* keyword : {"$ref", "$schema", "default", "definitions", "format", "id"}) {
    std::string json = std::string(R"({"properties": {"wallets": {"items": {"properties":
        {"address": {"bsonType": "string", ")") +
                       keyword + R"(": "x"}}}}}})";
    Status s = ParseError(json);
    EXPECT_FAILS(s, std::string("properties.wallets.items.properties.address.") + keyword,
                 "not supported");
  }
  EXPECT_FAILS(ParseError(R"({"bsonTyp": "object"})"), "bsonTyp", "unknown keyword");
  EXPECT_FAILS(ParseError(R"({"encrypt": {}})"), "encrypt", "not supported");
  EXPECT_FAILS(ParseError(R"({"properties": {"a": {"default": true}}})"), "properties.a.default",
               "not supported");
}

TEST(JsonSchemaTest, MalformedKeywordValuesAreRefusedWithTheirSchemaPath) {
  EXPECT_FAILS(ParseError(R"({"properties": 5})"), "properties", "must be an object");
  EXPECT_FAILS(ParseError(R"({"properties": {"a": 5}})"), "properties.a", "must be an object");
  EXPECT_FAILS(ParseError(R"({"properties": {"a": {"items": {"minLength": "3"}}}})"),
               "properties.a.items.minLength", "non-negative integer");
  EXPECT_FAILS(ParseError(R"({"additionalProperties": {"bsonType": "nope"}})"),
               "additionalProperties.bsonType", "unknown type name");
  EXPECT_FAILS(ParseError(R"({"anyOf": [{}, {"oneOf": [{"format": "x"}]}]})"),
               "anyOf.1.oneOf.0.format", "not supported");
  EXPECT_FAILS(ParseError(R"({"not": {"enum": []}})"), "not.enum", "empty");
  EXPECT_FAILS(ParseError(R"({"minLength": 1, "minLength": 2})"), "minLength", "twice");
}

TEST(JsonSchemaTest, ParseRefusesMalformedJson) {
  Result<JsonSchema> schema = JsonSchema::ParseJson(R"({"bsonType": )");
  EXPECT_TRUE(schema.status().IsInvalidArgument());
}

// ---- results ----------------------------------------------------------------------------------

TEST(JsonSchemaTest, ValidateAllCollectsEveryErrorUpToTheCap) {
  JsonSchema schema = MustParse(R"({"required": ["a", "b"], "properties": {
      "c": {"bsonType": "string"}, "d": {"items": {"bsonType": "int"}}}})");
  Document doc = Doc(R"({"c": 1, "d": [1, "x", "y"]})");
  std::vector<Status> errors = schema.ValidateAll(doc.view());
  ASSERT_EQ(errors.size(), 5u);
  std::vector<std::string> fields;
  for (const Status& e : errors) {
    EXPECT_TRUE(e.IsInvalidArgument());
    fields.push_back(e.field());
  }
  EXPECT_EQ(fields, (std::vector<std::string>{"c", "d.1", "d.2", "a", "b"}));
  EXPECT_EQ(schema.ValidateAll(doc.view(), 2).size(), 2u);
  EXPECT_TRUE(schema.ValidateAll(doc.view(), 0).empty());
  EXPECT_EQ(schema.Validate(doc.view()).field(), "c");
  Document valid = Doc(R"({"a": 1, "b": 2})");
  EXPECT_TRUE(schema.ValidateAll(valid.view()).empty());
}

TEST(JsonSchemaTest, EmptySchemaAcceptsEverything) {
  EXPECT_PASSES(Check("{}", R"({"a": [1, {"b": null}]})"));
}

TEST(JsonSchemaTest, MovedSchemaStillValidates) {
  JsonSchema a = MustParse(R"({"required": ["x"]})");
  JsonSchema b = std::move(a);
  Document empty = Doc("{}");
  EXPECT_FAILS(b.Validate(empty.view()), "x", "required");
}

TEST(JsonSchemaTest, ConcurrentValidationIsSafe) {
  JsonSchema schema = MustParse(R"({"properties": {"a": {"items": {"pattern": "^x+$",
      "enum": ["x", "xx"]}}}})");
  Document good = Doc(R"({"a": ["x", "xx"]})");
  Document bad = Doc(R"({"a": ["x", "xxx"]})");
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        if (!schema.Validate(good.view()).ok()) failures++;
        if (schema.Validate(bad.view()).field() != "a.1") failures++;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace noema
