#include "noema/service/preferences.h"

#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "service/event_writer.h"
#include "service/user_core_doc.h"

namespace noema {
namespace {

using service_internal::CopyFieldsExcept;

constexpr std::string_view kPreferencesField = "preferences";
// A lazily created document can race with another first write; the loser retries once.
constexpr int kCreateAttemptsMax = 2;

Status UserNotFound() { return {StatusCode::kNotFound, "no such user", "masterAccountId"}; }
Status ScopeNotFound() { return {StatusCode::kNotFound, "no such preference scope", "scope"}; }

Status ValidateScopeName(std::string_view scope) {
  bool ok = !scope.empty() && scope.size() <= kPreferenceScopeCharsMax;
  for (char c : scope) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '_' || c == ':' || c == '-');
  }
  if (!ok) {
    return Status::InvalidArgument(
        "scope must be globalSettings or 1-128 characters of [A-Za-z0-9_:-]", "scope");
  }
  return Status::Ok();
}

std::string JoinPath(std::string_view prefix, std::string_view key) {
  if (prefix.empty()) return std::string(key);
  std::string out(prefix);
  out += '.';
  out += key;
  return out;
}

DocumentView ChildView(const bson_iter_t& iter) {
  uint32_t length = 0;
  const uint8_t* data = nullptr;
  if (BSON_ITER_HOLDS_ARRAY(&iter)) {
    bson_iter_array(&iter, &length, &data);
  } else {
    bson_iter_document(&iter, &length, &data);
  }
  return DocumentView(data, length);
}

// Keys are non-empty, do not start with `$` and hold no `.`; nesting is bounded.
Status ValidateValue(DocumentView value, bool is_array, const std::string& path, int depth) {
  if (depth > kPreferencesDepthMax) {
    return Status::InvalidArgument(
        "nested deeper than " + std::to_string(kPreferencesDepthMax) + " levels", path);
  }
  bson_iter_t iter;
  if (!bson_iter_init(&iter, value.get())) return Status::InvalidArgument("malformed", path);
  while (bson_iter_next(&iter)) {
    std::string_view key(bson_iter_key(&iter), bson_iter_key_len(&iter));
    std::string child_path = JoinPath(path, key);
    if (!is_array && (key.empty() || key.front() == '$' || key.find('.') != key.npos)) {
      return Status::InvalidArgument("a key is non-empty, without a leading $ and without .",
                                     child_path);
    }
    if (BSON_ITER_HOLDS_DOCUMENT(&iter) || BSON_ITER_HOLDS_ARRAY(&iter)) {
      NOEMA_RETURN_IF_ERROR(
          ValidateValue(ChildView(iter), BSON_ITER_HOLDS_ARRAY(&iter), child_path, depth + 1));
    }
  }
  return Status::Ok();
}

void MergeObjects(DocumentView target, DocumentView patch, DocumentBuilder* out);

// RFC 7396 MergePatch(target, patch) appended under `key`; `target` may be absent.
// REQUIRES: patch is not null (the caller deletes for null).
void MergeValue(const bson_iter_t* target, const bson_iter_t& patch, std::string_view key,
                DocumentBuilder* out) {
  if (!BSON_ITER_HOLDS_DOCUMENT(&patch)) {
    out->AppendIter(key, patch);
    return;
  }
  Document empty;
  DocumentView target_object =
      target != nullptr && BSON_ITER_HOLDS_DOCUMENT(target) ? ChildView(*target) : empty.view();
  out->StartDocument(key);
  MergeObjects(target_object, ChildView(patch), out);
  out->End();
}

