// Routes of sessions, events and preferences (API.md "Resources").
#include <functional>
#include <memory>

#include "server/api.h"
#include "server/errors.h"
#include "server/json_render.h"
#include "server/request_body.h"

namespace noema::server {
namespace {

Document SessionDocument(const Session& s) {
  DocumentBuilder b;
  b.Append("sessionId", s.session_id)
      .Append("masterAccountId", s.master_account_id)
      .Append("platform", s.platform)
      .Append("startTime", s.start_time)
      .Append("isActive", s.is_active)
      .Append("lastUserActivityTimestamp", s.last_user_activity)
      .Append("errorCount", s.error_count);
  if (s.end_time) {
    b.Append("endTime", *s.end_time);
  } else {
    b.AppendNull("endTime");
  }
  if (s.end_reason) {
    b.Append("endReason", *s.end_reason);
  } else {
    b.AppendNull("endReason");
  }
  if (s.user_agent) b.Append("userAgent", *s.user_agent);
  if (s.metadata) b.AppendDocument("metadata", s.metadata->view());
  return std::move(b).Build();
}

HttpResponse SessionReply(int status, const Session& s) {
  return JsonReply(status, RenderJson(SessionDocument(s)));
}

// A session the caller may act for (an API key only for its own user's sessions). Another
// user's session answers exactly as an absent one.
Result<Session> OwnedSession(Call& call) {
  NOEMA_ASSIGN_OR_RETURN(ObjectId id, call.IdParam("id"));
  NOEMA_ASSIGN_OR_RETURN(Session session, call.services.sessions.Get(id));
  if (!call.principal.CanActFor(session.master_account_id).ok()) return SessionNotFound();
  return session;
}

std::string ItemResultJson(const EventItemResult& item, size_t index) {
  std::string out = "{\"index\":" + std::to_string(index);
  if (item.status.ok()) {
    out += ",\"status\":201,\"eventId\":";
    AppendJsonString(&out, item.event_id->ToHex());
  } else {
    HttpResponse error = ErrorResponse(item.status);
    out += ",\"status\":" + std::to_string(error.status) + ",";
    // Splice the error object ({"error":{...}}) without its outer braces.
    out += error.body.substr(1, error.body.size() - 2);
  }
  out += '}';
  return out;
}

HttpResponse EventIdReply(const ObjectId& id) {
  std::string out = "{\"eventId\":";
  AppendJsonString(&out, id.ToHex());
  out += '}';
  return JsonReply(201, std::move(out));
}

// The per-item outcomes of a batch: 201 when every item was stored, else 200.
HttpResponse BatchReply(const std::vector<EventItemResult>& results) {
  std::string out = "{\"items\":[";
  size_t accepted = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    if (i > 0) out += ',';
    out += ItemResultJson(results[i], i);
    if (results[i].status.ok()) ++accepted;
  }
  out += "],\"accepted\":" + std::to_string(accepted) +
         ",\"rejected\":" + std::to_string(results.size() - accepted) + "}";
  return JsonReply(accepted == results.size() ? 201 : 200, std::move(out));
}

}  // namespace

