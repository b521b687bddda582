// MeteredStore: a Store that forwards every call to another Store and observes how long
// each unit of work took in the histogram noema_store_operation_duration_seconds{op,
// outcome} (op: transaction, ledger_transaction, read, insert_many, ping; outcome: ok or
// the status code's name). `noema serve` wraps its store in one, so /metrics shows the
// store's latency apart from the HTTP layer's.
//
// Thread-safety: as safe as the wrapped Store (Metrics is thread-safe).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "noema/store.h"
#include "server/metrics.h"

namespace noema::server {

class MeteredStore final : public Store {
 public:
  // REQUIRES: `store` and `metrics` outlive this object.
  MeteredStore(Store* store, Metrics* metrics);

  std::string_view kind() const override { return store_->kind(); }
  Result<std::vector<std::string>> Init() override { return store_->Init(); }
  Status RunTransaction(const TransactionFn& fn, const TransactionOptions& options) override;
  Status RunReadOnly(const TransactionFn& fn) override;
  Status InsertMany(Collection collection, const std::vector<Document>& docs,
                    std::vector<Status>* results) override;
  // The load's batches are not observed one by one: it is the store's own bulk path.
  Result<std::unique_ptr<BulkLoad>> BeginBulkLoad(Collection collection) override {
    return store_->BeginBulkLoad(collection);
  }
  Status Ping() override;
  std::vector<StoreCounter> Counters() const override { return store_->Counters(); }
  void Close() override { store_->Close(); }

 private:
  template <typename Fn>
  Status Timed(std::string_view op, Fn&& fn);

  Store* store_;
  Metrics* metrics_;
};

}  // namespace noema::server
