#include "server/request_body.h"

namespace noema::server {
namespace {

size_t CountCodePoints(std::string_view text) {
  size_t count = 0;
  for (unsigned char c : text) {
    if ((c & 0xC0) != 0x80) ++count;
  }
  return count;
}

// Parses JSON (relaxed Extended JSON) into BSON; errors name the body.
Result<Document> ParseJson(std::string_view text) {
  Result<Document> parsed = Document::FromJson(text);
  if (!parsed.ok()) return Status::InvalidArgument(parsed.status().message(), "body");
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
  if (CountCodePoints(*value) > chars_max) {
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
  if (auto oid = body_.GetObjectId(name); oid.ok()) return std::optional<ObjectId>(*oid);
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
    NOEMA_ASSIGN_OR_RETURN(Money m, Money::Parse(bson_iter_utf8(&*iter, nullptr), field));
    return std::optional<Money>(m);
  }
  if (BSON_ITER_HOLDS_DECIMAL128(&*iter)) {
    bson_decimal128_t dec;
    bson_iter_decimal128(&*iter, &dec);
    NOEMA_ASSIGN_OR_RETURN(Money m, Money::FromDecimal128(dec, field));
    return std::optional<Money>(m);
  }
  if (BSON_ITER_HOLDS_INT32(&*iter) || BSON_ITER_HOLDS_INT64(&*iter)) {
    NOEMA_ASSIGN_OR_RETURN(Money m,
                           Money::Parse(std::to_string(bson_iter_as_int64(&*iter)), field));
    return std::optional<Money>(m);
  }
  return Status::InvalidArgument(
      "expected a decimal string such as \"12.50\" (binary floating point is refused)", field);
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
  if (BSON_ITER_HOLDS_DATE_TIME(&*iter)) {
    return std::optional<Timestamp>(Timestamp::FromMillis(bson_iter_date_time(&*iter)));
  }
  if (!BSON_ITER_HOLDS_UTF8(&*iter)) {
    return Status::InvalidArgument("expected an ISO-8601 time string", FieldPath(name));
  }
  NOEMA_ASSIGN_OR_RETURN(Timestamp t,
                         Timestamp::ParseIso8601(bson_iter_utf8(&*iter, nullptr), FieldPath(name)));
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
