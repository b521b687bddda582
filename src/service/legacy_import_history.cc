// The legacy importer, part two: history → userEvents and rebuilt userSessions, gens →
// generationOutputs. See docs/legacy-import.md for the mapping.
#include <algorithm>
#include <cctype>
#include <string>
#include <utility>

#include "noema/ethereum.h"
#include "noema/service/legacy_import.h"
#include "service/legacy_import_internal.h"

namespace noema::legacy_internal {
namespace {

constexpr std::string_view kSourceTag = "stationthisbot";

struct MappedEvent {
  std::string event_type;
  Document event_data;
};

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::optional<DocumentView> SubDocument(DocumentView doc, std::string_view path) {
  auto d = doc.GetDocument(path);
  if (!d.ok()) return std::nullopt;
  return *d;
}

// data.<field> else the top-level field, as a string.
std::optional<std::string> DataString(DocumentView doc, std::optional<DocumentView> data,
                                      std::string_view field) {
  if (data) {
    if (auto s = OptString(*data, field)) return s;
  }
  return OptString(doc, field);
}

std::optional<int64_t> OptMillis(DocumentView doc, std::string_view path) {
  auto text = NumberText(doc, path);
  if (!text) return std::nullopt;
  Result<ExactDecimal> d = ExactDecimal::Parse(*text, path);
  if (!d.ok() || d->IsNegative()) return std::nullopt;
  int64_t whole = d->mantissa;
  for (int k = 0; k < d->scale; ++k) whole /= 10;
  return whole;
}

bool IsStartCommand(std::string_view command) {
  if (command.starts_with("/")) command.remove_prefix(1);
  if (!command.starts_with("start")) return false;
  return command.size() == 5 || command[5] == '@' || command[5] == ' ';
}

ObjectId GenerationIdForRun(std::string_view run_id) {
  return HashObjectId(std::string(kSourceTag) + ":run:" + std::string(run_id));
}

// Appends the legacy document minus what became top-level fields of the event.
void AppendLegacyFields(DocumentView doc, DocumentBuilder* out) {
  DocumentBuilder& b = *out;
  bson_iter_t it;
  bson_iter_init(&it, doc.get());
  while (bson_iter_next(&it)) {
    const std::string_view k = bson_iter_key(&it);
    if (k == "userId" || k == "timestamp") continue;
    if (k == "_id") {
      b.AppendIter("legacyId", it);
      continue;
    }
    b.AppendIter(k, it);
  }
}

// The same as a document of its own.
Document LegacyPart(DocumentView doc) {
  DocumentBuilder b;
  AppendLegacyFields(doc, &b);
  return std::move(b).Build();
}

std::string ArtifactType(std::string_view url) {
  std::string_view path = url.substr(0, url.find_first_of("?#"));
  const size_t dot = path.rfind('.');
  const size_t slash = path.rfind('/');
  if (dot == std::string_view::npos || (slash != std::string_view::npos && dot < slash)) {
    return "file";
  }
  const std::string ext = Lower(std::string(path.substr(dot + 1)));
  for (std::string_view e : {"png", "jpg", "jpeg", "webp", "gif", "bmp"}) {
    if (ext == e) return "image";
  }
  for (std::string_view e : {"mp4", "webm", "mov", "mkv", "avi"}) {
    if (ext == e) return "video";
  }
  for (std::string_view e : {"mp3", "wav", "ogg", "flac", "m4a"}) {
    if (ext == e) return "audio";
  }
  for (std::string_view e : {"txt", "json", "md", "csv"}) {
    if (ext == e) return "text_file";
  }
  return "file";
}

}  // namespace

Status Importer::QueueEvent(Document event, std::string_view file, size_t line,
                            LegacyCollectionStats* stats) {
  events_.push_back(std::move(event));
  event_origins_.emplace_back(std::string(file), line);
  event_stats_.push_back(stats);
  if (events_.size() >= kInsertManyBatchMax) return FlushEvents();
  return Status::Ok();
}

Status Importer::FlushBatch(Collection collection, std::vector<Document>* docs,
                            std::vector<std::pair<std::string, size_t>>* origins,
                            std::vector<LegacyCollectionStats*>* stats, int64_t* written) {
  if (docs->empty()) return Status::Ok();
  Batch batch;
  batch.collection = collection;
  batch.docs = std::move(*docs);
  batch.origins = std::move(*origins);
  batch.stats = std::move(*stats);
  batch.written = written;
  docs->clear();
  origins->clear();
  stats->clear();
  std::unique_lock<std::mutex> lock(writer_mu_);
  writer_cv_.wait(lock, [&] { return pending_.size() < kWriterQueueMax || !writer_status_.ok(); });
  if (!writer_status_.ok()) return writer_status_;
  pending_.push_back(std::move(batch));
  writer_cv_.notify_all();
  return Status::Ok();
}

void Importer::StartWriter() {
  std::lock_guard<std::mutex> lock(writer_mu_);
  if (writer_.joinable()) return;
  writer_stop_ = false;
  writer_ = std::thread([this] { WriterLoop(); });
}

void Importer::StopWriter() {
  {
    std::lock_guard<std::mutex> lock(writer_mu_);
    writer_stop_ = true;
    writer_cv_.notify_all();
  }
  if (writer_.joinable()) writer_.join();
}

Status Importer::Drain() {
  std::unique_lock<std::mutex> lock(writer_mu_);
  writer_cv_.wait(lock, [&] { return pending_.empty() && !writer_busy_; });
  return writer_status_;
}

void Importer::WriterLoop() {
  for (;;) {
    Batch batch;
    {
      std::unique_lock<std::mutex> lock(writer_mu_);
      writer_cv_.wait(lock, [&] { return !pending_.empty() || writer_stop_; });
      if (pending_.empty()) return;  // stopping, and nothing left
      batch = std::move(pending_.front());
      pending_.pop_front();
      writer_busy_ = true;
    }
    // After an error the rest is dropped: the import stops and reports it.
    Status status = writer_status_.ok() ? WriteBatch(batch) : Status::Ok();
    {
      std::lock_guard<std::mutex> lock(writer_mu_);
      writer_busy_ = false;
      if (!status.ok() && writer_status_.ok()) writer_status_ = status;
      writer_cv_.notify_all();
    }
  }
}

Status Importer::WriteBatch(Batch& batch) {
  std::vector<Status> results(batch.docs.size());
  if (options_.dry_run) {
    // Nothing is written: a document counts as new unless one with its id exists.
    NOEMA_RETURN_IF_ERROR(ctx_.store->RunReadOnly([&](Transaction& tx) -> Status {
      for (size_t i = 0; i < batch.docs.size(); ++i) {
        // What InsertMany would refuse is refused here too, so the report is the same.
        results[i] = CheckDocumentForStore(batch.collection, batch.docs[i]);
        if (!results[i].ok()) continue;
        NOEMA_ASSIGN_OR_RETURN(ObjectId id, batch.docs[i].view().GetObjectId("_id"));
        Result<Document> have = tx.Get(batch.collection, id);
        results[i] = have.ok() ? Status::AlreadyExists("already imported") : Status::Ok();
      }
      return Status::Ok();
    }));
  } else {
    NOEMA_RETURN_IF_ERROR(ctx_.store->InsertMany(batch.collection, batch.docs, &results));
  }
  for (size_t i = 0; i < batch.docs.size(); ++i) {
    LegacyCollectionStats* s = batch.stats[i];
    if (results[i].ok()) {
      std::lock_guard<std::mutex> lock(report_mu_);
      ++*batch.written;
      if (s != nullptr) ++s->imported;
    } else if (results[i].IsAlreadyExists()) {
      std::lock_guard<std::mutex> lock(report_mu_);
      if (s != nullptr) ++s->unchanged;
    } else if (s != nullptr) {
      Skip(*s, batch.origins[i].first, batch.origins[i].second, results[i].ToString());
    } else {
      Notice(
          batch.origins[i].first, batch.origins[i].second,
          std::string(CollectionName(batch.collection)) + " not written: " + results[i].ToString());
    }
  }
  return Status::Ok();
}

Status Importer::FlushEvents() {
  return FlushBatch(Collection::kUserEvents, &events_, &event_origins_, &event_stats_,
                    &report_->events_written);
}

Status Importer::FlushSessions() {
  return FlushBatch(Collection::kUserSessions, &sessions_, &session_origins_, &session_stats_,
                    &report_->sessions_written);
}

Status Importer::FlushGenerations() {
  // The count lives in the importer: the writer thread updates it after this returns.
  return FlushBatch(Collection::kGenerationOutputs, &generations_, &generation_origins_,
                    &generation_stats_, &generations_written_);
}

Status Importer::CloseSession(const std::string& uid, std::string_view reason, Timestamp end) {
  auto it = open_sessions_.find(uid);
  if (it == open_sessions_.end()) return Status::Ok();
  const OpenSession& s = it->second;
  DocumentBuilder b;
  b.Append("_id", s.session_id)
      .Append("sessionId", s.session_id)
      .Append("masterAccountId", s.master_account_id)
      .Append("startTime", s.start)
      .Append("endTime", std::max(end, s.start))
      .Append("endReason", reason)
      .Append("platform", kPlatform)
      .Append("isActive", false)
      .Append("lastUserActivityTimestamp", s.last);
  b.StartDocument("metadata")
      .Append("source", kSourceTag)
      .Append("legacyUserId", uid)
      .Append("eventCount", s.events)
      .End();
  sessions_.push_back(std::move(b).Build());
  session_origins_.emplace_back("history.json", 0);
  session_stats_.push_back(nullptr);
  open_sessions_.erase(it);
  if (sessions_.size() >= kInsertManyBatchMax) return FlushSessions();
  return Status::Ok();
}

Status Importer::CloseAllSessions() {
  std::vector<std::string> users;
  users.reserve(open_sessions_.size());
  for (const auto& [uid, s] : open_sessions_) users.push_back(uid);
  std::sort(users.begin(), users.end());
  for (const std::string& uid : users) {
    const Timestamp last = open_sessions_[uid].last;
    NOEMA_RETURN_IF_ERROR(CloseSession(uid, "system_shutdown", last));
  }
  return Status::Ok();
}

Status Importer::HistoryStep(DocumentView doc, std::string_view file, size_t line,
                             LegacyCollectionStats& stats) {
  const std::string type = OptString(doc, "type").value_or("");
  if (type == "error_event") {
    Skip(stats, file, line, "error_event: a system error, not a user event");
    return Status::Ok();
  }
  static constexpr std::string_view kTypes[] = {"command",     "menu_interaction", "generation",
                                                "queue_event", "delivery_event",   "user_state",
                                                "gatekeeping", "account_action",   "verification"};
  if (std::find(std::begin(kTypes), std::end(kTypes), type) == std::end(kTypes)) {
    Skip(stats, file, line, "type: unknown history type '" + type + "'");
    return Status::Ok();
  }
  Result<std::string> uid = LegacyUserId(doc);
  if (!uid.ok()) return Skip(stats, file, line, uid.status().ToString()), Status::Ok();
  Result<Timestamp> ts = LegacyTime(doc, "timestamp");
  if (!ts.ok()) return Skip(stats, file, line, ts.status().ToString()), Status::Ok();
  const std::optional<DocumentView> data = SubDocument(doc, "data");
  const std::string sub = Lower(DataString(doc, data, "eventType").value_or(""));
  const std::string command = DataString(doc, data, "command").value_or("");

  // Nothing is written until the event is known to be storable: the user's id is the
  // existing user's, else the one EnsureUser will create it with, and the session is
  // decided here and changed only once the event passes the store's checks.
  NOEMA_ASSIGN_OR_RETURN(std::optional<ObjectId> known, FindUser(*uid));
  const ObjectId predicted_mid = known ? *known : NewUserId(*uid);

  // Sessions (LEGACY.md): a gap over 30 minutes, first_join, check_in and /start start
  // one; kicked ends one.
  const bool starts = (type == "user_state" && (sub == "first_join" || sub == "check_in")) ||
                      (type == "command" && IsStartCommand(command));
  const bool ends = type == "user_state" && sub == "kicked";
  const std::string key = LegacyDocumentKey(doc);
  auto open = open_sessions_.find(*uid);
  std::string_view close_reason;  // the open session ends before this event
  bool out_of_order = false;
  if (open != open_sessions_.end() && *ts >= open->second.last) {
    if (*ts - open->second.last > kLegacySessionGapMs) {
      close_reason = "session_timeout_inactive";
    } else if (starts && open->second.events > 0) {
      close_reason = "user_command_quit";
    }
  } else if (open != open_sessions_.end()) {
    out_of_order = true;
  }
  const bool new_session = open == open_sessions_.end() || !close_reason.empty();
  const ObjectId session_id =
      new_session ? TimedHashObjectId(*ts, std::string(kSourceTag) + ":session:" + key)
                  : open->second.session_id;
  const Timestamp session_start = new_session ? *ts : open->second.start;

  // The event.
  const ObjectId event_id = TimedHashObjectId(*ts, std::string(kSourceTag) + ":history:" + key);
  std::optional<std::string> run_id = DataString(doc, data, "runId");
  // Built in one pass (eventData nested in place, no intermediate copies).
  auto build = [&](const ObjectId& mid) -> Document {
    DocumentBuilder event;
    event.Append("_id", event_id)
        .Append("eventId", event_id)
        .Append("masterAccountId", mid)
        .Append("sessionId", session_id)
        .Append("timestamp", *ts)
        .Append("sourcePlatform", kPlatform)
        .StartDocument("eventData");
    DocumentBuilder& d = event;
    std::string event_type;
    if (type == "command") {
      event_type = "command_executed";
      d.Append("commandName", command.empty() ? std::string("unknown") : command)
          .Append("success", true)
          .Append("executionTimeMs", int64_t{0})
          .Append("source", "chat_input");
    } else if (type == "menu_interaction") {
      event_type = "menu_item_clicked";
      const bool custom =
          data && data->GetBool("isCustomAction").ok() && *data->GetBool("isCustomAction");
      d.Append("menuName", "telegram_inline_menu")
          .Append("itemId", DataString(doc, data, "action").value_or("unknown"))
          .Append("actionType", custom ? "custom_action" : "callback");
    } else if (type == "generation") {
      const std::string status = Lower(DataString(doc, data, "status").value_or(""));
      const ObjectId generation_id = run_id ? GenerationIdForRun(*run_id) : event_id;
      if (status == "completed" || status == "complete" || status == "success" ||
          status == "done") {
        event_type = "generation_completed";
        d.Append("generationId", generation_id)
            .Append("serviceName", kServiceName)
            .Append("durationMs", data ? OptMillis(*data, "duration").value_or(0) : int64_t{0})
            .Append("costUsd", Money::Zero())
            .Append("status", "success")
            .Append("artifactCount", int32_t{0});
      } else if (status == "failed" || status == "error" || status == "cancelled" ||
                 status == "canceled" || status == "timeout") {
        event_type = "generation_failed";
        const std::string mapped = status == "timeout" ? "timeout"
                                   : (status == "cancelled" || status == "canceled")
                                       ? "cancelled_by_user"
                                       : "failed";
        d.Append("generationId", generation_id)
            .Append("serviceName", kServiceName)
            .Append("status", mapped)
            .Append("errorSource", "service_api");
      } else {
        event_type = "generation_requested";
        d.Append("serviceName", kServiceName);
        if (run_id) d.Append("generationId", generation_id);
      }
    } else if (type == "queue_event" || type == "delivery_event") {
      event_type = type == "queue_event" ? "generation_queued" : "generation_delivered";
      if (run_id) d.Append("generationId", GenerationIdForRun(*run_id));
    } else if (type == "user_state") {
      if (sub == "first_join" || sub == "check_in") {
        event_type = "session_started";
        d.Append("platform", kPlatform).Append("startMethod", sub);
      } else if (sub == "kicked") {
        event_type = "session_ended";
        d.Append("endReason", "session_timeout_inactive").Append("durationMs", *ts - session_start);
      } else {
        event_type = "user_state_changed";
      }
    } else if (type == "gatekeeping") {
      event_type = "user_facing_error_displayed";
      const std::string reason = DataString(doc, data, "reason").value_or("");
      d.Append("errorType", sub.empty() ? std::string("gatekeeping") : sub)
          .Append("errorMessage",
                  reason.empty() ? (sub.empty() ? std::string("gatekeeping") : sub) : reason)
          .Append("severity", "warning")
          .Append("component", "gatekeeping");
    } else if (type == "account_action") {
      const std::string action = DataString(doc, data, "action").value_or("");
      if (action == "sign_out") {
        event_type = "user_logout";
        d.Append("logoutReason", "sign_out");
      } else {
        event_type = "account_action";
        d.Append("action", action);
      }
    } else {  // verification
      const bool success = data && data->GetBool("success").ok() && *data->GetBool("success");
      std::string wallet = DataString(doc, data, "wallet").value_or("");
      if (auto checksummed = ethereum::ChecksumAddress(wallet); checksummed.ok()) {
        wallet = *checksummed;
      }
      event_type = success ? "wallet_verified" : "wallet_verification_failed";
      d.Append("address", wallet);
    }
    d.StartDocument("legacy");
    AppendLegacyFields(doc, &d);
    d.End().End();
    event.Append("eventType", event_type);
    return std::move(event).Build();
  };
  Document event = build(predicted_mid);
  // The store's own checks (an empty key, a time before 1970, the size, the schema),
  // before the event's user or session is written, in a real and a dry run alike.
  if (Status storable = CheckDocumentForStore(Collection::kUserEvents, event); !storable.ok()) {
    Skip(stats, file, line, storable.ToString());
    return Status::Ok();
  }

  bool created = false;
  Result<ObjectId> mid = EnsureUser(*uid, &created);
  if (!mid.ok()) return mid.status();
  if (*mid != predicted_mid) event = build(*mid);  // created by someone else meanwhile
  if (created) Notice(file, line, "telegram user " + *uid + " created from history");
  if (out_of_order) {
    Notice(file, line,
           "out of time order for telegram user " + *uid + "; attached to the session in progress");
  }
  if (!close_reason.empty()) {
    NOEMA_RETURN_IF_ERROR(CloseSession(*uid, close_reason, open->second.last));
  }
  if (new_session) {
    OpenSession s;
    s.session_id = session_id;
    s.master_account_id = *mid;
    s.start = *ts;
    s.last = *ts;
    open = open_sessions_.insert_or_assign(*uid, s).first;
  }
  OpenSession& session = open->second;
  session.last = std::max(session.last, *ts);
  ++session.events;
  if (type == "generation" && run_id && !runs_.contains(*run_id) &&
      runs_.size() < kLegacyRunIndexMax) {
    runs_.emplace(*run_id, RunLink{event_id, session_id});
  }
  NOEMA_RETURN_IF_ERROR(QueueEvent(std::move(event), file, line, &stats));
  if (ends) NOEMA_RETURN_IF_ERROR(CloseSession(*uid, "session_timeout_inactive", *ts));
  return Status::Ok();
}

Result<ObjectId> Importer::SessionForGeneration(const ObjectId& master_account_id, Timestamp at,
                                                std::string_view key) {
  // The sessions queued so far must be stored before the store is asked.
  NOEMA_RETURN_IF_ERROR(FlushSessions());
  NOEMA_RETURN_IF_ERROR(Drain());
  std::optional<ObjectId> found;
  NOEMA_RETURN_IF_ERROR(ctx_.store->RunReadOnly([&](Transaction& tx) -> Status {
    found.reset();
    Query q;
    q.filter.Eq("masterAccountId", master_account_id)
        .Range("startTime", std::nullopt, Value(at + 1));
    q.sort_field = "startTime";
    q.descending = true;
    q.limit = 1;
    NOEMA_ASSIGN_OR_RETURN(Page page, tx.Find(Collection::kUserSessions, q));
    if (page.items.empty()) return Status::Ok();
    DocumentView s = page.items[0];
    NOEMA_ASSIGN_OR_RETURN(Timestamp last, s.GetDate("lastUserActivityTimestamp"));
    if (at - last <= kLegacySessionGapMs) {
      NOEMA_ASSIGN_OR_RETURN(found, s.GetObjectId("_id"));
    }
    return Status::Ok();
  }));
  if (found) return *found;
  // A session of its own, as the legacy rule would have started one for it.
  const ObjectId id =
      TimedHashObjectId(at, std::string(kSourceTag) + ":gens-session:" + std::string(key));
  DocumentBuilder b;
  b.Append("_id", id)
      .Append("sessionId", id)
      .Append("masterAccountId", master_account_id)
      .Append("startTime", at)
      .Append("endTime", at)
      .Append("endReason", "system_shutdown")
      .Append("platform", kPlatform)
      .Append("isActive", false)
      .Append("lastUserActivityTimestamp", at);
  b.StartDocument("metadata").Append("source", kSourceTag).Append("fromGens", true).End();
  sessions_.push_back(std::move(b).Build());
  session_origins_.emplace_back("gens.json", 0);
  session_stats_.push_back(nullptr);
  if (sessions_.size() >= kInsertManyBatchMax) NOEMA_RETURN_IF_ERROR(FlushSessions());
  return id;
}

Status Importer::GensStep(DocumentView doc, std::string_view file, size_t line,
                          LegacyCollectionStats& stats) {
  Result<std::string> uid = LegacyUserId(doc);
  if (!uid.ok()) return Skip(stats, file, line, uid.status().ToString()), Status::Ok();
  Result<Timestamp> ts = LegacyTime(doc, "timestamp");
  if (!ts.ok()) return Skip(stats, file, line, ts.status().ToString()), Status::Ok();
  std::optional<std::string> run_id = OptString(doc, "runId");
  const bool old_shape = !run_id && doc.Has("run_id");
  if (!run_id) run_id = OptString(doc, "run_id");
  if (run_id && run_id->empty()) run_id.reset();
  const std::string key = LegacyDocumentKey(doc);
  const ObjectId generation_id =
      run_id ? GenerationIdForRun(*run_id)
             : TimedHashObjectId(*ts, std::string(kSourceTag) + ":gens:" + key);

  // Status.
  std::string legacy_status;
  bool status_present = false;
  if (auto s = OptString(doc, "status")) {
    legacy_status = *s;
    status_present = true;
  }
  const std::string lower = Lower(legacy_status);
  std::string status;
  if (lower == "success" || lower == "completed" || lower == "complete" || lower == "done") {
    status = "success";
  } else if (lower == "failed" || lower == "error" || lower == "failure") {
    status = "failed";
  } else if (lower == "cancelled" || lower == "canceled") {
    status = "cancelled_by_user";
  } else if (lower == "timeout" || lower == "timed_out") {
    status = "timeout";
  }

  // Artifacts.
  std::vector<std::pair<std::string, std::string>> artifacts;
  for (std::string_view path : {"outputs.urls", "urls"}) {
    auto arr = doc.GetArray(path);
    if (!arr.ok()) continue;
    bson_iter_t it;
    bson_iter_init(&it, arr->get());
    while (bson_iter_next(&it)) {
      std::string url;
      if (BSON_ITER_HOLDS_UTF8(&it)) {
        url = bson_iter_utf8(&it, nullptr);
      } else if (BSON_ITER_HOLDS_DOCUMENT(&it)) {
        uint32_t len = 0;
        const uint8_t* data = nullptr;
        bson_iter_document(&it, &len, &data);
        url = OptString(DocumentView(data, len), "url").value_or("");
      }
      if (!url.empty()) artifacts.emplace_back(url, ArtifactType(url));
    }
  }
  if (artifacts.size() > ctx_.config.generation_artifacts_max) {
    Skip(stats, file, line,
         "outputs.urls: " + std::to_string(artifacts.size()) + " artifacts, more than " +
             std::to_string(ctx_.config.generation_artifacts_max));
    return Status::Ok();
  }

  // requestPayload: promptObj, or the flat prompt fields of the 2024-09 shape.
  Document request;
  if (auto p = doc.GetDocument("promptObj"); p.ok()) {
    request = p->Copy();
  } else {
    DocumentBuilder b;
    bson_iter_t it;
    bson_iter_init(&it, doc.get());
    while (bson_iter_next(&it)) {
      const std::string_view k = bson_iter_key(&it);
      if (k.starts_with("input_") || k == "prompt" || k == "userPrompt" || k == "basePrompt" ||
          k == "timeRequested" || k == "dointsAdded" || k == "isCookMode") {
        b.AppendIter(k, it);
      }
    }
    request = std::move(b).Build();
  }
  DocumentBuilder response_builder;
  for (std::string_view k : {"outputs", "message"}) {
    if (auto it = doc.Find(k)) response_builder.AppendIter(k, *it);
  }
  const Document response = std::move(response_builder).Build();
  const Document legacy = LegacyPart(doc);
  for (const auto& [name, part] :
       {std::pair<const char*, const Document*>{"requestPayload", &request},
        {"responsePayload", &response},
        {"metadata.legacy", &legacy}}) {
    if (part->size_bytes() > ctx_.config.generation_payload_bytes_max) {
      Skip(stats, file, line,
           std::string(name) + ": " + std::to_string(part->size_bytes()) + " bytes, more than " +
               std::to_string(ctx_.config.generation_payload_bytes_max));
      return Status::Ok();
    }
  }

  // Two records of one run (or one legacy _id) map to one generation record: the first
  // is imported, the second is reported, and writes nothing (no event either). A record
  // imported by an earlier run is found by its id at insert ("unchanged").
  if (auto first = generation_lines_.find(generation_id); first != generation_lines_.end()) {
    Skip(stats, file, line,
         (run_id ? "runId " + *run_id : "legacy record " + key) +
             ": a second gens record of the same generation (the first is " + std::string(file) +
             ":" + std::to_string(first->second) + "); not imported");
    return Status::Ok();
  }

  // The record, built once with stand-in ids to be checked and once with the real ones.
  auto build = [&](const ObjectId& mid, const ObjectId& session_id, const ObjectId& event_id) {
    DocumentBuilder g;
    g.Append("_id", generation_id)
        .Append("generationId", generation_id)
        .Append("masterAccountId", mid)
        .Append("sessionId", session_id)
        .Append("initiatingEventId", event_id)
        .Append("serviceName", kServiceName);
    if (run_id) {
      g.Append("platformSpecificRunId", *run_id);
    } else {
      g.AppendNull("platformSpecificRunId");
    }
    g.Append("requestTimestamp", *ts);
    if (std::optional<int64_t> duration = OptMillis(doc, "duration")) {
      g.Append("responseTimestamp", *ts + *duration).Append("durationMs", *duration);
    }
    g.Append("status", status.empty() ? std::string("failed") : status);
    if (!request.empty()) g.AppendDocument("requestPayload", request);
    if (!response.empty()) g.AppendDocument("responsePayload", response);
    if (!artifacts.empty()) {
      g.StartArray("artifactUrls");
      for (const auto& [url, type] : artifacts) {
        g.StartDocument(g.NextArrayKey()).Append("url", url).Append("type", type).End();
      }
      g.End();
    }
    if (status.empty()) {
      g.StartDocument("errorDetails")
          .Append("errorCode", "legacy_status")
          .Append("errorMessage", status_present ? "unknown legacy status '" + legacy_status + "'"
                                                 : std::string("no legacy status"))
          .Append("errorSource", "legacy_import");
      g.StartDocument("additionalContext");
      if (status_present) {
        g.Append("legacyStatus", legacy_status);
      } else {
        g.AppendNull("legacyStatus");
      }
      g.End().End();
    }
    g.StartDocument("metadata")
        .Append("source", kSourceTag)
        .Append("legacyShape", old_shape ? "2024-09" : "2024-12")
        .AppendDocument("legacy", legacy)
        .End();
    return std::move(g).Build();
  };
  // The store's own checks (an empty key in promptObj, the size, the schema), before the
  // record's user, session or generation_requested event is written, in a real and a dry
  // run alike (the ids do not change the outcome: any ObjectId passes).
  const Document probe = build(ObjectId(), ObjectId(), ObjectId());
  if (Status storable = CheckDocumentForStore(Collection::kGenerationOutputs, probe);
      !storable.ok()) {
    Skip(stats, file, line, storable.ToString());
    return Status::Ok();
  }
  // The generation_requested event written for a record without a history event of its
  // run, checked the same way (a time before 1970 passes the record's check, not the
  // event's): refused at insert, it left a record pointing at no event.
  const ObjectId request_event_id =
      TimedHashObjectId(*ts, std::string(kSourceTag) + ":gens-request:" + key);
  auto build_event = [&](const ObjectId& mid, const ObjectId& session_id) {
    DocumentBuilder d;
    d.Append("serviceName", kServiceName).Append("generationId", generation_id);
    d.StartDocument("legacy").Append("source", "gens");
    if (run_id) d.Append("runId", *run_id);
    d.End();
    const Document event_data = std::move(d).Build();
    DocumentBuilder event;
    event.Append("_id", request_event_id)
        .Append("eventId", request_event_id)
        .Append("masterAccountId", mid)
        .Append("sessionId", session_id)
        .Append("timestamp", *ts)
        .Append("eventType", "generation_requested")
        .AppendDocument("eventData", event_data)
        .Append("sourcePlatform", kPlatform);
    return std::move(event).Build();
  };
  if (!(run_id && runs_.contains(*run_id))) {
    const Document event_probe = build_event(ObjectId(), ObjectId());
    if (Status storable = CheckDocumentForStore(Collection::kUserEvents, event_probe);
        !storable.ok()) {
      Skip(stats, file, line, storable.ToString());
      return Status::Ok();
    }
  }

  bool created = false;
  Result<ObjectId> mid = EnsureUser(*uid, &created);
  if (!mid.ok()) return mid.status();
  if (created) Notice(file, line, "telegram user " + *uid + " created from gens");

  // The initiating event and session: the history event of the run, else a
  // generation_requested event written here.
  ObjectId event_id;
  ObjectId session_id;
  if (auto link = run_id ? runs_.find(*run_id) : runs_.end(); link != runs_.end()) {
    event_id = link->second.event_id;
    session_id = link->second.session_id;
  } else {
    NOEMA_ASSIGN_OR_RETURN(session_id, SessionForGeneration(*mid, *ts, key));
    event_id = request_event_id;
    NOEMA_RETURN_IF_ERROR(QueueEvent(build_event(*mid, session_id), file, line, nullptr));
    ++report_->generation_requests_written;
  }

  generations_.push_back(build(*mid, session_id, event_id));
  if (generation_lines_.size() < kLegacyRunIndexMax) generation_lines_.emplace(generation_id, line);
  generation_origins_.emplace_back(std::string(file), line);
  generation_stats_.push_back(&stats);
  if (generations_.size() >= kInsertManyBatchMax) {
    // Events and sessions first, so that a record never points at what is not stored.
    NOEMA_RETURN_IF_ERROR(FlushSessions());
    NOEMA_RETURN_IF_ERROR(FlushEvents());
    NOEMA_RETURN_IF_ERROR(FlushGenerations());
  }
  return Status::Ok();
}

}  // namespace noema::legacy_internal