void AddSessionRoutes(Api& api) {
  api.Add(
      Method::kPost, "/v1/sessions", Access::kAuthenticated, "sessions:write",
      [](Call& call) -> Result<HttpResponse> {
        NOEMA_ASSIGN_OR_RETURN(Document body, ParseJsonBody(call.request));
        BodyReader reader(body.view());
        NOEMA_ASSIGN_OR_RETURN(ObjectId user, reader.Id("masterAccountId"));
        NOEMA_ASSIGN_OR_RETURN(std::string platform, reader.String("platform", 32));
        NOEMA_ASSIGN_OR_RETURN(auto user_agent, reader.OptionalString("userAgent", 1024));
        NOEMA_ASSIGN_OR_RETURN(auto metadata, reader.OptionalObject("metadata"));
        NOEMA_RETURN_IF_ERROR(reader.Finish());
        NOEMA_RETURN_IF_ERROR(call.principal.CanActFor(user).WithFieldPrefix("masterAccountId"));
        std::optional<std::string_view> agent;
        if (user_agent) agent = *user_agent;
        std::optional<DocumentView> meta;
        if (metadata) meta = metadata->view();
        NOEMA_ASSIGN_OR_RETURN(auto started,
                               call.services.sessions.Start(user, platform, agent, meta));
        return SessionReply(started.is_new ? 201 : 200, started.session);
      });

  api.Add(Method::kGet, "/v1/sessions/{id}", Access::kAuthenticated, "account:read",
          [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(Session session, OwnedSession(call));
            return SessionReply(200, session);
          });

  api.Add(Method::kPost, "/v1/sessions/{id}/activity", Access::kAuthenticated, "sessions:write",
          [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(Session session, OwnedSession(call));
            NOEMA_ASSIGN_OR_RETURN(Document body, ParseJsonBody(call.request, true));
            BodyReader reader(body.view());
            NOEMA_ASSIGN_OR_RETURN(auto at, reader.OptionalTime("timestamp"));
            NOEMA_RETURN_IF_ERROR(reader.Finish());
            NOEMA_ASSIGN_OR_RETURN(Session updated,
                                   call.services.sessions.RecordActivity(session.session_id, at));
            return SessionReply(200, updated);
          });

  api.Add(Method::kPost, "/v1/sessions/{id}/errors", Access::kAuthenticated, "sessions:write",
          [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(Session session, OwnedSession(call));
            NOEMA_RETURN_IF_ERROR(call.RefuseIdempotencyKey(
                "an error report takes no idempotency key: a retry would count it again"));
            NOEMA_ASSIGN_OR_RETURN(Session updated,
                                   call.services.sessions.RecordError(session.session_id));
            return SessionReply(200, updated);
          });

  api.Add(Method::kPost, "/v1/sessions/{id}/end", Access::kAuthenticated, "sessions:write",
          [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(Session session, OwnedSession(call));
            NOEMA_ASSIGN_OR_RETURN(Document body, ParseJsonBody(call.request));
            BodyReader reader(body.view());
            NOEMA_ASSIGN_OR_RETURN(std::string reason, reader.String("reason", 64));
            NOEMA_RETURN_IF_ERROR(reader.Finish());
            NOEMA_ASSIGN_OR_RETURN(Session ended,
                                   call.services.sessions.End(session.session_id, reason));
            return SessionReply(200, ended);
          });

  api.Add(Method::kGet, "/v1/users/{id}/sessions", Access::kAuthenticated, "account:read",
          [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.User());
            SessionListOptions options;
            options.platform = call.request.QueryParam("platform");
            if (auto active = call.request.QueryParam("isActive")) {
              if (*active != "true" && *active != "false") {
                return Status::InvalidArgument("expected true or false", "isActive");
              }
              options.active = *active == "true";
            }
            NOEMA_ASSIGN_OR_RETURN(options.limit, call.Limit());
            options.cursor = call.Cursor();
            NOEMA_ASSIGN_OR_RETURN(auto page, call.services.sessions.ListForUser(user, options));
            std::vector<std::string> items;
            for (const Session& s : page.items) items.push_back(RenderJson(SessionDocument(s)));
            return PageReply(items, page.next_cursor);
          });
}

