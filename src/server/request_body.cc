#include "server/request_body.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "noema/utf8.h"

namespace noema::server {
namespace {

// The HTTP API takes plain JSON (API.md: "Plain JSON, not Extended JSON"). libbson's
// parser reads relaxed Extended JSON ({"$date": ...} becomes a BSON date), keeps a key
// given twice (and readers would take the first, a proxy or validator perhaps the last),
// and stops after the first value. So a parsed body is also held to these rules, each
// refused with the path of the offending member:
//   - only JSON's types: object, array, string, number, true/false, null;
//   - each key once per object, no empty key, and no key starting with `$` (MongoDB's
//     operators; the stores must agree on what they hold);
//   - no U+0000 in a string (fields are read as C strings in places, where a NUL would
//     silently cut the value short: "2\u0000junk" read as "2").
Status CheckPlainJson(const uint8_t* data, uint32_t len, bool is_array, const std::string& path) {
  bson_t doc;
  if (!bson_init_static(&doc, data, len)) return Status::InvalidArgument("malformed JSON", "body");
  bson_iter_t iter;
  bson_iter_init(&iter, &doc);
  std::vector<std::string_view> keys;
  while (bson_iter_next(&iter)) {
    std::string_view key(bson_iter_key(&iter), bson_iter_key_len(&iter));
    // Built only for an error or a nested value: this runs over every event body.
    auto member = [&] { return path.empty() ? std::string(key) : path + "." + std::string(key); };
    if (!is_array) {
      if (std::find(keys.begin(), keys.end(), key) != keys.end()) {
        return Status::InvalidArgument("the key is given more than once in its object", member());
      }
      keys.push_back(key);
      if (key.empty()) {
        // MongoDB's driver refuses documents with an empty key (the embedded store would
        // keep them): refused here so that both stores hold the same.
        return Status::InvalidArgument("an empty key is not accepted",
                                       path.empty() ? "body" : path);
      }
      if (key.starts_with('$')) {
        return Status::InvalidArgument(
            "keys starting with $ are reserved (plain JSON only: no Extended JSON)", member());
      }
    }
    switch (bson_iter_type(&iter)) {
      case BSON_TYPE_UTF8: {
        uint32_t size = 0;
        const char* text = bson_iter_utf8(&iter, &size);
        if (std::memchr(text, 0, size) != nullptr) {
          return Status::InvalidArgument("a string may not contain U+0000", member());
        }
        break;
      }
      case BSON_TYPE_DOCUMENT:
      case BSON_TYPE_ARRAY: {
        uint32_t size = 0;
        const uint8_t* sub = nullptr;
        const bool array = BSON_ITER_HOLDS_ARRAY(&iter);
        if (array) {
          bson_iter_array(&iter, &size, &sub);
        } else {
          bson_iter_document(&iter, &size, &sub);
        }
        NOEMA_RETURN_IF_ERROR(CheckPlainJson(sub, size, array, member()));
        break;
      }
      case BSON_TYPE_DOUBLE:
      case BSON_TYPE_INT32:
      case BSON_TYPE_INT64:
      case BSON_TYPE_BOOL:
      case BSON_TYPE_NULL: break;
      default:
        return Status::InvalidArgument(
            "plain JSON only: Extended JSON values such as {\"$date\": ...} are not accepted",
            member());
    }
  }
  return Status::Ok();
}

// Money in a request is a decimal string of the API's one form (OpenAPI `Money`):
// -?[0-9]+(\.[0-9]{1,8})? — Money::Parse alone would also read "1e2", "+1", "1." and
// ".5" (the forms of stored Decimal128 text), which clients must not depend on.
Status CheckMoneyText(std::string_view text, const std::string& field) {
  size_t pos = text.starts_with('-') ? 1 : 0;
  const size_t integer_start = pos;
  while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos;
  bool ok = pos > integer_start;
  if (ok && pos < text.size()) {
    ok = text[pos] == '.';
    const size_t fraction_start = ++pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos;
    ok = ok && pos > fraction_start && pos - fraction_start <= 8 && pos == text.size();
  }
  if (!ok) {
    return Status::InvalidArgument(
        "expected a decimal string such as \"12.50\" (digits, optionally a point and 1 to 8 "
        "more digits)",
        field);
  }
  return Status::Ok();
}

// Parses one JSON object with nothing after it (Document::FromJson), then holds it to
// the plain-JSON rules; errors name the body (or the member).
Result<Document> ParseJson(std::string_view text) {
  Result<Document> parsed = Document::FromJson(text);
  if (!parsed.ok()) return Status::InvalidArgument(parsed.status().message(), "body");
  NOEMA_RETURN_IF_ERROR(CheckPlainJson(parsed->data(), parsed->view().size_bytes(), false, ""));
  return parsed;
}

}  // namespace

Result<Document> ParseJsonBody(const HttpRequest& request, bool empty_ok) {
  std::string_view body = request.body;
  size_t first = body.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) {
    if (empty_ok) return Document();
    return Status::InvalidArgument("expected a JSON object", "body");
  }
  if (body[first] != '{') return Status::InvalidArgument("expected a JSON object", "body");
  return ParseJson(body);
}

