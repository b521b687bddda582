// The store-neutral parts of bulk loading: the checks of CheckedBatch, and the default
// Store::BeginBulkLoad (each batch through InsertMany, nothing deferred).
#include <memory>
#include <string>
#include <utility>

#include "noema/schema_catalog.h"
#include "noema/store.h"

namespace noema {
namespace {

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

Status CheckDocumentForStore(Collection collection, DocumentView doc) {
  if (doc.size_bytes() > kDocumentBytesMax) {
    return Status::ResourceExhausted("the document is larger than " +
                                     std::to_string(kDocumentBytesMax) + " bytes");
  }
  // libmongoc refuses to send a document with an empty key (its client-side check,
  // BSON_VALIDATE_EMPTY_KEYS), and on a bulk insert that one document fails the whole
  // call: both stores refuse it here, one document at a time. The walk is libbson's.
  bson_error_t error;
  if (!bson_validate_with_error(doc.get(), BSON_VALIDATE_EMPTY_KEYS, &error)) {
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
