#include "service/analytics_rollup.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string_view>
#include <utility>

namespace noema::service_internal {
namespace {

void InsertSorted(std::vector<int64_t>* values, int64_t value) {
  if (values->size() >= kRollupDurationsMax) return;
  values->insert(std::upper_bound(values->begin(), values->end(), value), value);
}

std::optional<std::string_view> OptString(DocumentView doc, std::string_view path) {
  Result<std::string_view> value = doc.GetString(path);
  if (!value.ok()) return std::nullopt;
  return *value;
}

std::optional<int64_t> OptInteger(DocumentView doc, std::string_view path) {
  Result<int64_t> value = doc.GetInteger(path);
  if (!value.ok()) return std::nullopt;
  return *value;
}

std::optional<Money> OptMoney(DocumentView doc, std::string_view path) {
  Result<Money> value = doc.GetMoney(path);
  if (!value.ok()) return std::nullopt;
  return *value;
}

Status AddMoney(Money* total, Money amount) {
  NOEMA_ASSIGN_OR_RETURN(*total, total->Add(amount));
  return Status::Ok();
}

void AppendCounts(DocumentBuilder& b, std::string_view key,
                  const std::map<std::string, int64_t>& counts) {
  b.StartArray(key);
  for (const auto& [name, n] : counts) {
    b.StartDocument(b.NextArrayKey()).Append("k", name).Append("n", n).End();
  }
  b.End();
}

void AppendLongs(DocumentBuilder& b, std::string_view key, const std::vector<int64_t>& values) {
  b.StartArray(key);
  for (int64_t v : values) b.Append(b.NextArrayKey(), v);
  b.End();
}

Status ReadCounts(DocumentView doc, std::string_view key, std::map<std::string, int64_t>* out) {
  if (!doc.Has(key)) return Status::Ok();
  NOEMA_ASSIGN_OR_RETURN(DocumentView array, doc.GetArray(key));
  bson_iter_t iter;
  bson_iter_init(&iter, array.get());
  while (bson_iter_next(&iter)) {
    if (!BSON_ITER_HOLDS_DOCUMENT(&iter)) {
      return Status::InvalidArgument("expected {k, n}", std::string(key));
    }
    uint32_t len = 0;
    const uint8_t* data = nullptr;
    bson_iter_document(&iter, &len, &data);
    DocumentView item(data, len);
    NOEMA_ASSIGN_OR_RETURN(std::string_view name, item.GetString("k"));
    NOEMA_ASSIGN_OR_RETURN(int64_t n, item.GetInteger("n"));
    (*out)[std::string(name)] += n;
  }
  return Status::Ok();
}

Status ReadLongs(DocumentView doc, std::string_view key, std::vector<int64_t>* out) {
  NOEMA_ASSIGN_OR_RETURN(DocumentView array, doc.GetArray(key));
  bson_iter_t iter;
  bson_iter_init(&iter, array.get());
  while (bson_iter_next(&iter)) {
    if (BSON_ITER_HOLDS_INT64(&iter)) {
      out->push_back(bson_iter_int64(&iter));
    } else if (BSON_ITER_HOLDS_INT32(&iter)) {
      out->push_back(bson_iter_int32(&iter));
    } else {
      return Status::InvalidArgument("expected a long", std::string(key));
    }
  }
  return Status::Ok();
}

}  // namespace

int64_t DayOf(Timestamp time) {
  int64_t ms = time.millis();
  int64_t day = ms / kMillisPerDay;
  if (ms % kMillisPerDay < 0) --day;
  return day;
}

ObjectId RollupId(int64_t day, const ObjectId& master_account_id) {
  uint8_t hash[crypto_generichash_BYTES_MIN];
  crypto_generichash(hash, sizeof hash, master_account_id.raw().bytes, 12, nullptr, 0);
  bson_oid_t oid;
  const auto day_bits = static_cast<uint32_t>(day);
  for (int i = 0; i < 4; ++i) oid.bytes[i] = static_cast<uint8_t>(day_bits >> (8 * (3 - i)));
  std::memcpy(oid.bytes + 4, hash, 8);
  return ObjectId(oid);
}

ObjectId FirstRollupIdOfDay(int64_t day) {
  bson_oid_t oid;
  std::memset(oid.bytes, 0, sizeof oid.bytes);
  const auto day_bits = static_cast<uint32_t>(day);
  for (int i = 0; i < 4; ++i) oid.bytes[i] = static_cast<uint8_t>(day_bits >> (8 * (3 - i)));
  return ObjectId(oid);
}

Status ApplyEventToRollup(DocumentView event, DailyRollup* rollup) {
  NOEMA_ASSIGN_OR_RETURN(std::string_view type, event.GetString("eventType"));
  std::string event_type(type);
  rollup->events += 1;
  rollup->by_type[event_type] += 1;
  if (auto platform = OptString(event, "sourcePlatform")) {
    rollup->by_platform[std::string(*platform)] += 1;
  }
  DocumentView data = event;
  Result<DocumentView> event_data = event.GetDocument("eventData");
  if (!event_data.ok()) return Status::Ok();
  data = *event_data;

  if (event_type == "command_executed") {
    if (auto name = OptString(data, "commandName")) rollup->commands[std::string(*name)] += 1;
  } else if (event_type == "account_created") {
    auto platform = OptString(data, "platform");
    if (!platform) platform = OptString(event, "sourcePlatform");
    if (platform) rollup->new_accounts[std::string(*platform)] += 1;
  } else if (event_type == "session_ended") {
    if (auto duration = OptInteger(data, "durationMs")) {
      InsertSorted(&rollup->session_durations_ms, std::max<int64_t>(0, *duration));
    }
  } else if (event_type == "generation_completed" || event_type == "generation_failed") {
    auto service = OptString(data, "serviceName");
    if (!service) return Status::Ok();
    GenerationRollup& g = rollup->generations[std::string(*service)];
    if (event_type == "generation_completed") {
      g.succeeded += 1;
    } else {
      std::string_view status = OptString(data, "status").value_or("failed");
      if (status == "timeout") {
        g.timed_out += 1;
      } else if (status == "cancelled_by_user") {
        g.cancelled += 1;
      } else {
        g.failed += 1;
      }
    }
    if (auto duration = OptInteger(data, "durationMs")) {
      int64_t ms = std::max<int64_t>(0, *duration);
      g.duration_ms_total += ms;
      InsertSorted(&g.durations_ms, ms);
    }
    if (auto cost = OptMoney(data, "costUsd")) NOEMA_RETURN_IF_ERROR(AddMoney(&g.cost, *cost));
  } else if (event_type == "credit_added" || event_type == "credit_spent") {
    if (auto amount = OptMoney(data, "amountUsd")) {
      Money magnitude = amount->IsNegative() ? Money::FromUnits(-amount->units()) : *amount;
      NOEMA_RETURN_IF_ERROR(AddMoney(
          event_type == "credit_added" ? &rollup->credit_added : &rollup->credit_spent, magnitude));
    }
  }
  return Status::Ok();
}

namespace {

void MergeSorted(const std::vector<int64_t>& from, std::vector<int64_t>* into) {
  for (int64_t value : from) InsertSorted(into, value);
}

void MergeCounts(const std::map<std::string, int64_t>& from, std::map<std::string, int64_t>* into) {
  for (const auto& [key, n] : from) (*into)[key] += n;
}

}  // namespace

Status MergeRollup(const DailyRollup& from, DailyRollup* into) {
  into->events += from.events;
  MergeCounts(from.by_type, &into->by_type);
  MergeCounts(from.by_platform, &into->by_platform);
  MergeCounts(from.commands, &into->commands);
  MergeCounts(from.new_accounts, &into->new_accounts);
  MergeSorted(from.session_durations_ms, &into->session_durations_ms);
  for (const auto& [service, g] : from.generations) {
    GenerationRollup& sum = into->generations[service];
    sum.succeeded += g.succeeded;
    sum.failed += g.failed;
    sum.timed_out += g.timed_out;
    sum.cancelled += g.cancelled;
    sum.duration_ms_total += g.duration_ms_total;
    MergeSorted(g.durations_ms, &sum.durations_ms);
    NOEMA_RETURN_IF_ERROR(AddMoney(&sum.cost, g.cost));
  }
  NOEMA_RETURN_IF_ERROR(AddMoney(&into->credit_added, from.credit_added));
  return AddMoney(&into->credit_spent, from.credit_spent);
}

Document RollupToDocument(const DailyRollup& rollup) {
  DocumentBuilder b;
  b.Append("_id", RollupId(rollup.day, rollup.master_account_id))
      .Append("day", Timestamp::FromMillis(rollup.day * kMillisPerDay))
      .Append("masterAccountId", rollup.master_account_id)
      .Append("events", rollup.events);
  AppendCounts(b, "byType", rollup.by_type);
  AppendCounts(b, "byPlatform", rollup.by_platform);
  AppendCounts(b, "commands", rollup.commands);
  AppendCounts(b, "newAccounts", rollup.new_accounts);
  AppendLongs(b, "sessionDurationsMs", rollup.session_durations_ms);
  b.StartArray("generations");
  for (const auto& [service, g] : rollup.generations) {
    b.StartDocument(b.NextArrayKey())
        .Append("serviceName", service)
        .Append("succeeded", g.succeeded)
        .Append("failed", g.failed)
        .Append("timedOut", g.timed_out)
        .Append("cancelled", g.cancelled)
        .Append("durationMsTotal", g.duration_ms_total);
    AppendLongs(b, "durationsMs", g.durations_ms);
    b.Append("costUsd", g.cost).End();
  }
  b.End();
  b.Append("creditAddedUsd", rollup.credit_added).Append("creditSpentUsd", rollup.credit_spent);
  return std::move(b).Build();
}

Result<DailyRollup> RollupFromDocument(DocumentView doc, unsigned parts) {
  DailyRollup r;
  NOEMA_ASSIGN_OR_RETURN(Timestamp day, doc.GetDate("day"));
  r.day = DayOf(day);
  NOEMA_ASSIGN_OR_RETURN(r.master_account_id, doc.GetObjectId("masterAccountId"));
  NOEMA_ASSIGN_OR_RETURN(r.events, doc.GetInteger("events"));
  if (parts & kRollupTypes) NOEMA_RETURN_IF_ERROR(ReadCounts(doc, "byType", &r.by_type));
  if (parts & kRollupPlatforms) {
    NOEMA_RETURN_IF_ERROR(ReadCounts(doc, "byPlatform", &r.by_platform));
  }
  if (parts & kRollupCommands) NOEMA_RETURN_IF_ERROR(ReadCounts(doc, "commands", &r.commands));
  if (parts & kRollupNewAccounts) {
    NOEMA_RETURN_IF_ERROR(ReadCounts(doc, "newAccounts", &r.new_accounts));
  }
  if (parts & kRollupSessions) {
    NOEMA_RETURN_IF_ERROR(ReadLongs(doc, "sessionDurationsMs", &r.session_durations_ms));
  }
  if (parts & kRollupGenerations) {
    NOEMA_ASSIGN_OR_RETURN(DocumentView generations, doc.GetArray("generations"));
    bson_iter_t iter;
    bson_iter_init(&iter, generations.get());
    while (bson_iter_next(&iter)) {
      if (!BSON_ITER_HOLDS_DOCUMENT(&iter)) {
        return Status::InvalidArgument("expected a document", "generations");
      }
      uint32_t len = 0;
      const uint8_t* data = nullptr;
      bson_iter_document(&iter, &len, &data);
      DocumentView item(data, len);
      NOEMA_ASSIGN_OR_RETURN(std::string_view service, item.GetString("serviceName"));
      GenerationRollup& g = r.generations[std::string(service)];
      NOEMA_ASSIGN_OR_RETURN(g.succeeded, item.GetInteger("succeeded"));
      NOEMA_ASSIGN_OR_RETURN(g.failed, item.GetInteger("failed"));
      NOEMA_ASSIGN_OR_RETURN(g.timed_out, item.GetInteger("timedOut"));
      NOEMA_ASSIGN_OR_RETURN(g.cancelled, item.GetInteger("cancelled"));
      NOEMA_ASSIGN_OR_RETURN(g.duration_ms_total, item.GetInteger("durationMsTotal"));
      NOEMA_RETURN_IF_ERROR(ReadLongs(item, "durationsMs", &g.durations_ms));
      NOEMA_ASSIGN_OR_RETURN(g.cost, item.GetMoney("costUsd"));
    }
  }
  if (parts & kRollupCredit) {
    NOEMA_ASSIGN_OR_RETURN(r.credit_added, doc.GetMoney("creditAddedUsd"));
    NOEMA_ASSIGN_OR_RETURN(r.credit_spent, doc.GetMoney("creditSpentUsd"));
  }
  return r;
}

Status UpdateRollupInTx(Transaction& tx, DocumentView event) {
  NOEMA_ASSIGN_OR_RETURN(ObjectId user, event.GetObjectId("masterAccountId"));
  NOEMA_ASSIGN_OR_RETURN(Timestamp time, event.GetDate("timestamp"));
  int64_t day = DayOf(time);
  ObjectId id = RollupId(day, user);
  Result<Document> existing = tx.Get(Collection::kActivityDaily, id);
  DailyRollup rollup;
  bool found = existing.ok();
  if (found) {
    NOEMA_ASSIGN_OR_RETURN(rollup, RollupFromDocument(existing->view()));
    if (rollup.master_account_id != user || rollup.day != day) {
      return Status::Internal("activityDaily _id collision for user " + user.ToHex());
    }
  } else if (!existing.status().IsNotFound()) {
    return existing.status();
  } else {
    rollup.day = day;
    rollup.master_account_id = user;
  }
  NOEMA_RETURN_IF_ERROR(ApplyEventToRollup(event, &rollup));
  Document doc = RollupToDocument(rollup);
  if (found) return tx.Replace(Collection::kActivityDaily, id, doc);
  return tx.Insert(Collection::kActivityDaily, doc);
}

}  // namespace noema::service_internal
