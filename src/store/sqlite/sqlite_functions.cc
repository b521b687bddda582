#include "store/sqlite/sqlite_functions.h"

#include <cstdlib>
#include <string_view>

#include "store/sqlite/document_match.h"
#include "store/sqlite/sqlite_connection.h"
#include "store/sqlite/sqlite_query.h"

namespace noema::sqlite {
namespace {

// The document argument as a BSON view; false (with the SQL error set) when it is not one.
bool DocumentArgument(sqlite3_context* context, sqlite3_value* value, bson_t* out) {
  const void* data = sqlite3_value_blob(value);
  int size = sqlite3_value_bytes(value);
  if (data == nullptr || size < 5 ||
      !bson_init_static(out, static_cast<const uint8_t*>(data), static_cast<size_t>(size))) {
    sqlite3_result_error(context, "stored document is not BSON", -1);
    sqlite3_result_error_code(context, SQLITE_CORRUPT);
    return false;
  }
  return true;
}

void MatchFunction(sqlite3_context* context, int, sqlite3_value** argv) {
  const auto* filter =
      static_cast<const Filter*>(sqlite3_value_pointer(argv[1], kFilterPointerType));
  if (filter == nullptr) {
    sqlite3_result_error(context, "noema_match: no filter bound", -1);
    return;
  }
  bson_t doc;
  if (!DocumentArgument(context, argv[0], &doc)) return;
  sqlite3_result_int(context, MatchesFilter(DocumentView(&doc), *filter) ? 1 : 0);
}

void FieldFunction(sqlite3_context* context, int, sqlite3_value** argv) {
  bson_t doc;
  if (!DocumentArgument(context, argv[0], &doc)) return;
  const unsigned char* path = sqlite3_value_text(argv[1]);
  int path_size = sqlite3_value_bytes(argv[1]);
  if (path == nullptr) {
    sqlite3_result_null(context);
    return;
  }
  auto iter = FirstScalar(
      &doc, std::string_view(reinterpret_cast<const char*>(path), static_cast<size_t>(path_size)));
  if (!iter) {
    sqlite3_result_null(context);
    return;
  }
  if (BSON_ITER_HOLDS_DECIMAL128(&*iter)) {
    bson_decimal128_t decimal;
    bson_iter_decimal128(&*iter, &decimal);
    char text[BSON_DECIMAL128_STRING];
    bson_decimal128_to_string(&decimal, text);
    sqlite3_result_double(context, std::strtod(text, nullptr));
    return;
  }
  auto encoded = EncodeIter(*iter);
  if (!encoded) {
    sqlite3_result_null(context);
    return;
  }
  switch (encoded->type) {
    case SqlType::kNull: sqlite3_result_null(context); break;
    case SqlType::kInteger: sqlite3_result_int64(context, encoded->integer); break;
    case SqlType::kReal: sqlite3_result_double(context, encoded->real); break;
    case SqlType::kText:
      sqlite3_result_text(context, encoded->bytes.data(), static_cast<int>(encoded->bytes.size()),
                          SQLITE_TRANSIENT);
      break;
    case SqlType::kBlob:
      sqlite3_result_blob(context, encoded->bytes.data(), static_cast<int>(encoded->bytes.size()),
                          SQLITE_TRANSIENT);
      break;
  }
}

}  // namespace

Status RegisterDocumentFunctions(sqlite3* db) {
  int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;
  int rc = sqlite3_create_function_v2(db, "noema_match", 2, flags, nullptr, MatchFunction, nullptr,
                                      nullptr, nullptr);
  if (rc == SQLITE_OK) {
    rc = sqlite3_create_function_v2(db, "noema_field", 2, flags, nullptr, FieldFunction, nullptr,
                                    nullptr, nullptr);
  }
  if (rc != SQLITE_OK) return ErrorStatus(rc, db, "registering SQL functions");
  return Status::Ok();
}

}  // namespace noema::sqlite