void MergeObjects(DocumentView target, DocumentView patch, DocumentBuilder* out) {
  std::unordered_map<std::string_view, bson_iter_t> patch_fields;
  bson_iter_t iter;
  if (bson_iter_init(&iter, patch.get())) {
    while (bson_iter_next(&iter)) {
      patch_fields.emplace(std::string_view(bson_iter_key(&iter), bson_iter_key_len(&iter)), iter);
    }
  }
  std::unordered_map<std::string_view, bool> in_target;
  if (bson_iter_init(&iter, target.get())) {
    while (bson_iter_next(&iter)) {
      std::string_view key(bson_iter_key(&iter), bson_iter_key_len(&iter));
      in_target[key] = true;
      auto found = patch_fields.find(key);
      if (found == patch_fields.end()) {
        out->AppendIter(key, iter);
      } else if (!BSON_ITER_HOLDS_NULL(&found->second)) {
        MergeValue(&iter, found->second, key, out);
      }
    }
  }
  if (bson_iter_init(&iter, patch.get())) {
    while (bson_iter_next(&iter)) {
      std::string_view key(bson_iter_key(&iter), bson_iter_key_len(&iter));
      if (in_target.count(key) != 0 || BSON_ITER_HOLDS_NULL(&iter)) continue;
      in_target[key] = true;  // a repeated patch key applies once
      MergeValue(nullptr, iter, key, out);
    }
  }
}

// Finds a scope in a `preferences` object.
std::optional<DocumentView> FindScope(DocumentView preferences, std::string_view scope) {
  bson_iter_t iter;
  if (!bson_iter_init(&iter, preferences.get())) return std::nullopt;
  while (bson_iter_next(&iter)) {
    if (std::string_view(bson_iter_key(&iter), bson_iter_key_len(&iter)) == scope &&
        BSON_ITER_HOLDS_DOCUMENT(&iter)) {
      return ChildView(iter);
    }
  }
  return std::nullopt;
}

// `preferences` with `scope` set to `value` (in its place, or last when new), or without
// the scope when `value` is absent.
Document WithScope(DocumentView preferences, std::string_view scope,
                   std::optional<DocumentView> value) {
  DocumentBuilder out;
  bool placed = false;
  bson_iter_t iter;
  if (bson_iter_init(&iter, preferences.get())) {
    while (bson_iter_next(&iter)) {
      std::string_view key(bson_iter_key(&iter), bson_iter_key_len(&iter));
      if (key != scope) {
        out.AppendIter(key, iter);
      } else if (value.has_value() && !placed) {
        out.AppendDocument(key, *value);
        placed = true;
      }
    }
  }
  if (value.has_value() && !placed) out.AppendDocument(scope, *value);
  return std::move(out).Build();
}

// The scope names of a whole `preferences` object given by a caller (PutAll, PatchAll):
// valid, each once, each value an object (or, when `null_deletes`, null). The field of an
// error is the scope's own name, as it stands in the caller's object.
Status ValidateScopesOf(DocumentView preferences, bool null_deletes) {
  bson_iter_t iter;
  if (!bson_iter_init(&iter, preferences.get())) {
    return Status::InvalidArgument("malformed", std::string(kPreferencesField));
  }
  std::unordered_set<std::string_view> seen;
  while (bson_iter_next(&iter)) {
    std::string scope(bson_iter_key(&iter), bson_iter_key_len(&iter));
    Status name = ValidateScopeName(scope);
    if (!name.ok()) return Status::InvalidArgument(name.message(), scope);
    if (!seen.emplace(bson_iter_key(&iter), bson_iter_key_len(&iter)).second) {
      return Status::InvalidArgument("the scope appears twice", scope);
    }
    bool is_null = BSON_ITER_HOLDS_NULL(&iter);
    if (!BSON_ITER_HOLDS_DOCUMENT(&iter) && !(null_deletes && is_null)) {
      return Status::InvalidArgument(
          null_deletes ? "a scope's settings are an object, or null to remove the scope"
                       : "a scope's settings are an object",
          scope);
    }
  }
  return Status::Ok();
}

// The keys inside every scope of a `preferences` object; paths are "<scope>.<key>...".
Status ValidateScopeValues(DocumentView preferences) {
  bson_iter_t iter;
  if (!bson_iter_init(&iter, preferences.get())) {
    return Status::InvalidArgument("malformed", std::string(kPreferencesField));
  }
  while (bson_iter_next(&iter)) {
    std::string scope(bson_iter_key(&iter), bson_iter_key_len(&iter));
    if (!BSON_ITER_HOLDS_DOCUMENT(&iter)) {
      return Status::InvalidArgument("a scope's settings are an object", scope);
    }
    NOEMA_RETURN_IF_ERROR(ValidateValue(ChildView(iter), false, scope, 1));
  }
  return Status::Ok();
}