BodyReader::BodyReader(DocumentView body, std::string prefix)
    : body_(body), prefix_(std::move(prefix)) {}

std::string BodyReader::FieldPath(std::string_view name) const {
  return prefix_.empty() ? std::string(name) : prefix_ + "." + std::string(name);
}

Result<std::optional<std::string>> BodyReader::OptionalString(std::string_view name,
                                                              size_t chars_max) {
  read_.emplace(name);
  if (!body_.Has(name) || body_.IsNull(name)) return std::optional<std::string>();
  auto value = body_.GetString(name);
  if (!value.ok()) return Status::InvalidArgument("expected a string", FieldPath(name));
  if (Utf8CodePoints(*value) > chars_max) {
    return Status::InvalidArgument("longer than " + std::to_string(chars_max) + " characters",
                                   FieldPath(name));
  }
  return std::optional<std::string>(std::string(*value));
}

Result<std::string> BodyReader::String(std::string_view name, size_t chars_max) {
  NOEMA_ASSIGN_OR_RETURN(auto value, OptionalString(name, chars_max));
  if (!value) return Status::InvalidArgument("required field is missing", FieldPath(name));
  return std::move(*value);
}

Result<std::optional<ObjectId>> BodyReader::OptionalId(std::string_view name) {
  read_.emplace(name);
  if (!body_.Has(name) || body_.IsNull(name)) return std::optional<ObjectId>();
  auto text = body_.GetString(name);
  if (!text.ok()) return Status::InvalidArgument("expected a 24-hex id string", FieldPath(name));
  NOEMA_ASSIGN_OR_RETURN(ObjectId id, ObjectId::Parse(*text, FieldPath(name)));
  return std::optional<ObjectId>(id);
}

Result<ObjectId> BodyReader::Id(std::string_view name) {
  NOEMA_ASSIGN_OR_RETURN(auto value, OptionalId(name));
  if (!value) return Status::InvalidArgument("required field is missing", FieldPath(name));
  return *value;
}

Result<std::optional<Money>> BodyReader::OptionalMoney(std::string_view name) {
  read_.emplace(name);
  auto iter = body_.Find(name);
  if (!iter || BSON_ITER_HOLDS_NULL(&*iter)) return std::optional<Money>();
  std::string field = FieldPath(name);
  if (BSON_ITER_HOLDS_UTF8(&*iter)) {
    uint32_t size = 0;
    const char* text = bson_iter_utf8(&*iter, &size);
    NOEMA_RETURN_IF_ERROR(CheckMoneyText(std::string_view(text, size), field));
    NOEMA_ASSIGN_OR_RETURN(Money m, Money::Parse(std::string_view(text, size), field));
    return std::optional<Money>(m);
  }
  if (BSON_ITER_HOLDS_INT32(&*iter) || BSON_ITER_HOLDS_INT64(&*iter)) {
    NOEMA_ASSIGN_OR_RETURN(Money m,
                           Money::Parse(std::to_string(bson_iter_as_int64(&*iter)), field));
    return std::optional<Money>(m);
  }
  if (BSON_ITER_HOLDS_DOUBLE(&*iter)) {
    // A JSON number with a fraction or an exponent (or beyond int64): the client's value
    // has been through binary floating point, where 0.1 is not 0.1.
    return Status::InvalidArgument(
        "must be a decimal string such as \"12.50\", not a JSON number with a fraction or "
        "an exponent (binary floating point is refused)",
        field);
  }
  return Status::InvalidArgument(
      "must be a decimal string such as \"12.50\" (or a whole JSON number)", field);
}

