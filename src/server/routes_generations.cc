// Routes of generation records (API.md "Resources"). The state machine, holds and
// charging live in GenerationService; a repeated identical completion is answered with
// the record (webhooks repeat), a conflicting one with 409.
#include "server/api.h"
#include "server/json_render.h"
#include "server/request_body.h"

namespace noema::server {
namespace {

HttpResponse GenerationReply(int status, const Generation& generation) {
  return JsonReply(status, RenderJson(generation.document.view(), "generationId"));
}

// A generation the caller may act for (an API key only for its own user's). Another user's
// generation answers exactly as an absent one.
Result<Generation> OwnedGeneration(Call& call) {
  NOEMA_ASSIGN_OR_RETURN(ObjectId id, call.IdParam("id"));
  NOEMA_ASSIGN_OR_RETURN(Generation generation, call.services.generations.Get(id));
  if (!call.principal.CanActFor(generation.master_account_id).ok()) return GenerationNotFound();
  return generation;
}

}  // namespace

void AddGenerationRoutes(Api& api) {
  api.Add(
      Method::kPost, "/v1/generations", Access::kAuthenticated, "generations:write",
      [](Call& call) -> Result<HttpResponse> {
        NOEMA_ASSIGN_OR_RETURN(Document body, ParseJsonBody(call.request));
        BodyReader reader(body.view());
        CreateGenerationRequest request;
        NOEMA_ASSIGN_OR_RETURN(request.master_account_id, reader.Id("masterAccountId"));
        NOEMA_ASSIGN_OR_RETURN(request.session_id, reader.Id("sessionId"));
        NOEMA_ASSIGN_OR_RETURN(request.initiating_event_id, reader.Id("initiatingEventId"));
        NOEMA_ASSIGN_OR_RETURN(request.service_name,
                               reader.String("serviceName", kServiceNameCharsMax));
        NOEMA_ASSIGN_OR_RETURN(auto payload, reader.OptionalObject("requestPayload"));
        if (!payload) {
          return Status::InvalidArgument("required field is missing", "requestPayload");
        }
        request.request_payload = std::move(*payload);
        NOEMA_ASSIGN_OR_RETURN(request.estimated_cost_usd,
                               reader.OptionalMoney("estimatedCostUsd"));
        NOEMA_ASSIGN_OR_RETURN(request.metadata, reader.OptionalObject("metadata"));
        NOEMA_ASSIGN_OR_RETURN(request.platform_specific_run_id,
                               reader.OptionalString("platformSpecificRunId", 256));
        NOEMA_RETURN_IF_ERROR(reader.Finish());
        request.idempotency_key = call.request.idempotency_key;
        request.credential = call.principal.CredentialId();
        NOEMA_RETURN_IF_ERROR(
            call.principal.CanActFor(request.master_account_id).WithFieldPrefix("masterAccountId"));
        NOEMA_ASSIGN_OR_RETURN(Generation generation,
                               call.services.generations.Create(request, call.MakeOrigin()));
        return GenerationReply(201, generation);
      });

  // The outcome and the cost of a job are reported by the platform that ran it, never by
  // the user who is charged: with an API key, a user could settle their own generation
  // at cost 0, or cancel one the platform is running (docs/decisions.md).
  api.Add(
      Method::kPost, "/v1/generations/{id}/status", Access::kTrusted, "",
      [](Call& call) -> Result<HttpResponse> {
        NOEMA_ASSIGN_OR_RETURN(Generation current, OwnedGeneration(call));
        NOEMA_ASSIGN_OR_RETURN(Document body, ParseJsonBody(call.request));
        BodyReader reader(body.view());
        NOEMA_ASSIGN_OR_RETURN(std::string status_text, reader.String("status", 32));
        NOEMA_ASSIGN_OR_RETURN(auto run_id, reader.OptionalString("platformSpecificRunId", 256));
        NOEMA_ASSIGN_OR_RETURN(GenerationStatus status, ParseGenerationStatus(status_text));
        if (status == GenerationStatus::kPending) {
          return Status::InvalidArgument(
              "must be processing or a final state: success, failed, cancelled_by_user or timeout",
              "status");
        }
        if (status == GenerationStatus::kProcessing) {
          NOEMA_RETURN_IF_ERROR(reader.Finish());
          NOEMA_ASSIGN_OR_RETURN(Generation g, call.services.generations.MarkProcessing(
                                                   current.generation_id, run_id));
          return GenerationReply(200, g);
        }
        FinishGenerationRequest request;
        request.status = status;
        request.platform_specific_run_id = run_id;
        NOEMA_ASSIGN_OR_RETURN(request.response_payload, reader.OptionalObject("responsePayload"));
        NOEMA_ASSIGN_OR_RETURN(request.artifact_urls, reader.OptionalArray("artifactUrls"));
        NOEMA_ASSIGN_OR_RETURN(request.cost_usd, reader.OptionalMoney("costUsd"));
        NOEMA_ASSIGN_OR_RETURN(request.error_details, reader.OptionalObject("errorDetails"));
        NOEMA_RETURN_IF_ERROR(reader.Finish());
        NOEMA_ASSIGN_OR_RETURN(
            Generation g,
            call.services.generations.Finish(current.generation_id, request, call.MakeOrigin()));
        return GenerationReply(200, g);
      });

  // Another attempt of a failed, cancelled or timed-out job: a new pending record linked to
  // it (retryOf, retryAttempt), with its own hold; absent fields are the previous attempt's.
  api.Add(
      Method::kPost, "/v1/generations/{id}/retry", Access::kAuthenticated, "generations:write",
      [](Call& call) -> Result<HttpResponse> {
        NOEMA_ASSIGN_OR_RETURN(Generation previous, OwnedGeneration(call));
        NOEMA_ASSIGN_OR_RETURN(Document body, ParseJsonBody(call.request));
        BodyReader reader(body.view());
        RetryGenerationRequest request;
        NOEMA_ASSIGN_OR_RETURN(request.session_id, reader.OptionalId("sessionId"));
        NOEMA_ASSIGN_OR_RETURN(request.initiating_event_id, reader.OptionalId("initiatingEventId"));
        NOEMA_ASSIGN_OR_RETURN(request.request_payload, reader.OptionalObject("requestPayload"));
        NOEMA_ASSIGN_OR_RETURN(request.estimated_cost_usd,
                               reader.OptionalMoney("estimatedCostUsd"));
        NOEMA_ASSIGN_OR_RETURN(request.metadata, reader.OptionalObject("metadata"));
        NOEMA_RETURN_IF_ERROR(reader.Finish());
        request.idempotency_key = call.request.idempotency_key;
        request.credential = call.principal.CredentialId();
        NOEMA_ASSIGN_OR_RETURN(
            Generation generation,
            call.services.generations.Retry(previous.generation_id, request, call.MakeOrigin()));
        return GenerationReply(201, generation);
      });

  api.Add(Method::kPost, "/v1/generations/{id}/cancel", Access::kTrusted, "",
          [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(Generation current, OwnedGeneration(call));
            NOEMA_ASSIGN_OR_RETURN(Generation g, call.services.generations.Cancel(
                                                     current.generation_id, call.MakeOrigin()));
            return GenerationReply(200, g);
          });

  api.Add(Method::kGet, "/v1/generations/{id}", Access::kAuthenticated, "generations:read",
          [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(Generation generation, OwnedGeneration(call));
            return GenerationReply(200, generation);
          });

  api.Add(Method::kGet, "/v1/users/{id}/generations", Access::kAuthenticated, "generations:read",
          [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.User());
            GenerationQuery query;
            if (auto status = call.request.QueryParam("status")) {
              auto parsed = ParseGenerationStatus(*status);
              if (!parsed.ok()) return Status::InvalidArgument(parsed.status().message(), "status");
              query.status = *parsed;
            }
            NOEMA_ASSIGN_OR_RETURN(query.from, call.TimeParam("from"));
            NOEMA_ASSIGN_OR_RETURN(query.to, call.TimeParam("to"));
            NOEMA_ASSIGN_OR_RETURN(query.limit, call.Limit());
            query.cursor = call.Cursor();
            NOEMA_ASSIGN_OR_RETURN(auto page, call.services.generations.ListForUser(user, query));
            std::vector<std::string> items;
            for (const Generation& g : page.items) {
              items.push_back(RenderJson(g.document.view(), "generationId"));
            }
            return PageReply(items, page.next_cursor);
          });
}

}  // namespace noema::server