// Reads the user's preferences object inside `tx`; nullopt when the user has no document.
// `for_write`: the caller will store preferences, which an erased user (whose document
// the erasure deleted, DECISIONS.md 18) takes no more: FailedPrecondition.
Result<std::optional<Document>> LoadPreferencesDocument(Transaction& tx, const ObjectId& user,
                                                        bool for_write = false) {
  Result<Document> doc = tx.Get(Collection::kUserPreferences, user);
  if (doc.ok()) return std::optional<Document>(std::move(doc).value());
  if (!doc.status().IsNotFound()) return doc.status();
  Result<Document> core = tx.Get(Collection::kUserCore, user);
  if (!core.ok()) return core.status().IsNotFound() ? UserNotFound() : core.status();
  if (for_write) NOEMA_RETURN_IF_ERROR(service_internal::RefuseErased(core->view()));
  return std::optional<Document>();
}

// The user's new `preferences` object from the current one (empty when there is none).
// It must be valid: the change checks what it brings in.
using PreferencesChange = std::function<Result<Document>(DocumentView current)>;

// Every write of preferences: applies `change` in one unit of work, creating the user's
// document when it is missing, within config.preferences_bytes_max; returns the new
// preferences object.
Result<Document> ModifyPreferences(const ServiceContext& ctx, const ObjectId& user,
                                   const PreferencesChange& change) {
  Document result;
  Status status;
  for (int attempt = 0; attempt < kCreateAttemptsMax; ++attempt) {
    bool inserted = false;
    status = ctx.store->RunTransaction([&](Transaction& tx) -> Status {
      inserted = false;
      NOEMA_ASSIGN_OR_RETURN(std::optional<Document> stored,
                             LoadPreferencesDocument(tx, user, /*for_write=*/true));
      Timestamp now = ctx.Now();
      Document empty;
      DocumentView preferences = empty.view();
      if (stored.has_value()) {
        NOEMA_ASSIGN_OR_RETURN(preferences, stored->view().GetDocument(kPreferencesField));
      }
      NOEMA_ASSIGN_OR_RETURN(Document next, change(preferences));

      DocumentBuilder doc;
      if (stored.has_value()) {
        CopyFieldsExcept(stored->view(), {kPreferencesField, "updatedAt"}, &doc);
      } else {
        doc.Append("_id", user).Append("masterAccountId", user).Append("createdAt", now);
      }
      doc.AppendDocument(kPreferencesField, next.view());
      doc.Append("updatedAt", now);
      Document updated = std::move(doc).Build();
      if (updated.size_bytes() > ctx.config.preferences_bytes_max) {
        return Status::ResourceExhausted("preferences would be larger than " +
                                             std::to_string(ctx.config.preferences_bytes_max) +
                                             " bytes",
                                         std::string(kPreferencesField));
      }
      if (stored.has_value()) {
        NOEMA_RETURN_IF_ERROR(tx.Replace(Collection::kUserPreferences, user, updated));
      } else {
        inserted = true;
        NOEMA_RETURN_IF_ERROR(tx.Insert(Collection::kUserPreferences, updated));
      }
      result = std::move(next);
      return Status::Ok();
    });
    if (!(inserted && status.IsAlreadyExists())) break;
  }
  if (!status.ok()) return status;
  return result;
}

// The new value of a scope from its current one (absent when unset); nullopt deletes it.
using ScopeChange =
    std::function<Result<std::optional<Document>>(std::optional<DocumentView> current)>;