Result<Money> BodyReader::MoneyAmount(std::string_view name) {
  NOEMA_ASSIGN_OR_RETURN(auto value, OptionalMoney(name));
  if (!value) return Status::InvalidArgument("required field is missing", FieldPath(name));
  return *value;
}

Result<std::optional<int64_t>> BodyReader::OptionalInteger(std::string_view name) {
  read_.emplace(name);
  auto iter = body_.Find(name);
  if (!iter || BSON_ITER_HOLDS_NULL(&*iter)) return std::optional<int64_t>();
  if (BSON_ITER_HOLDS_INT32(&*iter) || BSON_ITER_HOLDS_INT64(&*iter)) {
    return std::optional<int64_t>(bson_iter_as_int64(&*iter));
  }
  return Status::InvalidArgument("expected an integer", FieldPath(name));
}

Result<int64_t> BodyReader::Integer(std::string_view name) {
  NOEMA_ASSIGN_OR_RETURN(auto value, OptionalInteger(name));
  if (!value) return Status::InvalidArgument("required field is missing", FieldPath(name));
  return *value;
}

Result<std::optional<bool>> BodyReader::OptionalBool(std::string_view name) {
  read_.emplace(name);
  auto iter = body_.Find(name);
  if (!iter || BSON_ITER_HOLDS_NULL(&*iter)) return std::optional<bool>();
  if (!BSON_ITER_HOLDS_BOOL(&*iter)) {
    return Status::InvalidArgument("expected true or false", FieldPath(name));
  }
  return std::optional<bool>(bson_iter_bool(&*iter));
}

Result<std::optional<Timestamp>> BodyReader::OptionalTime(std::string_view name) {
  read_.emplace(name);
  auto iter = body_.Find(name);
  if (!iter || BSON_ITER_HOLDS_NULL(&*iter)) return std::optional<Timestamp>();
  if (!BSON_ITER_HOLDS_UTF8(&*iter)) {
    return Status::InvalidArgument("expected an ISO-8601 time string", FieldPath(name));
  }
  uint32_t size = 0;
  const char* text = bson_iter_utf8(&*iter, &size);
  NOEMA_ASSIGN_OR_RETURN(Timestamp t,
                         Timestamp::ParseIso8601(std::string_view(text, size), FieldPath(name)));
  return std::optional<Timestamp>(t);
}

Result<std::optional<Document>> BodyReader::OptionalObject(std::string_view name) {
  read_.emplace(name);
  if (!body_.Has(name) || body_.IsNull(name)) return std::optional<Document>();
  auto sub = body_.GetDocument(name);
  if (!sub.ok()) return Status::InvalidArgument("expected a JSON object", FieldPath(name));
  return std::optional<Document>(sub->Copy());
}

Result<std::optional<Document>> BodyReader::OptionalArray(std::string_view name) {
  read_.emplace(name);
  if (!body_.Has(name) || body_.IsNull(name)) return std::optional<Document>();
  auto sub = body_.GetArray(name);
  if (!sub.ok()) return Status::InvalidArgument("expected a JSON array", FieldPath(name));
  return std::optional<Document>(sub->Copy());
}

Result<std::optional<std::vector<std::string>>> BodyReader::OptionalStringList(
    std::string_view name, size_t items_max) {
  NOEMA_ASSIGN_OR_RETURN(auto array, OptionalArray(name));
  if (!array) return std::optional<std::vector<std::string>>();
  std::vector<std::string> out;
  bson_iter_t iter;
  bson_iter_init(&iter, array->get());
  size_t index = 0;
  while (bson_iter_next(&iter)) {
    std::string field = FieldPath(name) + "." + std::to_string(index++);
    if (index > items_max) {
      return Status::InvalidArgument("more than " + std::to_string(items_max) + " items",
                                     FieldPath(name));
    }
    if (!BSON_ITER_HOLDS_UTF8(&iter)) return Status::InvalidArgument("expected a string", field);
    out.emplace_back(bson_iter_utf8(&iter, nullptr));
  }
  return std::optional<std::vector<std::string>>(std::move(out));
}

Status BodyReader::Finish() const {
  bson_iter_t iter;
  bson_iter_init(&iter, body_.get());
  while (bson_iter_next(&iter)) {
    std::string_view key(bson_iter_key(&iter), bson_iter_key_len(&iter));
    if (read_.find(key) == read_.end()) {
      return Status::InvalidArgument("unknown field", FieldPath(key));
    }
  }
  return Status::Ok();
}

}  // namespace noema::server
