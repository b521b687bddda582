// The store-neutral parts of bulk loading: the checks of CheckedBatch, and the default
// Store::BeginBulkLoad (each batch through InsertMany, nothing deferred).
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "noema/schema_catalog.h"
#include "noema/store.h"

namespace noema {
namespace {

// How an empty key is spelled in the path of CheckStorable's error.
constexpr std::string_view kEmptyKeyName = "<empty>";

class InsertManyBulkLoad final : public BulkLoad {
 public:
  InsertManyBulkLoad(Store* store, Collection collection)
      : store_(store), collection_(collection) {}

  Status Insert(const CheckedBatch& batch, std::vector<Status>* results) override {
    if (finished_) return Status::FailedPrecondition("the bulk load is finished");
    if (batch.collection() != collection_) {
      return Status::InvalidArgument("the batch is for another collection", "collection");
    }
    return store_->InsertMany(collection_, batch.docs(), results);
  }

  Status Finish() override {
    finished_ = true;
    return Status::Ok();
  }

 private:
  Store* store_;
  Collection collection_;
  bool finished_ = false;
};

}  // namespace

namespace {

// The dotted path of the first empty key in `doc` (the empty key spelled `<empty>`), or
// nullopt when it has none.
std::optional<std::string> EmptyKeyPath(const bson_t* doc, const std::string& prefix) {
  bson_iter_t iter;
  if (!bson_iter_init(&iter, doc)) return std::nullopt;
  while (bson_iter_next(&iter)) {
    const std::string key(bson_iter_key(&iter), bson_iter_key_len(&iter));
    const std::string path = prefix + (key.empty() ? std::string(kEmptyKeyName) : key);
    if (key.empty()) return path;
    if (!BSON_ITER_HOLDS_DOCUMENT(&iter) && !BSON_ITER_HOLDS_ARRAY(&iter)) continue;
    const uint8_t* data = nullptr;
    uint32_t length = 0;
    if (BSON_ITER_HOLDS_DOCUMENT(&iter)) {
      bson_iter_document(&iter, &length, &data);
    } else {
      bson_iter_array(&iter, &length, &data);
    }
    bson_t child;
    if (!bson_init_static(&child, data, length)) continue;
    if (std::optional<std::string> found = EmptyKeyPath(&child, path + ".")) return found;
  }
  return std::nullopt;
}

}  // namespace

Status CheckStorable(Collection collection, DocumentView doc) {
  if (doc.size_bytes() > kDocumentBytesMax) {
    return Status::ResourceExhausted("the document is larger than " +
                                     std::to_string(kDocumentBytesMax) + " bytes");
  }
  // libmongoc refuses to send a document with an empty key (its client-side check,
  // BSON_VALIDATE_EMPTY_KEYS), and on a bulk insert that one document fails the whole
  // call: both stores refuse it here, one document at a time. libbson's walk finds one;
  // ours then names where it is.
  bson_error_t error;
  if (!bson_validate_with_error(doc.get(), BSON_VALIDATE_EMPTY_KEYS, &error)) {
    std::optional<std::string> path = EmptyKeyPath(doc.get(), "");
    if (path) {
      return Status::InvalidArgument(
          "the document is not storable: an empty key (MongoDB refuses empty field names)", *path);
    }
    return Status::InvalidArgument(std::string("the document is not storable: ") + error.message);
  }
  // An event before 1970-01-01 has no day in the analytics (activityDaily's day numbers
  // are unsigned): refused however it arrives — the API's events, imports, migrations.
  if (collection == Collection::kUserEvents) {
    Result<Timestamp> at = doc.GetDate("timestamp");
    if (at.ok() && at->millis() < 0) {
      return Status::InvalidArgument("an event before 1970-01-01T00:00:00.000Z", "timestamp");
    }
  }
  return Status::Ok();
}

Status CheckDocumentForStore(Collection collection, DocumentView doc) {
  NOEMA_RETURN_IF_ERROR(CheckStorable(collection, doc));
  return ValidatorFor(collection).Validate(doc);
}

Status CheckedBatch::Add(Document* doc) {
  NOEMA_RETURN_IF_ERROR(CheckDocumentForStore(collection_, doc->view()));
  docs_.push_back(std::move(*doc));
  *doc = Document();
  return Status::Ok();
}

Result<std::unique_ptr<BulkLoad>> Store::BeginBulkLoad(Collection collection) {
  return std::unique_ptr<BulkLoad>(new InsertManyBulkLoad(this, collection));
}

}  // namespace noema
