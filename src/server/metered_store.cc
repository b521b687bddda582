#include "server/metered_store.h"

#include <chrono>

namespace noema::server {

MeteredStore::MeteredStore(Store* store, Metrics* metrics) : store_(store), metrics_(metrics) {
  metrics_->Describe("noema_store_operation_duration_seconds", "histogram",
                     "Store units of work by operation and outcome, retries included");
}

template <typename Fn>
Status MeteredStore::Timed(std::string_view op, Fn&& fn) {
  const auto started = std::chrono::steady_clock::now();
  Status status = fn();
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - started;
  const std::string outcome = status.ok() ? "ok" : std::string(StatusCodeName(status.code()));
  metrics_->Observe("noema_store_operation_duration_seconds",
                    "op=\"" + std::string(op) + "\",outcome=" + LabelValue(outcome), took.count());
  return status;
}

Status MeteredStore::RunTransaction(const TransactionFn& fn, const TransactionOptions& options) {
  return Timed(options.ledger ? "ledger_transaction" : "transaction",
               [&] { return store_->RunTransaction(fn, options); });
}

Status MeteredStore::RunReadOnly(const TransactionFn& fn) {
  return Timed("read", [&] { return store_->RunReadOnly(fn); });
}

Status MeteredStore::InsertMany(Collection collection, const std::vector<Document>& docs,
                                std::vector<Status>* results) {
  return Timed("insert_many", [&] { return store_->InsertMany(collection, docs, results); });
}

Status MeteredStore::Ping() {
  return Timed("ping", [&] { return store_->Ping(); });
}

}  // namespace noema::server
