// GenerationService: see include/noema/service/generations.h.
#include "noema/service/generations.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <limits>
#include <utility>

#include "noema/utf8.h"
#include "service/award_rules.h"
#include "service/economy_internal.h"
#include "service/event_writer.h"

namespace noema {
namespace si = service_internal;

namespace {

constexpr std::array<std::string_view, 6> kStatusNames = {
    "pending", "processing", "success", "failed", "cancelled_by_user", "timeout"};

// The platform named as sourcePlatform by the events of SweepStuck.
constexpr std::string_view kSweepPlatform = "system";
constexpr size_t kArtifactTypeCharsMax = 64;

// Creating (a hold) and finishing (a settlement) move money.
TransactionOptions LedgerUnit() {
  TransactionOptions options;
  options.ledger = true;
  return options;
}

}  // namespace

std::string_view GenerationStatusName(GenerationStatus status) {
  return kStatusNames[static_cast<size_t>(status)];
}

Result<GenerationStatus> ParseGenerationStatus(std::string_view text) {
  for (size_t i = 0; i < kStatusNames.size(); ++i) {
    if (kStatusNames[i] == text) return static_cast<GenerationStatus>(i);
  }
  return Status::InvalidArgument(
      "must be one of pending, processing, success, failed, cancelled_by_user, timeout", "status");
}

Status GenerationNotFound() {
  return {StatusCode::kNotFound, "no such generation", "generationId"};
}

bool IsFinal(GenerationStatus status) {
  return status != GenerationStatus::kPending && status != GenerationStatus::kProcessing;
}

Result<Generation> Generation::FromDocument(DocumentView doc) {
  Generation out;
  NOEMA_ASSIGN_OR_RETURN(out.generation_id, doc.GetObjectId("_id"));
  NOEMA_ASSIGN_OR_RETURN(out.master_account_id, doc.GetObjectId("masterAccountId"));
  NOEMA_ASSIGN_OR_RETURN(out.session_id, doc.GetObjectId("sessionId"));
  NOEMA_ASSIGN_OR_RETURN(std::string_view service_name, doc.GetString("serviceName"));
  out.service_name = std::string(service_name);
  NOEMA_ASSIGN_OR_RETURN(std::string_view status, doc.GetString("status"));
  NOEMA_ASSIGN_OR_RETURN(out.status, ParseGenerationStatus(status));
  NOEMA_ASSIGN_OR_RETURN(out.request_timestamp, doc.GetDate("requestTimestamp"));
  if (doc.Has("costUsd") && !doc.IsNull("costUsd")) {
    NOEMA_ASSIGN_OR_RETURN(Money cost, doc.GetMoney("costUsd"));
    out.cost_usd = cost;
  }
  if (doc.Has("heldUsd")) {
    NOEMA_ASSIGN_OR_RETURN(out.held_usd, doc.GetMoney("heldUsd"));
  }
  if (doc.Has("retryAttempt")) {
    NOEMA_ASSIGN_OR_RETURN(out.retry_attempt, doc.GetInt32("retryAttempt"));
  }
  if (doc.Has("retryOf")) {
    NOEMA_ASSIGN_OR_RETURN(ObjectId retry_of, doc.GetObjectId("retryOf"));
    out.retry_of = retry_of;
  }
  out.document = doc.Copy();
  return out;
}

namespace {

Result<Generation> ParseStored(DocumentView doc, const ObjectId& id) {
  Result<Generation> parsed = Generation::FromDocument(doc);
  if (!parsed.ok()) {
    return Status::DataLoss("generation " + id.ToHex() +
                            " cannot be read: " + parsed.status().ToString());
  }
  return parsed;
}

Result<Generation> LoadInTx(Transaction& tx, const ObjectId& generation_id) {
  Result<Document> doc = tx.Get(Collection::kGenerationOutputs, generation_id);
  if (!doc.ok()) {
    if (doc.status().IsNotFound()) {
      return GenerationNotFound();
    }
    return doc.status();
  }
  return ParseStored(doc->view(), generation_id);
}

Status CheckServiceName(std::string_view name) {
  if (name.empty() || name.size() > kServiceNameCharsMax) {
    return Status::InvalidArgument(
        "must be 1 to " + std::to_string(kServiceNameCharsMax) + " characters", "serviceName");
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '/' || c == '-';
    if (!ok) {
      return Status::InvalidArgument("may contain only letters, digits and . _ : / -",
                                     "serviceName");
    }
  }
  return Status::Ok();
}

Status CheckPayload(const ServiceConfig& config, const Document& doc, std::string_view field) {
  if (doc.size_bytes() > config.generation_payload_bytes_max) {
    return Status::InvalidArgument(
        "must be at most " + std::to_string(config.generation_payload_bytes_max) + " bytes",
        std::string(field));
  }
  return Status::Ok();
}

Status CheckCost(const ServiceConfig& config, Money cost, std::string_view field) {
  if (cost.IsNegative()) return Status::InvalidArgument("must not be negative", std::string(field));
  if (cost > config.amount_max) {
    return Status::InvalidArgument("must be at most " + config.amount_max.ToString(),
                                   std::string(field));
  }
  return Status::Ok();
}

Status CheckRunId(const std::optional<std::string>& run_id) {
  if (!run_id) return Status::Ok();
  return si::CheckText(*run_id, 1, kPlatformRunIdCharsMax, "platformSpecificRunId");
}

// An array of {url: string, type?: string}.
Status CheckArtifacts(const ServiceConfig& config, const Document& artifacts) {
  bson_iter_t iter;
  if (!bson_iter_init(&iter, artifacts.get())) {
    return Status::InvalidArgument("must be an array", "artifactUrls");
  }
  size_t index = 0;
  while (bson_iter_next(&iter)) {
    std::string path = "artifactUrls." + std::to_string(index);
    if (std::string_view(bson_iter_key(&iter)) != std::to_string(index)) {
      return Status::InvalidArgument("must be an array", "artifactUrls");
    }
    if (++index > config.generation_artifacts_max) {
      return Status::InvalidArgument(
          "at most " + std::to_string(config.generation_artifacts_max) + " artifacts",
          "artifactUrls");
    }
    if (!BSON_ITER_HOLDS_DOCUMENT(&iter)) {
      return Status::InvalidArgument("must be an object {url, type}", path);
    }
    uint32_t length = 0;
    const uint8_t* data = nullptr;
    bson_iter_document(&iter, &length, &data);
    DocumentView item(data, length);
    Result<std::string_view> url = item.GetString("url");
    if (!url.ok()) return url.status().WithFieldPrefix("artifactUrls." + std::to_string(index - 1));
    NOEMA_RETURN_IF_ERROR(si::CheckText(*url, 1, kArtifactUrlCharsMax, path + ".url"));
    if (item.Has("type")) {
      Result<std::string_view> type = item.GetString("type");
      if (!type.ok()) {
        return type.status().WithFieldPrefix("artifactUrls." + std::to_string(index - 1));
      }
      NOEMA_RETURN_IF_ERROR(si::CheckText(*type, 1, kArtifactTypeCharsMax, path + ".type"));
    }
  }
  return Status::Ok();
}

// InvalidArgument(field) unless `collection` holds `id` and it belongs to the user.
Status RequireOwnedInTx(Transaction& tx, Collection collection, const ObjectId& id,
                        const ObjectId& master_account_id, std::string_view field,
                        std::string_view what) {
  Result<Document> doc = tx.Get(collection, id);
  if (!doc.ok()) {
    if (doc.status().IsNotFound()) {
      return Status::InvalidArgument("no " + std::string(what) + " " + id.ToHex() + " of this user",
                                     std::string(field));
    }
    return doc.status();
  }
  Result<ObjectId> owner = doc->view().GetObjectId("masterAccountId");
  if (!owner.ok() || *owner != master_account_id) {
    return Status::InvalidArgument("no " + std::string(what) + " " + id.ToHex() + " of this user",
                                   std::string(field));
  }
  return Status::Ok();
}

Status ValidateCreate(const ServiceConfig& config, const CreateGenerationRequest& request) {
  NOEMA_RETURN_IF_ERROR(CheckServiceName(request.service_name));
  NOEMA_RETURN_IF_ERROR(CheckPayload(config, request.request_payload, "requestPayload"));
  if (request.estimated_cost_usd) {
    NOEMA_RETURN_IF_ERROR(CheckCost(config, *request.estimated_cost_usd, "estimatedCostUsd"));
  }
  if (request.metadata) NOEMA_RETURN_IF_ERROR(CheckPayload(config, *request.metadata, "metadata"));
  return CheckRunId(request.platform_specific_run_id);
}

// Everything that defines a create request, for its idempotency key.
std::string CreateFingerprint(const CreateGenerationRequest& request) {
  si::RequestFingerprint print("noema.generation.create.v1");
  const std::string user = request.master_account_id.ToHex();
  const std::string session = request.session_id.ToHex();
  const std::string event = request.initiating_event_id.ToHex();
  const std::string payload = request.request_payload.ToJson(JsonMode::kCanonical);
  const std::string estimate =
      request.estimated_cost_usd ? request.estimated_cost_usd->ToString() : std::string();
  const std::string metadata =
      request.metadata ? request.metadata->ToJson(JsonMode::kCanonical) : std::string();
  print.Add("masterAccountId", user)
      .Add("sessionId", session)
      .Add("initiatingEventId", event)
      .Add("serviceName", request.service_name)
      .Add("requestPayload", payload)
      .Add("estimatedCostUsd",
           request.estimated_cost_usd ? std::optional<std::string_view>(estimate) : std::nullopt)
      .Add("metadata", request.metadata ? std::optional<std::string_view>(metadata) : std::nullopt)
      .Add("platformSpecificRunId", request.platform_specific_run_id);
  return print.Hex();
}

// The record an earlier request with this idempotency key made (nullopt: none); Conflict
// when that request was another one.
Result<std::optional<Generation>> FindByIdempotencyKey(Transaction& tx,
                                                       const CreateGenerationRequest& request,
                                                       const si::RequestIdentity& identity) {
  Filter filter;
  filter.Eq("masterAccountId", request.master_account_id)
      .Eq("idempotencyKey", *request.idempotency_key);
  NOEMA_ASSIGN_OR_RETURN(std::optional<Document> stored,
                         tx.FindOne(Collection::kGenerationOutputs, filter));
  if (!stored) return std::optional<Generation>();
  NOEMA_RETURN_IF_ERROR(si::CheckSameRequest(stored->view(), identity));
  NOEMA_ASSIGN_OR_RETURN(ObjectId id, stored->view().GetObjectId("_id"));
  NOEMA_ASSIGN_OR_RETURN(Generation first, ParseStored(stored->view(), id));
  return std::optional<Generation>(std::move(first));
}

// Create, and Retry's create (with `previous` the attempt it retries).
Result<Generation> CreateRecord(const ServiceContext& ctx, const CreateGenerationRequest& request,
                                const Generation* previous, const Origin& origin) {
  NOEMA_RETURN_IF_ERROR(ValidateCreate(ctx.config, request));
  std::optional<si::RequestIdentity> fingerprint;
  if (request.idempotency_key) {
    NOEMA_RETURN_IF_ERROR(si::CheckIdempotencyKey(ctx.config, *request.idempotency_key));
    fingerprint = si::RequestIdentity{CreateFingerprint(request), request.credential};
  }
  Money hold = request.estimated_cost_usd.value_or(Money::Zero());
  std::optional<Generation> created;
  Status status = ctx.store->RunTransaction(
      [&](Transaction& tx) -> Status {
        created.reset();
        const ObjectId& user = request.master_account_id;
        if (request.idempotency_key) {
          // A retry: the record the first request made, and nothing placed again.
          NOEMA_ASSIGN_OR_RETURN(std::optional<Generation> first,
                                 FindByIdempotencyKey(tx, request, *fingerprint));
          if (first) {
            created = std::move(first);
            return Status::Ok();
          }
        }
        NOEMA_RETURN_IF_ERROR(si::RequireActiveUserInTx(tx, user));
        NOEMA_RETURN_IF_ERROR(RequireOwnedInTx(tx, Collection::kUserSessions, request.session_id,
                                               user, "sessionId", "session"));
        NOEMA_RETURN_IF_ERROR(RequireOwnedInTx(tx, Collection::kUserEvents,
                                               request.initiating_event_id, user,
                                               "initiatingEventId", "event"));
        if (hold.IsPositive()) {
          NOEMA_RETURN_IF_ERROR(si::PlaceHoldInTx(tx, ctx, user, hold, "estimatedCostUsd"));
        }
        ObjectId id = ObjectId::Generate();
        Timestamp now = ctx.Now();
        DocumentBuilder builder;
        builder.Append("_id", id)
            .Append("generationId", id)
            .Append("masterAccountId", user)
            .Append("sessionId", request.session_id)
            .Append("initiatingEventId", request.initiating_event_id)
            .Append("serviceName", request.service_name);
        if (request.platform_specific_run_id) {
          builder.Append("platformSpecificRunId", *request.platform_specific_run_id);
        }
        builder.Append("requestTimestamp", now)
            .Append("status", GenerationStatusName(GenerationStatus::kPending))
            .AppendDocument("requestPayload", request.request_payload);
        if (request.metadata) builder.AppendDocument("metadata", *request.metadata);
        builder.Append("retryAttempt", previous != nullptr ? previous->retry_attempt + 1 : 0);
        if (request.estimated_cost_usd)
          builder.Append("estimatedCostUsd", *request.estimated_cost_usd);
        builder.Append("heldUsd", hold);
        if (previous != nullptr) builder.Append("retryOf", previous->generation_id);
        if (request.idempotency_key) {
          builder.Append("idempotencyKey", *request.idempotency_key)
              .Append("requestFingerprint", fingerprint->fingerprint)
              .Append(si::kRequestCredentialField, fingerprint->credential);
        }
        Document record = std::move(builder).Build();
        NOEMA_RETURN_IF_ERROR(tx.Insert(Collection::kGenerationOutputs, record));

        DocumentBuilder event_data;
        event_data.Append("serviceName", request.service_name);
        if (request.estimated_cost_usd) {
          event_data.Append("estimatedCostUsd", *request.estimated_cost_usd);
        }
        event_data.Append("generationId", id);
        si::EventToWrite event{.master_account_id = user,
                               .platform = origin.platform,
                               .session_id = request.session_id,
                               .event_type = "generation_requested",
                               .event_data = std::move(event_data).Build(),
                               .timestamp = now};
        NOEMA_RETURN_IF_ERROR(si::WriteEvent(tx, ctx, event).status());
        NOEMA_ASSIGN_OR_RETURN(Generation generation, ParseStored(record.view(), id));
        created = std::move(generation);
        return Status::Ok();
      },
      LedgerUnit());
  if (status.IsAlreadyExists() && request.idempotency_key) {
    // A concurrent request with the same key committed first (the unique index on
    // (masterAccountId, idempotencyKey) refused this one): answer as its retry.
    status = ctx.store->RunReadOnly([&](Transaction& tx) -> Status {
      NOEMA_ASSIGN_OR_RETURN(std::optional<Generation> first,
                             FindByIdempotencyKey(tx, request, *fingerprint));
      if (!first) return Status::Unavailable("the request that holds this key is not visible yet");
      created = std::move(first);
      return Status::Ok();
    });
  }
  NOEMA_RETURN_IF_ERROR(status);
  return std::move(*created);
}

Status ValidateFinish(const ServiceConfig& config, const FinishGenerationRequest& request) {
  if (!IsFinal(request.status)) {
    return Status::InvalidArgument(
        "must be a final state: success, failed, cancelled_by_user or timeout", "status");
  }
  if (request.response_payload) {
    NOEMA_RETURN_IF_ERROR(CheckPayload(config, *request.response_payload, "responsePayload"));
  }
  if (request.error_details) {
    NOEMA_RETURN_IF_ERROR(CheckPayload(config, *request.error_details, "errorDetails"));
  }
  if (request.artifact_urls) NOEMA_RETURN_IF_ERROR(CheckArtifacts(config, *request.artifact_urls));
  if (request.cost_usd) NOEMA_RETURN_IF_ERROR(CheckCost(config, *request.cost_usd, "costUsd"));
  return CheckRunId(request.platform_specific_run_id);
}

std::optional<std::string_view> ErrorDetail(const FinishGenerationRequest& request,
                                            std::string_view field) {
  if (!request.error_details) return std::nullopt;
  Result<std::string_view> value = request.error_details->view().GetString(field);
  if (!value.ok()) return std::nullopt;
  return Utf8Prefix(*value, kGenerationEventErrorTextBytesMax);
}

std::string_view DefaultErrorSource(GenerationStatus status) {
  switch (status) {
    case GenerationStatus::kCancelledByUser: return "user";
    case GenerationStatus::kTimeout: return "noema_internal";
    default: return "service_api";
  }
}

// floor(exp_per_usd × charged USD), saturating at the int64 maximum.
int64_t ExpFor(int64_t exp_per_usd, Money charged) {
  if (exp_per_usd <= 0 || !charged.IsPositive()) return 0;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int64_t whole = charged.units() / Money::kUnitsPerDollar;
  int64_t fraction = charged.units() % Money::kUnitsPerDollar;
  int64_t exp_whole = 0;
  int64_t exp_fraction_scaled = 0;
  if (__builtin_mul_overflow(whole, exp_per_usd, &exp_whole) ||
      __builtin_mul_overflow(fraction, exp_per_usd, &exp_fraction_scaled)) {
    return kMax;
  }
  int64_t exp = 0;
  if (__builtin_add_overflow(exp_whole, exp_fraction_scaled / Money::kUnitsPerDollar, &exp)) {
    return kMax;
  }
  return exp;
}

struct FinishOutcome {
  Generation generation;
  bool changed = false;  // false: the record was already in the requested final state
};

Result<FinishOutcome> FinishRecord(const ServiceContext& ctx, const ObjectId& generation_id,
                                   const FinishGenerationRequest& request, const Origin& origin) {
  NOEMA_RETURN_IF_ERROR(ValidateFinish(ctx.config, request));
  std::optional<FinishOutcome> outcome;
  NOEMA_RETURN_IF_ERROR(ctx.store->RunTransaction(
      [&](Transaction& tx) -> Status {
        outcome.reset();
        NOEMA_ASSIGN_OR_RETURN(Generation current, LoadInTx(tx, generation_id));
        // A completion of another run than the one recorded is not this generation's:
        // refused as MarkProcessing refuses it, so the stored run id is never overwritten.
        DocumentView stored = current.document.view();
        if (request.platform_specific_run_id && stored.Has("platformSpecificRunId") &&
            !stored.IsNull("platformSpecificRunId")) {
          NOEMA_ASSIGN_OR_RETURN(std::string_view stored_run_id,
                                 stored.GetString("platformSpecificRunId"));
          if (stored_run_id != *request.platform_specific_run_id) {
            return Status::Conflict(
                "generation " + generation_id.ToHex() + " is recorded under another run id",
                "platformSpecificRunId");
          }
        }
        if (IsFinal(current.status)) {
          if (current.status != request.status) {
            return Status::Conflict("generation " + generation_id.ToHex() + " is already " +
                                        std::string(GenerationStatusName(current.status)),
                                    "status");
          }
          if (current.cost_usd != request.cost_usd) {
            return Status::Conflict(
                "generation " + generation_id.ToHex() + " was completed with another cost",
                "costUsd");
          }
          outcome = FinishOutcome{std::move(current), false};
          return Status::Ok();
        }
        const ObjectId& user = current.master_account_id;
        Origin event_origin{origin.platform, origin.session_id.value_or(current.session_id)};
        Timestamp now = ctx.Now();
        int64_t duration_ms = std::max<int64_t>(0, now - current.request_timestamp);
        bool success = request.status == GenerationStatus::kSuccess;

        si::Settlement settlement;
        Money cost = request.cost_usd.value_or(Money::Zero());
        if (success && (current.held_usd.IsPositive() || cost.IsPositive())) {
          NOEMA_ASSIGN_OR_RETURN(settlement, si::SettleInTx(tx, ctx, user, current.held_usd, cost,
                                                            generation_id, event_origin));
        } else if (current.held_usd.IsPositive()) {
          NOEMA_RETURN_IF_ERROR(si::ReleaseHoldInTx(tx, ctx, user, current.held_usd));
        }

        std::vector<si::FieldUpdate> updates;
        updates.emplace_back("status", Value(GenerationStatusName(request.status)));
        // A response arrived for success and failed; a cancelled or timed-out request has none.
        bool responded = success || request.status == GenerationStatus::kFailed;
        updates.emplace_back("responseTimestamp", responded ? Value(now) : Value::Null());
        updates.emplace_back("durationMs", Value(duration_ms));
        if (request.cost_usd) updates.emplace_back("costUsd", Value(*request.cost_usd));
        if (request.response_payload) {
          updates.emplace_back("responsePayload",
                               si::DocumentValue(*request.response_payload, false));
        }
        if (request.artifact_urls) {
          updates.emplace_back("artifactUrls", si::DocumentValue(*request.artifact_urls, true));
        }
        if (request.error_details) {
          updates.emplace_back("errorDetails", si::DocumentValue(*request.error_details, false));
        }
        if (request.platform_specific_run_id) {
          updates.emplace_back("platformSpecificRunId", Value(*request.platform_specific_run_id));
        }
        if (settlement.shortfall_usd.IsPositive()) {
          updates.emplace_back("uncollectedCostUsd", Value(settlement.shortfall_usd));
        }
        Document record = si::ReplaceFields(current.document, updates);
        NOEMA_RETURN_IF_ERROR(tx.Replace(Collection::kGenerationOutputs, generation_id, record));

        DocumentBuilder event_data;
        event_data.Append("generationId", generation_id)
            .Append("serviceName", current.service_name)
            .Append("durationMs", duration_ms);
        if (success) {
          int32_t artifacts = 0;
          if (request.artifact_urls) {
            artifacts = static_cast<int32_t>(request.artifact_urls->view().CountKeys());
          }
          event_data.Append("costUsd", request.cost_usd.value_or(Money::Zero()))
              .Append("status", GenerationStatusName(request.status))
              .Append("artifactCount", artifacts);
        } else {
          if (request.cost_usd) event_data.Append("costUsd", *request.cost_usd);
          event_data.Append("status", GenerationStatusName(request.status))
              .Append(
                  "errorSource",
                  ErrorDetail(request, "errorSource").value_or(DefaultErrorSource(request.status)));
          if (auto code = ErrorDetail(request, "errorCode")) event_data.Append("errorCode", *code);
          if (auto message = ErrorDetail(request, "errorMessage")) {
            event_data.Append("errorMessage", *message);
          }
        }
        si::EventToWrite event{.master_account_id = user,
                               .platform = event_origin.platform,
                               .session_id = event_origin.session_id,
                               .event_type = success ? "generation_completed" : "generation_failed",
                               .event_data = std::move(event_data).Build(),
                               .timestamp = now};
        NOEMA_RETURN_IF_ERROR(si::WriteEvent(tx, ctx, event).status());

        if (success) {
          int64_t exp = ExpFor(ctx.config.exp_per_usd, settlement.charged_usd);
          // Exp saturates at its maximum: it never stops the charge it comes with.
          NOEMA_ASSIGN_OR_RETURN(si::EconomyRecord econ, si::LoadEconomyInTx(tx, user));
          exp = std::min(exp, std::numeric_limits<int64_t>::max() - econ.exp);
          if (exp > 0) {
            NOEMA_RETURN_IF_ERROR(
                si::AddExpInTx(tx, ctx, user, exp, "generation", event_origin).status());
          }
          Filter successes;
          successes.Eq("masterAccountId", user)
              .Eq("status", GenerationStatusName(GenerationStatus::kSuccess));
          NOEMA_ASSIGN_OR_RETURN(int64_t successful,
                                 tx.Count(Collection::kGenerationOutputs, successes));
          NOEMA_RETURN_IF_ERROR(
              si::ApplyGenerationAwardRules(tx, ctx, user, successful, event_origin));
        }
        NOEMA_ASSIGN_OR_RETURN(Generation finished, ParseStored(record.view(), generation_id));
        outcome = FinishOutcome{std::move(finished), true};
        return Status::Ok();
      },
      LedgerUnit()));
  return std::move(*outcome);
}

}  // namespace

Result<Generation> GenerationService::Create(const CreateGenerationRequest& request,
                                             const Origin& origin) const {
  return CreateRecord(ctx_, request, nullptr, origin);
}

Result<Generation> GenerationService::MarkProcessing(
    const ObjectId& generation_id, std::optional<std::string> platform_specific_run_id) const {
  NOEMA_RETURN_IF_ERROR(CheckRunId(platform_specific_run_id));
  std::optional<Generation> result;
  NOEMA_RETURN_IF_ERROR(ctx_.store->RunTransaction([&](Transaction& tx) -> Status {
    result.reset();
    NOEMA_ASSIGN_OR_RETURN(Generation current, LoadInTx(tx, generation_id));
    if (IsFinal(current.status)) {
      return Status::Conflict("generation " + generation_id.ToHex() + " is already " +
                                  std::string(GenerationStatusName(current.status)),
                              "status");
    }
    std::optional<std::string_view> stored_run_id;
    DocumentView view = current.document.view();
    if (view.Has("platformSpecificRunId") && !view.IsNull("platformSpecificRunId")) {
      NOEMA_ASSIGN_OR_RETURN(stored_run_id, view.GetString("platformSpecificRunId"));
    }
    bool new_run_id = platform_specific_run_id && stored_run_id != *platform_specific_run_id;
    // A run id, once recorded (at the create or by an earlier report), is the generation's:
    // a report naming another is not about this generation, in any state (FinishRecord
    // refuses it the same way).
    if (new_run_id && stored_run_id) {
      return Status::Conflict(
          "generation " + generation_id.ToHex() + " is recorded under another run id",
          "platformSpecificRunId");
    }
    if (current.status == GenerationStatus::kProcessing && !new_run_id) {
      result = std::move(current);
      return Status::Ok();
    }
    std::vector<si::FieldUpdate> updates;
    updates.emplace_back("status", Value(GenerationStatusName(GenerationStatus::kProcessing)));
    if (new_run_id) updates.emplace_back("platformSpecificRunId", Value(*platform_specific_run_id));
    Document record = si::ReplaceFields(view, updates);
    NOEMA_RETURN_IF_ERROR(tx.Replace(Collection::kGenerationOutputs, generation_id, record));
    NOEMA_ASSIGN_OR_RETURN(Generation processing, ParseStored(record.view(), generation_id));
    result = std::move(processing);
    return Status::Ok();
  }));
  return std::move(*result);
}

Result<Generation> GenerationService::Finish(const ObjectId& generation_id,
                                             const FinishGenerationRequest& request,
                                             const Origin& origin) const {
  NOEMA_ASSIGN_OR_RETURN(FinishOutcome outcome, FinishRecord(ctx_, generation_id, request, origin));
  return std::move(outcome.generation);
}

Result<Generation> GenerationService::Cancel(const ObjectId& generation_id,
                                             const Origin& origin) const {
  FinishGenerationRequest request;
  request.status = GenerationStatus::kCancelledByUser;
  return Finish(generation_id, request, origin);
}

Result<int64_t> GenerationService::SweepStuck() const {
  Timestamp cutoff = ctx_.Now() - ctx_.config.generation_deadline_ms;
  int64_t swept = 0;
  for (GenerationStatus status : {GenerationStatus::kPending, GenerationStatus::kProcessing}) {
    Query query;
    query.filter.Eq("status", GenerationStatusName(status))
        .Range("requestTimestamp", std::nullopt, Value(cutoff));
    query.sort_field = "requestTimestamp";
    query.limit = kSweepBatchSize;
    NOEMA_RETURN_IF_ERROR(ForEachIdPage(
        *ctx_.store, Collection::kGenerationOutputs, query,
        [&](const std::vector<ObjectId>& ids) -> Status {
          for (const ObjectId& id : ids) {
            FinishGenerationRequest request;
            request.status = GenerationStatus::kTimeout;
            DocumentBuilder details;
            details.Append("errorCode", "deadline_exceeded")
                .Append("errorMessage", "no final status within " +
                                            std::to_string(ctx_.config.generation_deadline_ms) +
                                            " ms")
                .Append("errorSource", "noema_internal");
            request.error_details = std::move(details).Build();
            Origin origin;
            origin.platform = std::string(kSweepPlatform);
            Result<FinishOutcome> outcome = FinishRecord(ctx_, id, request, origin);
            if (!outcome.ok()) {
              if (outcome.status().IsConflict()) continue;  // finished meanwhile
              return outcome.status();
            }
            if (outcome->changed) ++swept;
          }
          return Status::Ok();
        }));
  }
  return swept;
}

Result<Generation> GenerationService::Retry(const ObjectId& previous_id,
                                            const RetryGenerationRequest& request,
                                            const Origin& origin) const {
  NOEMA_ASSIGN_OR_RETURN(Generation previous, Get(previous_id));
  if (!IsFinal(previous.status) || previous.status == GenerationStatus::kSuccess) {
    return Status::FailedPrecondition(
        "only a failed, cancelled or timed-out generation can be retried; " + previous_id.ToHex() +
            " is " + std::string(GenerationStatusName(previous.status)),
        "status");
  }
  DocumentView old = previous.document.view();
  CreateGenerationRequest create;
  create.master_account_id = previous.master_account_id;
  create.session_id = request.session_id.value_or(previous.session_id);
  if (request.initiating_event_id) {
    create.initiating_event_id = *request.initiating_event_id;
  } else {
    NOEMA_ASSIGN_OR_RETURN(create.initiating_event_id, old.GetObjectId("initiatingEventId"));
  }
  create.service_name = previous.service_name;
  create.idempotency_key = request.idempotency_key;
  create.credential = request.credential;
  if (request.request_payload) {
    create.request_payload = request.request_payload->Copy();
  } else if (old.Has("requestPayload")) {
    NOEMA_ASSIGN_OR_RETURN(DocumentView payload, old.GetDocument("requestPayload"));
    create.request_payload = payload.Copy();
  }
  if (request.estimated_cost_usd) {
    create.estimated_cost_usd = request.estimated_cost_usd;
  } else if (old.Has("estimatedCostUsd")) {
    NOEMA_ASSIGN_OR_RETURN(Money estimate, old.GetMoney("estimatedCostUsd"));
    create.estimated_cost_usd = estimate;
  }
  if (request.metadata) {
    create.metadata = request.metadata->Copy();
  } else if (old.Has("metadata")) {
    NOEMA_ASSIGN_OR_RETURN(DocumentView metadata, old.GetDocument("metadata"));
    create.metadata = metadata.Copy();
  }
  return CreateRecord(ctx_, create, &previous, origin);
}

Result<Generation> GenerationService::Get(const ObjectId& generation_id) const {
  std::optional<Generation> result;
  NOEMA_RETURN_IF_ERROR(ctx_.store->RunReadOnly([&](Transaction& tx) -> Status {
    result.reset();
    NOEMA_ASSIGN_OR_RETURN(Generation generation, LoadInTx(tx, generation_id));
    result = std::move(generation);
    return Status::Ok();
  }));
  return std::move(*result);
}

Result<GenerationPage> GenerationService::ListForUser(const ObjectId& master_account_id,
                                                      const GenerationQuery& query) const {
  if (query.limit < 1 || query.limit > kPageSizeMax) {
    return Status::InvalidArgument("must be 1 to " + std::to_string(kPageSizeMax), "limit");
  }
  if (query.from && query.to && *query.to < *query.from) {
    return Status::InvalidArgument("`to` is before `from`", "to");
  }
  Query store_query;
  store_query.filter.Eq("masterAccountId", master_account_id);
  if (query.status) store_query.filter.Eq("status", GenerationStatusName(*query.status));
  store_query.filter.TimeRange("requestTimestamp", query.from, query.to);
  store_query.sort_field = "requestTimestamp";
  store_query.descending = true;
  store_query.limit = query.limit;
  store_query.cursor = query.cursor;
  GenerationPage out;
  NOEMA_RETURN_IF_ERROR(ctx_.store->RunReadOnly([&](Transaction& tx) -> Status {
    out = GenerationPage{};
    Result<Document> user = tx.Get(Collection::kUserCore, master_account_id);
    if (!user.ok()) {
      if (user.status().IsNotFound()) {
        return Status::NotFound("no user " + master_account_id.ToHex());
      }
      return user.status();
    }
    NOEMA_ASSIGN_OR_RETURN(Page page, tx.Find(Collection::kGenerationOutputs, store_query));
    for (const Document& doc : page.items) {
      NOEMA_ASSIGN_OR_RETURN(ObjectId id, doc.view().GetObjectId("_id"));
      NOEMA_ASSIGN_OR_RETURN(Generation generation, ParseStored(doc.view(), id));
      out.items.push_back(std::move(generation));
    }
    out.next_cursor = std::move(page.next_cursor);
    return Status::Ok();
  }));
  return out;
}

}  // namespace noema