void AddEventRoutes(Api& api) {
  // Runs on the I/O thread and never blocks there: the events are queued on the event
  // committer (server/event_batcher.h), which writes those of concurrent requests in one
  // unit of work (group commit), and the reply is sent once they are committed.
  api.Add(
      Method::kPost, "/v1/events", Access::kAuthenticated, "events:write",
      [](Call& call) -> Result<HttpResponse> {
        NOEMA_RETURN_IF_ERROR(call.RefuseIdempotencyKey(
            "events take no idempotency key: a retried event is stored again"));
        NOEMA_ASSIGN_OR_RETURN(Document body, ParseJsonBody(call.request));
        EventBatcher& batcher = call.services.event_batcher;
        if (!body.view().Has("events")) {
          NOEMA_ASSIGN_OR_RETURN(EventInput input, EventInput::FromDocument(body.view()));
          NOEMA_RETURN_IF_ERROR(
              call.principal.CanActFor(input.master_account_id).WithFieldPrefix("masterAccountId"));
          std::vector<EventInput> one;
          one.push_back(std::move(input));
          auto reply = [](EventBatcher::Outcomes outcome) -> HttpResponse {
            if (!outcome.ok()) return ErrorResponse(outcome.status());
            Result<ObjectId>& id = (*outcome)[0];
            return id.ok() ? EventIdReply(*id) : ErrorResponse(id.status());
          };
          const size_t bytes = call.request.body.size();
          if (!call.request.respond_later) return reply(batcher.Write(std::move(one), bytes));
          batcher.Submit(
              std::move(one), bytes,
              [reply, respond = call.request.respond_later](EventBatcher::Outcomes outcome) {
                respond(reply(std::move(outcome)));
              });
          return HttpResponse::Deferred();
        }
        if (body.view().CountKeys() != 1) {
          return Status::InvalidArgument("a batch body has only the field events", "body");
        }
        NOEMA_ASSIGN_OR_RETURN(DocumentView events, body.view().GetArray("events"));
        const size_t count = events.CountKeys();
        if (count == 0) {
          return Status::InvalidArgument("a batch holds at least one event", "events");
        }
        if (count > call.ctx.config.event_batch_max) {
          return Status::ResourceExhausted("a batch holds at most " +
                                               std::to_string(call.ctx.config.event_batch_max) +
                                               " events",
                                           "events");
        }
        // Read every item; an item that cannot be read is refused on its own. An API key
        // may only write its own user's events: any other user refuses the whole batch.
        auto results = std::make_shared<std::vector<EventItemResult>>(count);
        std::vector<EventInput> inputs;
        auto indexes = std::make_shared<std::vector<size_t>>();
        bson_iter_t iter;
        bson_iter_init(&iter, events.get());
        for (size_t index = 0; bson_iter_next(&iter); ++index) {
          const std::string field = "events." + std::to_string(index);
          if (!BSON_ITER_HOLDS_DOCUMENT(&iter)) {
            (*results)[index].status =
                Status::InvalidArgument("an event is an object").WithFieldPrefix(field);
            continue;
          }
          uint32_t len = 0;
          const uint8_t* data = nullptr;
          bson_iter_document(&iter, &len, &data);
          DocumentView item(data, len);
          if (call.principal.user) {
            BodyReader reader(item, field);
            auto user = reader.OptionalId("masterAccountId");
            if (user.ok() && *user) {
              NOEMA_RETURN_IF_ERROR(
                  call.principal.CanActFor(**user).WithFieldPrefix(field + ".masterAccountId"));
            }
          }
          Result<EventInput> input = EventInput::FromDocument(item);
          if (!input.ok()) {
            (*results)[index].status = input.status().WithFieldPrefix(field);
            continue;
          }
          inputs.push_back(std::move(input).value());
          indexes->push_back(index);
        }
        auto reply = [results, indexes](EventBatcher::Outcomes outcome) -> HttpResponse {
          if (!outcome.ok()) return ErrorResponse(outcome.status());
          for (size_t k = 0; k < indexes->size(); ++k) {
            const size_t index = (*indexes)[k];
            Result<ObjectId>& id = (*outcome)[k];
            if (id.ok()) {
              (*results)[index].event_id = *id;
            } else {
              (*results)[index].status =
                  id.status().WithFieldPrefix("events." + std::to_string(index));
            }
          }
          return BatchReply(*results);
        };
        const size_t bytes = call.request.body.size();
        if (!call.request.respond_later) return reply(batcher.Write(std::move(inputs), bytes));
        batcher.Submit(std::move(inputs), bytes,
                       [reply, respond = call.request.respond_later](
                           EventBatcher::Outcomes outcome) { respond(reply(std::move(outcome))); });
        return HttpResponse::Deferred();
      },
      Execution::kIoThread);

  api.Add(Method::kGet, "/v1/events", Access::kAuthenticated, "events:read",
          [](Call& call) -> Result<HttpResponse> {
            EventQuery query;
            auto id_param = [&](const char* name) -> Result<std::optional<ObjectId>> {
              auto text = call.request.QueryParam(name);
              if (!text) return std::optional<ObjectId>();
              NOEMA_ASSIGN_OR_RETURN(ObjectId id, ObjectId::Parse(*text, name));
              return std::optional<ObjectId>(id);
            };
            NOEMA_ASSIGN_OR_RETURN(query.master_account_id, id_param("masterAccountId"));
            NOEMA_ASSIGN_OR_RETURN(query.session_id, id_param("sessionId"));
            query.event_type = call.request.QueryParam("eventType");
            NOEMA_ASSIGN_OR_RETURN(query.from, call.TimeParam("from"));
            NOEMA_ASSIGN_OR_RETURN(query.to, call.TimeParam("to"));
            if (auto order = call.request.QueryParam("order")) {
              if (*order != "asc" && *order != "desc") {
                return Status::InvalidArgument("expected asc or desc", "order");
              }
              query.newest_first = *order == "desc";
            }
            if (call.principal.user) {
              // An API key reads only its own user's events.
              if (!query.master_account_id) query.master_account_id = call.principal.user;
              NOEMA_RETURN_IF_ERROR(call.principal.CanActFor(*query.master_account_id));
            }
            NOEMA_ASSIGN_OR_RETURN(query.limit, call.Limit());
            query.cursor = call.Cursor();
            NOEMA_ASSIGN_OR_RETURN(auto page, call.services.events.Query(query));
            std::vector<std::string> items;
            for (const Document& doc : page.items)
              items.push_back(RenderJson(doc.view(), "eventId"));
            return PageReply(items, page.next_cursor);
          });
}

