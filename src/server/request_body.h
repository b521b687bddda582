// Reading a request's plain-JSON body (API.md "Conventions") into typed values, with
// errors that name the field: ids are 24-hex strings, times ISO-8601 strings, money
// decimal strings (integers are accepted too; binary floating point never is), exp
// integers. Unknown fields are refused, so that a typo is an error instead of a silently
// ignored setting. A BodyReader reads what ParseJsonBody returned, which holds JSON's own
// types only (no Extended JSON dates, ObjectIds or decimals).
//
// Thread-safety: one reader per request.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "noema/bson.h"
#include "noema/status.h"
#include "server/http.h"

namespace noema::server {

// Parses the body as one JSON object. An empty body is an empty object when
// `empty_ok`, else InvalidArgument (field "body").
Result<Document> ParseJsonBody(const HttpRequest& request, bool empty_ok = false);

class BodyReader {
 public:
  // `prefix` is prepended to field names in errors ("events.3").
  explicit BodyReader(DocumentView body, std::string prefix = {});

  Result<std::string> String(std::string_view name, size_t chars_max = 1024);
  Result<std::optional<std::string>> OptionalString(std::string_view name, size_t chars_max = 1024);
  Result<ObjectId> Id(std::string_view name);
  Result<std::optional<ObjectId>> OptionalId(std::string_view name);
  Result<Money> MoneyAmount(std::string_view name);
  Result<std::optional<Money>> OptionalMoney(std::string_view name);
  Result<int64_t> Integer(std::string_view name);
  Result<std::optional<int64_t>> OptionalInteger(std::string_view name);
  Result<std::optional<bool>> OptionalBool(std::string_view name);
  Result<std::optional<Timestamp>> OptionalTime(std::string_view name);
  // An embedded object, copied.
  Result<std::optional<Document>> OptionalObject(std::string_view name);
  // An array of strings.
  Result<std::optional<std::vector<std::string>>> OptionalStringList(std::string_view name,
                                                                     size_t items_max = 100);
  // An embedded array, copied (elements unchecked).
  Result<std::optional<Document>> OptionalArray(std::string_view name);

  // InvalidArgument naming the first field that was present but not read.
  Status Finish() const;

  std::string FieldPath(std::string_view name) const;

 private:
  DocumentView body_;
  std::string prefix_;
  std::set<std::string, std::less<>> read_;
};

}  // namespace noema::server
