#include "service/analytics_rollup.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>
#include <utility>

#include "noema/utf8.h"
#include "service/event_catalog.h"

namespace noema::service_internal {
namespace {

// The key `name` is counted under in `map` (see kRollupKeysMax): its first
// kRollupKeyBytesMax bytes, cut before a UTF-8 continuation byte; kRollupOtherKey when the
// map is full and does not have it.
template <typename Map>
std::string RollupKey(const Map& map, std::string_view name, size_t keys_max) {
  std::string key(Utf8Prefix(name, kRollupKeyBytesMax));
  if (map.size() >= keys_max && !map.contains(key)) return std::string(kRollupOtherKey);
  return key;
}

void Count(std::map<std::string, int64_t>* counts, std::string_view name, int64_t n = 1) {
  (*counts)[RollupKey(*counts, name, kRollupKeysMax)] += n;
}

// By event type: the catalog's types are always counted by name (the measures read them
// by name, and there are few); only types outside it (--unknown-events accept) share the
// bound, so a client's own types can never push a catalog type into kRollupOtherKey.
void CountType(std::map<std::string, int64_t>* by_type, std::string_view type, int64_t n = 1) {
  if (DefaultEventCatalog().IsKnown(type)) {
    (*by_type)[std::string(type)] += n;
  } else {
    Count(by_type, type, n);
  }
}

GenerationRollup& ServiceRollup(DailyRollup* rollup, std::string_view service) {
  return rollup->generations[RollupKey(rollup->generations, service, kRollupServicesMax)];
}

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

// The rollups are figures for operators, written in the unit of work of the change they
// count: a sum past Money's range must never refuse that change (a credit, a settled
// generation). It stays at the end of the range instead.
Status AddMoney(Money* total, Money amount) {
  Result<Money> sum = total->Add(amount);
  if (sum.ok()) {
    *total = *sum;
  } else {
    *total = Money::FromUnits(amount.IsNegative() ? std::numeric_limits<int64_t>::min()
                                                  : std::numeric_limits<int64_t>::max());
  }
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
  CountType(&rollup->by_type, event_type);
  if (auto platform = OptString(event, "sourcePlatform")) Count(&rollup->by_platform, *platform);
  DocumentView data = event;
  Result<DocumentView> event_data = event.GetDocument("eventData");
  if (!event_data.ok()) return Status::Ok();
  data = *event_data;

  if (event_type == "command_executed") {
    if (auto name = OptString(data, "commandName")) Count(&rollup->commands, *name);
  } else if (event_type == "account_created") {
    auto platform = OptString(data, "platform");
    if (!platform) platform = OptString(event, "sourcePlatform");
    if (platform) Count(&rollup->new_accounts, *platform);
  } else if (event_type == "session_ended") {
    if (auto duration = OptInteger(data, "durationMs")) {
      InsertSorted(&rollup->session_durations_ms, std::max<int64_t>(0, *duration));
    }
  } else if (event_type == "generation_completed" || event_type == "generation_failed") {
    auto service = OptString(data, "serviceName");
    if (!service) return Status::Ok();
    GenerationRollup& g = ServiceRollup(rollup, *service);
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

// Merges counts name by name (by_type: `types`, the catalog's types by name), with
// kRollupOtherKey last (it sorts first, and would otherwise take a place of its own among
// the kRollupKeysMax names).
void MergeCounts(const std::map<std::string, int64_t>& from, std::map<std::string, int64_t>* into,
                 bool types = false) {
  for (const auto& [key, n] : from) {
    if (key == kRollupOtherKey) continue;
    if (types) {
      CountType(into, key, n);
    } else {
      Count(into, key, n);
    }
  }
  if (auto other = from.find(std::string(kRollupOtherKey)); other != from.end()) {
    (*into)[std::string(kRollupOtherKey)] += other->second;
  }
}

}  // namespace

Status MergeRollup(const DailyRollup& from, DailyRollup* into) {
  into->events += from.events;
  MergeCounts(from.by_type, &into->by_type, /*types=*/true);
  MergeCounts(from.by_platform, &into->by_platform);
  MergeCounts(from.commands, &into->commands);
  MergeCounts(from.new_accounts, &into->new_accounts);
  MergeSorted(from.session_durations_ms, &into->session_durations_ms);
  for (const auto& [service, g] : from.generations) {
    GenerationRollup& sum = ServiceRollup(into, service);
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

namespace {

// One pass over a rollup document with bson_iter (no path look-ups): the readers run it on
// tens of thousands of documents per query.

Status Malformed(std::string_view field, std::string_view what) {
  return Status(StatusCode::kDataLoss, "activityDaily document: " + std::string(what),
                std::string(field));
}

std::string_view KeyOf(const bson_iter_t& iter) {
  return {bson_iter_key(&iter), bson_iter_key_len(&iter)};
}

bool IterInteger(const bson_iter_t& iter, int64_t* out) {
  if (BSON_ITER_HOLDS_INT64(&iter)) {
    *out = bson_iter_int64(&iter);
  } else if (BSON_ITER_HOLDS_INT32(&iter)) {
    *out = bson_iter_int32(&iter);
  } else {
    return false;
  }
  return true;
}

Status IterMoney(const bson_iter_t& iter, std::string_view field, Money* out) {
  if (!BSON_ITER_HOLDS_DECIMAL128(&iter)) return Malformed(field, "expected a decimal");
  bson_decimal128_t dec;
  bson_iter_decimal128(&iter, &dec);
  NOEMA_ASSIGN_OR_RETURN(*out, Money::FromDecimal128(dec, field));
  return Status::Ok();
}

Status IterLongs(const bson_iter_t& array, std::string_view field, std::vector<int64_t>* out) {
  if (!BSON_ITER_HOLDS_ARRAY(&array)) return Malformed(field, "expected an array");
  bson_iter_t item;
  if (!bson_iter_recurse(&array, &item)) return Malformed(field, "expected an array");
  while (bson_iter_next(&item)) {
    int64_t value = 0;
    if (!IterInteger(item, &value)) return Malformed(field, "expected a long");
    out->push_back(value);
  }
  return Status::Ok();
}

}  // namespace

namespace {

Status ViewCounts(const bson_iter_t& array, std::string_view field, RollupView::Counts* out) {
  if (!BSON_ITER_HOLDS_ARRAY(&array)) return Malformed(field, "expected an array");
  bson_iter_t item;
  if (!bson_iter_recurse(&array, &item)) return Malformed(field, "expected an array");
  while (bson_iter_next(&item)) {
    bson_iter_t kv;
    if (!BSON_ITER_HOLDS_DOCUMENT(&item) || !bson_iter_recurse(&item, &kv)) {
      return Malformed(field, "expected {k, n}");
    }
    std::string_view name;
    int64_t n = 0;
    bool has_name = false;
    bool has_n = false;
    while (bson_iter_next(&kv)) {
      std::string_view key = KeyOf(kv);
      if (key == "k" && BSON_ITER_HOLDS_UTF8(&kv)) {
        uint32_t len = 0;
        const char* text = bson_iter_utf8(&kv, &len);
        name = std::string_view(text, len);
        has_name = true;
      } else if (key == "n") {
        has_n = IterInteger(kv, &n);
      }
    }
    if (!has_name || !has_n) return Malformed(field, "expected {k, n}");
    out->emplace_back(name, n);
  }
  return Status::Ok();
}

Status ViewGenerations(const bson_iter_t& array, RollupView* out) {
  constexpr std::string_view kField = "generations";
  if (!BSON_ITER_HOLDS_ARRAY(&array)) return Malformed(kField, "expected an array");
  bson_iter_t item;
  if (!bson_iter_recurse(&array, &item)) return Malformed(kField, "expected an array");
  while (bson_iter_next(&item)) {
    bson_iter_t field;
    if (!BSON_ITER_HOLDS_DOCUMENT(&item) || !bson_iter_recurse(&item, &field)) {
      return Malformed(kField, "expected a document");
    }
    if (out->generations.size() == out->generation_count) out->generations.emplace_back();
    RollupView::Generation& g = out->generations[out->generation_count++];
    g.durations_ms.clear();
    unsigned seen = 0;
    while (bson_iter_next(&field)) {
      std::string_view key = KeyOf(field);
      bool ok = true;
      if (key == "serviceName" && BSON_ITER_HOLDS_UTF8(&field)) {
        uint32_t len = 0;
        const char* text = bson_iter_utf8(&field, &len);
        g.service = std::string_view(text, len);
        seen |= 1u << 0;
      } else if (key == "succeeded") {
        ok = IterInteger(field, &g.succeeded);
        seen |= 1u << 1;
      } else if (key == "failed") {
        ok = IterInteger(field, &g.failed);
        seen |= 1u << 2;
      } else if (key == "timedOut") {
        ok = IterInteger(field, &g.timed_out);
        seen |= 1u << 3;
      } else if (key == "cancelled") {
        ok = IterInteger(field, &g.cancelled);
        seen |= 1u << 4;
      } else if (key == "durationMsTotal") {
        ok = IterInteger(field, &g.duration_ms_total);
        seen |= 1u << 5;
      } else if (key == "durationsMs") {
        NOEMA_RETURN_IF_ERROR(IterLongs(field, kField, &g.durations_ms));
        seen |= 1u << 6;
      } else if (key == "costUsd") {
        NOEMA_RETURN_IF_ERROR(IterMoney(field, kField, &g.cost));
        seen |= 1u << 7;
      }
      if (!ok) return Malformed(kField, "expected an integer in " + std::string(key));
    }
    if (seen != 0xffu) return Malformed(kField, "a service entry lacks a field");
  }
  return Status::Ok();
}

}  // namespace

const std::array<std::string_view, RollupView::kKnownTypes>& RollupView::KnownTypeNames() {
  static const std::array<std::string_view, kKnownTypes> names = {
      "session_started",           "command_executed",
      "menu_item_clicked",         "user_facing_error_displayed",
      "command_failed_validation", "generation_requested",
      "generation_completed"};
  return names;
}

Status ReadRollupView(DocumentView doc, unsigned parts, RollupView* out) {
  RollupView& r = *out;
  r.known.fill(0);
  r.by_type.clear();
  r.by_platform.clear();
  r.commands.clear();
  r.new_accounts.clear();
  r.session_durations_ms.clear();
  r.generation_count = 0;
  r.credit_added = Money::Zero();
  r.credit_spent = Money::Zero();
  bson_iter_t iter;
  if (!bson_iter_init(&iter, doc.get())) return Malformed("", "not a document");
  unsigned seen = 0;  // day, masterAccountId, events, creditAddedUsd, creditSpentUsd
  while (bson_iter_next(&iter)) {
    std::string_view key = KeyOf(iter);
    if (key == "day") {
      if (!BSON_ITER_HOLDS_DATE_TIME(&iter)) return Malformed(key, "expected a date");
      r.day = DayOf(Timestamp::FromMillis(bson_iter_date_time(&iter)));
      seen |= 1u << 0;
    } else if (key == "masterAccountId") {
      if (!BSON_ITER_HOLDS_OID(&iter)) return Malformed(key, "expected an objectId");
      r.master_account_id = ObjectId(*bson_iter_oid(&iter));
      seen |= 1u << 1;
    } else if (key == "events") {
      if (!IterInteger(iter, &r.events)) return Malformed(key, "expected an integer");
      seen |= 1u << 2;
    } else if (key == "byType") {
      if (parts & kRollupTypes) {
        NOEMA_RETURN_IF_ERROR(ViewCounts(iter, key, &r.by_type));
        const auto& names = RollupView::KnownTypeNames();
        for (const auto& [name, n] : r.by_type) {
          for (size_t i = 0; i < names.size(); ++i) {
            if (name.size() == names[i].size() && name == names[i]) {
              r.known[i] += n;
              break;
            }
          }
        }
      }
    } else if (key == "byPlatform") {
      if (parts & kRollupPlatforms) NOEMA_RETURN_IF_ERROR(ViewCounts(iter, key, &r.by_platform));
    } else if (key == "commands") {
      if (parts & kRollupCommands) NOEMA_RETURN_IF_ERROR(ViewCounts(iter, key, &r.commands));
    } else if (key == "newAccounts") {
      if (parts & kRollupNewAccounts) {
        NOEMA_RETURN_IF_ERROR(ViewCounts(iter, key, &r.new_accounts));
      }
    } else if (key == "sessionDurationsMs") {
      if (parts & kRollupSessions) {
        NOEMA_RETURN_IF_ERROR(IterLongs(iter, key, &r.session_durations_ms));
      }
    } else if (key == "generations") {
      if (parts & kRollupGenerations) NOEMA_RETURN_IF_ERROR(ViewGenerations(iter, &r));
    } else if (key == "creditAddedUsd") {
      if (parts & kRollupCredit) NOEMA_RETURN_IF_ERROR(IterMoney(iter, key, &r.credit_added));
      seen |= 1u << 3;
    } else if (key == "creditSpentUsd") {
      if (parts & kRollupCredit) NOEMA_RETURN_IF_ERROR(IterMoney(iter, key, &r.credit_spent));
      seen |= 1u << 4;
    }
  }
  if ((seen & 0x7u) != 0x7u) return Malformed("", "day, masterAccountId or events missing");
  if ((parts & kRollupCredit) && (seen & 0x18u) != 0x18u) {
    return Malformed("", "creditAddedUsd or creditSpentUsd missing");
  }
  return Status::Ok();
}

Result<DailyRollup> RollupFromDocument(DocumentView doc, unsigned parts) {
  RollupView view;
  NOEMA_RETURN_IF_ERROR(ReadRollupView(doc, parts, &view));
  DailyRollup r;
  r.day = view.day;
  r.master_account_id = view.master_account_id;
  r.events = view.events;
  auto copy = [](const RollupView::Counts& from, std::map<std::string, int64_t>* into) {
    for (const auto& [name, n] : from) (*into)[std::string(name)] += n;
  };
  copy(view.by_type, &r.by_type);
  copy(view.by_platform, &r.by_platform);
  copy(view.commands, &r.commands);
  copy(view.new_accounts, &r.new_accounts);
  r.session_durations_ms = std::move(view.session_durations_ms);
  for (size_t i = 0; i < view.generation_count; ++i) {
    RollupView::Generation& g = view.generations[i];
    GenerationRollup& into = r.generations[std::string(g.service)];
    into.succeeded += g.succeeded;
    into.failed += g.failed;
    into.timed_out += g.timed_out;
    into.cancelled += g.cancelled;
    into.duration_ms_total += g.duration_ms_total;
    if (into.durations_ms.empty()) {
      into.durations_ms = std::move(g.durations_ms);
    } else {
      // A service named twice in one document (not written by this code).
      into.durations_ms.insert(into.durations_ms.end(), g.durations_ms.begin(),
                               g.durations_ms.end());
    }
    NOEMA_RETURN_IF_ERROR(AddMoney(&into.cost, g.cost));
  }
  r.credit_added = view.credit_added;
  r.credit_spent = view.credit_spent;
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
