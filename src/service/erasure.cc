#include "noema/service/erasure.h"

#include <algorithm>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "service/event_catalog.h"
#include "service/event_writer.h"
#include "service/user_core_doc.h"

namespace noema {
namespace {

using service_internal::kErasedAtField;

constexpr std::string_view kErasedStatus = "deactivated_by_admin";
constexpr std::string_view kEndReasonTimeout = "session_timeout_inactive";
constexpr std::string_view kLegacyEventField = "legacy";

// The userCore fields an erased user keeps (erasure.h); every other field is removed.
constexpr std::string_view kKeptUserCoreFields[] = {
    "_id",       "platformIdentities", "userCreationTimestamp",
    "updatedAt", "lastLoginTimestamp", "awards",
    "status",    kErasedAtField,
};

// The fields removed from a session and a generation record.
constexpr std::string_view kSessionPersonalFields[] = {"userAgent", "metadata"};
constexpr std::string_view kGenerationPersonalFields[] = {
    "requestPayload", "responsePayload", "artifactUrls", "errorDetails", "metadata"};

std::string_view KeyOf(const bson_iter_t& iter) {
  return std::string_view(bson_iter_key(&iter), bson_iter_key_len(&iter));
}

template <typename Names>
bool Contains(const Names& names, std::string_view name) {
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

int64_t CountKeys(DocumentView doc, std::string_view path) {
  Result<DocumentView> found = doc.GetDocument(path);
  if (!found.ok()) found = doc.GetArray(path);
  return found.ok() ? static_cast<int64_t>(found->CountKeys()) : 0;
}

// Whether the userCore document still holds anything the erasure removes.
bool UserCoreNeedsErasure(DocumentView user) {
  if (!service_internal::IsErased(user)) return true;
  if (service_internal::UserStatus(user) != kErasedStatus) return true;
  if (CountKeys(user, "platformIdentities") > 0) return true;
  bson_iter_t iter;
  if (!bson_iter_init(&iter, user.get())) return true;
  while (bson_iter_next(&iter)) {
    if (!Contains(kKeptUserCoreFields, KeyOf(iter))) return true;
  }
  return false;
}

// The erased form of a userCore document (erasure.h, step 1).
Document ErasedUserCore(DocumentView user, Timestamp erased_at, Timestamp now) {
  DocumentBuilder out;
  bson_iter_t iter;
  bson_iter_init(&iter, user.get());
  bool has_status = false;
  while (bson_iter_next(&iter)) {
    const std::string_view key = KeyOf(iter);
    if (!Contains(kKeptUserCoreFields, key)) continue;
    if (key == "platformIdentities") {
      out.StartDocument(key).End();
    } else if (key == "updatedAt") {
      out.Append(key, now);
    } else if (key == "status") {
      out.Append(key, kErasedStatus);
      has_status = true;
    } else if (key == kErasedAtField) {
      continue;  // appended below, as first set
    } else {
      out.AppendIter(key, iter);
    }
  }
  if (!has_status) out.Append("status", kErasedStatus);
  out.Append(kErasedAtField, erased_at);
  return std::move(out).Build();
}

// `doc` without the top-level `fields`.
template <typename Names>
Document WithoutFields(DocumentView doc, const Names& fields) {
  DocumentBuilder out;
  bson_iter_t iter;
  bson_iter_init(&iter, doc.get());
  while (bson_iter_next(&iter)) {
    if (!Contains(fields, KeyOf(iter))) out.AppendIter(KeyOf(iter), iter);
  }
  return std::move(out).Build();
}

// The members of eventData an event of `event_type` must lose (erasure.h); empty
// `fields` with `whole` true: all of it.
struct EventRedaction {
  bool whole = false;
  std::vector<std::string_view> fields;
};

EventRedaction RedactionFor(std::string_view event_type) {
  EventRedaction redaction;
  if (!service_internal::DefaultEventCatalog().IsKnown(event_type)) {
    redaction.whole = true;
    return redaction;
  }
  redaction.fields.push_back(kLegacyEventField);
  for (const PersonalEventFields& entry : kPersonalEventFields) {
    if (entry.event_type != event_type) continue;
    for (std::string_view field : entry.fields) {
      if (!field.empty()) redaction.fields.push_back(field);
    }
  }
  return redaction;
}

// The redacted form of an event, or nullopt when it holds nothing to remove (already
// redacted, or never personal).
Result<std::optional<Document>> RedactedEvent(DocumentView event) {
  NOEMA_ASSIGN_OR_RETURN(std::string_view event_type, event.GetString("eventType"));
  if (!event.Has("eventData")) return std::optional<Document>();
  const EventRedaction redaction = RedactionFor(event_type);
  bool changed = false;
  DocumentBuilder out;
  bson_iter_t iter;
  bson_iter_init(&iter, event.get());
  while (bson_iter_next(&iter)) {
    const std::string_view key = KeyOf(iter);
    if (key != "eventData") {
      out.AppendIter(key, iter);
      continue;
    }
    if (redaction.whole || !BSON_ITER_HOLDS_DOCUMENT(&iter)) {
      changed = true;
      continue;
    }
    out.StartDocument(key);
    bson_iter_t member;
    bson_iter_recurse(&iter, &member);
    while (bson_iter_next(&member)) {
      if (Contains(redaction.fields, KeyOf(member))) {
        changed = true;
        continue;
      }
      out.AppendIter(KeyOf(member), member);
    }
    out.End();
  }
  if (!changed) return std::optional<Document>();
  return std::optional<Document>(std::move(out).Build());
}

Status UserNotFound(const ObjectId& id) {
  return {StatusCode::kNotFound, "no user " + id.ToHex(), "masterAccountId"};
}

}  // namespace

Document ErasureSummary::ToDocument() const {
  DocumentBuilder b;
  b.Append("masterAccountId", master_account_id)
      .Append("erasedAt", erased_at)
      .Append("alreadyErased", already_erased)
      .Append("identitiesRemoved", identities_removed)
      .Append("walletsRemoved", wallets_removed)
      .Append("apiKeysRemoved", api_keys_removed)
      .Append("profileRemoved", profile_removed)
      .Append("preferencesDeleted", preferences_deleted)
      .Append("sessionsScrubbed", sessions_scrubbed)
      .Append("sessionsEnded", sessions_ended)
      .Append("generationsScrubbed", generations_scrubbed)
      .Append("eventsRedacted", events_redacted)
      .Append("transactionsKept", transactions_kept)
      .Append("usdCredit", usd_credit)
      .Append("exp", exp);
  return std::move(b).Build();
}

Result<ErasureSummary> ErasureService::EraseUserCore(const ObjectId& id) const {
  if (options_.batch_max == 0 || options_.batch_max > kErasureBatchMax) {
    return Status::InvalidArgument(
        "must be 1.." + std::to_string(kErasureBatchMax) + " documents per unit of work",
        "batch_max");
  }
  ErasureSummary summary;
  NOEMA_RETURN_IF_ERROR(ctx_.store->RunTransaction([&](Transaction& tx) -> Status {
    summary = ErasureSummary();
    summary.master_account_id = id;
    Result<Document> loaded = service_internal::LoadUserCore(tx, id);
    if (loaded.status().IsNotFound()) return UserNotFound(id);
    NOEMA_RETURN_IF_ERROR(loaded.status());
    const Document user = std::move(loaded).value();

    // A generation still running holds credit; it must settle first (DECISIONS.md 12).
    int64_t running = 0;
    for (std::string_view status : {"pending", "processing"}) {
      NOEMA_ASSIGN_OR_RETURN(int64_t count,
                             tx.Count(Collection::kGenerationOutputs,
                                      Filter().Eq("masterAccountId", id).Eq("status", status)));
      running += count;
    }
    if (running > 0) {
      return Status::Conflict(std::to_string(running) +
                                  " generation(s) of the user are pending or processing; their "
                                  "holds must settle first (complete or cancel them, or let the "
                                  "sweep time them out), then erase again",
                              "generations");
    }

    const Timestamp now = ctx_.Now();
    summary.already_erased = service_internal::IsErased(user);
    Result<Timestamp> stored_erased_at = user.view().GetDate(kErasedAtField);
    summary.erased_at = stored_erased_at.ok() ? *stored_erased_at : now;
    if (!UserCoreNeedsErasure(user)) return Status::Ok();
    summary.identities_removed = CountKeys(user, "platformIdentities");
    summary.wallets_removed = CountKeys(user, "wallets");
    summary.api_keys_removed = CountKeys(user, "apiKeys");
    summary.profile_removed = user.view().Has("profile");
    const Document erased = ErasedUserCore(user, summary.erased_at, now);
    return service_internal::ReplaceUserCore(tx, id, erased);
  }));
  NOEMA_RETURN_IF_ERROR(ReadWhatIsKept(id, &summary));
  return summary;
}

Result<ErasureSummary> ErasureService::Erase(const ObjectId& id) const {
  NOEMA_ASSIGN_OR_RETURN(ErasureSummary summary, EraseUserCore(id));
  NOEMA_RETURN_IF_ERROR(ScrubRest(id, &summary));
  NOEMA_RETURN_IF_ERROR(ReadWhatIsKept(id, &summary));
  return summary;
}

Status ErasureService::ReadWhatIsKept(const ObjectId& id, ErasureSummary* summary) const {
  return ctx_.store->RunReadOnly([&](Transaction& tx) -> Status {
    NOEMA_ASSIGN_OR_RETURN(summary->transactions_kept,
                           tx.Count(Collection::kTransactions, Filter().Eq("masterAccountId", id)));
    NOEMA_ASSIGN_OR_RETURN(
        std::optional<Document> economy,
        tx.FindOne(Collection::kUserEconomy, Filter().Eq("masterAccountId", id)));
    summary->usd_credit = Money::Zero();
    summary->exp = 0;
    if (economy) {
      NOEMA_ASSIGN_OR_RETURN(summary->usd_credit, economy->view().GetMoney("usdCredit"));
      NOEMA_ASSIGN_OR_RETURN(summary->exp, economy->view().GetInteger("exp"));
    }
    return Status::Ok();
  });
}

Status ErasureService::ScrubRest(const ObjectId& id, ErasureSummary* summary) const {
  const size_t batch = options_.batch_max;

  // Rewrites, a unit of at most `batch` documents at a time, every document of
  // `collection` that `filter` matches, with `scrub`, which makes it stop matching: each
  // unit takes the first page of what is still left, so an interrupted run resumes.
  // `*rewritten` and `*ended` (what `scrub` reports) are added to once a unit commits, so
  // a unit re-run after a transient failure does not count twice.
  using Scrub = std::function<Status(Transaction&, const Document&, int64_t* ended)>;
  auto scrub_matching = [&](Collection collection, const Filter& filter, const Scrub& scrub,
                            int64_t* rewritten, int64_t* ended) -> Status {
    while (true) {
      size_t done = 0;
      int64_t ended_in_unit = 0;
      NOEMA_RETURN_IF_ERROR(ctx_.store->RunTransaction([&](Transaction& tx) -> Status {
        done = 0;
        ended_in_unit = 0;
        Query query;
        query.filter = filter;
        query.limit = batch;
        NOEMA_ASSIGN_OR_RETURN(Page page, tx.Find(collection, query));
        for (const Document& doc : page.items) {
          NOEMA_RETURN_IF_ERROR(scrub(tx, doc, &ended_in_unit));
          ++done;
        }
        return Status::Ok();
      }));
      *rewritten += static_cast<int64_t>(done);
      *ended += ended_in_unit;
      if (done < batch) return Status::Ok();
    }
  };

  // userPreferences: deleted (its _id is the user's, docs/decisions.md).
  NOEMA_RETURN_IF_ERROR(ctx_.store->RunTransaction([&](Transaction& tx) -> Status {
    summary->preferences_deleted = 0;
    NOEMA_ASSIGN_OR_RETURN(
        std::optional<Document> preferences,
        tx.FindOne(Collection::kUserPreferences, Filter().Eq("masterAccountId", id)));
    if (!preferences) return Status::Ok();
    NOEMA_ASSIGN_OR_RETURN(ObjectId preferences_id, preferences->view().GetObjectId("_id"));
    NOEMA_RETURN_IF_ERROR(tx.Delete(Collection::kUserPreferences, preferences_id));
    summary->preferences_deleted = 1;
    return Status::Ok();
  }));

  // userSessions: personal fields removed, an active one ended.
  const Scrub scrub_session = [&](Transaction& tx, const Document& session,
                                  int64_t* ended) -> Status {
    const Document scrubbed = WithoutFields(session, kSessionPersonalFields);
    NOEMA_ASSIGN_OR_RETURN(ObjectId session_id, session.view().GetObjectId("_id"));
    Result<bool> active = session.view().GetBool("isActive");
    if (!active.ok() || !*active) {
      return tx.Replace(Collection::kUserSessions, session_id, scrubbed);
    }
    const Timestamp now = ctx_.Now();
    ++*ended;
    if (service_internal::SessionExpired(ctx_, scrubbed, now)) {
      // As the sweep would have ended it: at its last activity.
      NOEMA_ASSIGN_OR_RETURN(Timestamp last, scrubbed.view().GetDate("lastUserActivityTimestamp"));
      return service_internal::EndSessionInTx(tx, ctx_, scrubbed, kEndReasonTimeout, last);
    }
    return service_internal::EndSessionInTx(tx, ctx_, scrubbed, kErasureEndReason, now);
  };
  summary->sessions_scrubbed = 0;
  summary->sessions_ended = 0;
  {
    Filter active;
    active.Eq("masterAccountId", id).Eq("isActive", true);
    NOEMA_RETURN_IF_ERROR(scrub_matching(Collection::kUserSessions, active, scrub_session,
                                         &summary->sessions_scrubbed, &summary->sessions_ended));
    for (std::string_view field : kSessionPersonalFields) {
      Filter holding;
      holding.Eq("masterAccountId", id).Exists(std::string(field));
      NOEMA_RETURN_IF_ERROR(scrub_matching(Collection::kUserSessions, holding, scrub_session,
                                           &summary->sessions_scrubbed, &summary->sessions_ended));
    }
  }

  // generationOutputs: payloads removed; the record of what was charged stays.
  const Scrub scrub_generation = [&](Transaction& tx, const Document& generation,
                                     int64_t* /*ended*/) -> Status {
    NOEMA_ASSIGN_OR_RETURN(ObjectId generation_id, generation.view().GetObjectId("_id"));
    const Document scrubbed = WithoutFields(generation, kGenerationPersonalFields);
    return tx.Replace(Collection::kGenerationOutputs, generation_id, scrubbed);
  };
  summary->generations_scrubbed = 0;
  int64_t unused = 0;
  for (std::string_view field : kGenerationPersonalFields) {
    Filter holding;
    holding.Eq("masterAccountId", id).Exists(std::string(field));
    NOEMA_RETURN_IF_ERROR(scrub_matching(Collection::kGenerationOutputs, holding, scrub_generation,
                                         &summary->generations_scrubbed, &unused));
  }

  // userEvents: a walk over the user's events in _id order, a page per unit, redacting
  // those that still hold a personal member. Already redacted events are read, not written.
  Query query;
  query.filter.Eq("masterAccountId", id);
  query.limit = batch;
  int64_t events_redacted = 0;
  while (true) {
    std::string next_cursor;
    int64_t redacted_in_unit = 0;
    NOEMA_RETURN_IF_ERROR(ctx_.store->RunTransaction([&](Transaction& tx) -> Status {
      redacted_in_unit = 0;
      NOEMA_ASSIGN_OR_RETURN(Page page, tx.Find(Collection::kUserEvents, query));
      for (const Document& event : page.items) {
        NOEMA_ASSIGN_OR_RETURN(std::optional<Document> redacted, RedactedEvent(event));
        if (!redacted) continue;
        NOEMA_ASSIGN_OR_RETURN(ObjectId event_id, event.view().GetObjectId("_id"));
        NOEMA_RETURN_IF_ERROR(tx.Redact(Collection::kUserEvents, event_id, *redacted));
        ++redacted_in_unit;
      }
      next_cursor = std::move(page.next_cursor);
      return Status::Ok();
    }));
    events_redacted += redacted_in_unit;
    if (next_cursor.empty()) break;
    query.cursor = std::move(next_cursor);
  }
  summary->events_redacted = events_redacted;
  return Status::Ok();
}

}  // namespace noema