namespace {

// The PUT and PATCH routes of preferences: the user's id, a JSON body, and the reply is
// what `write` returns (the scope's or the whole object's new value).
using PreferencesWriteFn =
    std::function<Result<Document>(Call& call, const ObjectId& user, DocumentView body)>;
RouteFn PreferencesWrite(PreferencesWriteFn write) {
  return [write = std::move(write)](Call& call) -> Result<HttpResponse> {
    NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.User());
    NOEMA_ASSIGN_OR_RETURN(Document body, ParseJsonBody(call.request));
    NOEMA_ASSIGN_OR_RETURN(Document stored, write(call, user, body.view()));
    return JsonReply(200, RenderJson(stored.view()));
  };
}

}  // namespace

void AddPreferenceRoutes(Api& api) {
  api.Add(Method::kGet, "/v1/users/{id}/preferences", Access::kAuthenticated, "preferences:read",
          [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.User());
            NOEMA_ASSIGN_OR_RETURN(Document all, call.services.preferences.GetAll(user));
            return JsonReply(200, RenderJson(all.view()));
          });
  api.Add(Method::kPut, "/v1/users/{id}/preferences", Access::kAuthenticated, "preferences:write",
          PreferencesWrite([](Call& call, const ObjectId& user, DocumentView body) {
            return call.services.preferences.PutAll(user, body);
          }));
  api.Add(Method::kPatch, "/v1/users/{id}/preferences", Access::kAuthenticated, "preferences:write",
          PreferencesWrite([](Call& call, const ObjectId& user, DocumentView body) {
            return call.services.preferences.PatchAll(user, body);
          }));
  api.Add(Method::kDelete, "/v1/users/{id}/preferences", Access::kAuthenticated,
          "preferences:write", [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.User());
            NOEMA_RETURN_IF_ERROR(call.services.preferences.DeleteAll(user));
            return JsonReply(200, "{\"deleted\":true}");
          });
  api.Add(Method::kGet, "/v1/users/{id}/preferences/{scope}", Access::kAuthenticated,
          "preferences:read", [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.User());
            NOEMA_ASSIGN_OR_RETURN(
                Document scope, call.services.preferences.GetScope(user, call.params.at("scope")));
            return JsonReply(200, RenderJson(scope.view()));
          });
  api.Add(Method::kPut, "/v1/users/{id}/preferences/{scope}", Access::kAuthenticated,
          "preferences:write",
          PreferencesWrite([](Call& call, const ObjectId& user, DocumentView body) {
            return call.services.preferences.PutScope(user, call.params.at("scope"), body);
          }));
  api.Add(Method::kPatch, "/v1/users/{id}/preferences/{scope}", Access::kAuthenticated,
          "preferences:write",
          PreferencesWrite([](Call& call, const ObjectId& user, DocumentView body) {
            return call.services.preferences.PatchScope(user, call.params.at("scope"), body);
          }));
  api.Add(
      Method::kDelete, "/v1/users/{id}/preferences/{scope}", Access::kAuthenticated,
      "preferences:write", [](Call& call) -> Result<HttpResponse> {
        NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.User());
        NOEMA_RETURN_IF_ERROR(call.services.preferences.DeleteScope(user, call.params.at("scope")));
        return JsonReply(200, "{\"deleted\":true}");
      });
}

}  // namespace noema::server