// Applies `change` to one scope; returns the scope's new value (empty when deleted).
Result<Document> ModifyScope(const ServiceContext& ctx, const ObjectId& user,
                             std::string_view scope, const ScopeChange& change) {
  NOEMA_RETURN_IF_ERROR(ValidateScopeName(scope));
  std::optional<Document> value;
  Result<Document> all =
      ModifyPreferences(ctx, user, [&](DocumentView current) -> Result<Document> {
        NOEMA_ASSIGN_OR_RETURN(value, change(FindScope(current, scope)));
        if (value.has_value()) NOEMA_RETURN_IF_ERROR(ValidateValue(value->view(), false, "", 1));
        return WithScope(
            current, scope,
            value.has_value() ? std::optional<DocumentView>(value->view()) : std::nullopt);
      });
  if (!all.ok()) return all.status();
  return value.has_value() ? std::move(*value) : Document();
}

}  // namespace

Result<Document> PreferencesService::GetAll(const ObjectId& master_account_id) const {
  Document result;
  Status status = ctx_->store->RunReadOnly([&](Transaction& tx) -> Status {
    NOEMA_ASSIGN_OR_RETURN(std::optional<Document> stored,
                           LoadPreferencesDocument(tx, master_account_id));
    result = Document();
    if (stored.has_value()) {
      NOEMA_ASSIGN_OR_RETURN(DocumentView preferences,
                             stored->view().GetDocument(kPreferencesField));
      result = preferences.Copy();
    }
    return Status::Ok();
  });
  if (!status.ok()) return status;
  return result;
}

Result<Document> PreferencesService::GetScope(const ObjectId& master_account_id,
                                              std::string_view scope) const {
  NOEMA_RETURN_IF_ERROR(ValidateScopeName(scope));
  NOEMA_ASSIGN_OR_RETURN(Document all, GetAll(master_account_id));
  std::optional<DocumentView> found = FindScope(all.view(), scope);
  if (!found.has_value()) return ScopeNotFound();
  return found->Copy();
}

Result<Document> PreferencesService::PutScope(const ObjectId& master_account_id,
                                              std::string_view scope, DocumentView value) {
  return ModifyScope(*ctx_, master_account_id, scope,
                     [&](std::optional<DocumentView>) -> Result<std::optional<Document>> {
                       return std::optional<Document>(value.Copy());
                     });
}

Result<Document> PreferencesService::PatchScope(const ObjectId& master_account_id,
                                                std::string_view scope, DocumentView patch) {
  return ModifyScope(*ctx_, master_account_id, scope,
                     [&](std::optional<DocumentView> current) -> Result<std::optional<Document>> {
                       Document empty;
                       DocumentBuilder merged;
                       MergeObjects(current.has_value() ? *current : empty.view(), patch, &merged);
                       return std::optional<Document>(std::move(merged).Build());
                     });
}

Status PreferencesService::DeleteScope(const ObjectId& master_account_id, std::string_view scope) {
  return ModifyScope(*ctx_, master_account_id, scope,
                     [](std::optional<DocumentView> current) -> Result<std::optional<Document>> {
                       if (!current.has_value()) return ScopeNotFound();
                       return std::optional<Document>();
                     })
      .status();
}

Result<Document> PreferencesService::PutAll(const ObjectId& master_account_id,
                                            DocumentView preferences) {
  NOEMA_RETURN_IF_ERROR(ValidateScopesOf(preferences, /*null_deletes=*/false));
  NOEMA_RETURN_IF_ERROR(ValidateScopeValues(preferences));
  return ModifyPreferences(*ctx_, master_account_id,
                           [&](DocumentView) -> Result<Document> { return preferences.Copy(); });
}

Result<Document> PreferencesService::PatchAll(const ObjectId& master_account_id,
                                              DocumentView patch) {
  NOEMA_RETURN_IF_ERROR(ValidateScopesOf(patch, /*null_deletes=*/true));
  return ModifyPreferences(*ctx_, master_account_id, [&](DocumentView current) -> Result<Document> {
    DocumentBuilder merged;
    MergeObjects(current, patch, &merged);
    Document next = std::move(merged).Build();
    NOEMA_RETURN_IF_ERROR(ValidateScopeValues(next.view()));
    return next;
  });
}

Status PreferencesService::DeleteAll(const ObjectId& master_account_id) {
  return ModifyPreferences(*ctx_, master_account_id,
                           [](DocumentView) -> Result<Document> { return Document(); })
      .status();
}

}  // namespace noema
