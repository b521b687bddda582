// PreferencesService: a user's settings, by scope (DECISIONS.md 15).
//
// One userPreferences document per user, `_id` == masterAccountId, created with the user
// by the account service (and lazily by the first write if it is missing). Its
// `preferences` object maps a scope to an object of settings. A scope is `globalSettings`
// or a workflow/tool id: 1-128 characters of [A-Za-z0-9_:-]. A `.` is refused although
// ids sometimes contain one, because MongoDB reads it as a path separator (updates and
// queries could not address the scope); `$` cannot start a scope by the same rule.
//
// Inside a scope's value every key is non-empty, does not start with `$` (Extended JSON
// would read {"$oid": ...} back as another type) and contains no `.`; nesting is at most
// kPreferencesDepthMax levels. A scope is replaced whole by PutScope and merged with JSON
// Merge Patch (RFC 7396) by PatchScope: null deletes a key, an object merges recursively,
// anything else replaces. PutAll, PatchAll and DeleteAll do the same to the whole object. The whole
// document is at most config.preferences_bytes_max bytes after the change (ResourceExhausted on
// "preferences", nothing written).
//
// Reads never write: a user without a document has no preferences. Users of any status
// keep and edit their preferences (DECISIONS.md 14 restricts sessions, credit and keys).
//
// Thread-safety: a PreferencesService is safe to use from many threads at once.
#pragma once

#include <cstddef>
#include <string_view>

#include "noema/bson.h"
#include "noema/object_id.h"
#include "noema/service/context.h"
#include "noema/status.h"

namespace noema {

inline constexpr std::string_view kGlobalSettingsScope = "globalSettings";
inline constexpr size_t kPreferenceScopeCharsMax = 128;
// Levels of objects/arrays inside one scope's value.
inline constexpr int kPreferencesDepthMax = 32;

class PreferencesService {
 public:
  // REQUIRES: ctx (and its store and clock) outlive the service.
  explicit PreferencesService(const ServiceContext& ctx) : ctx_(&ctx) {}

  // The `preferences` object (scope → settings); empty when the user has none. NotFound
  // ("masterAccountId") for an unknown user.
  Result<Document> GetAll(const ObjectId& master_account_id) const;

  // One scope's settings. NotFound ("scope") when the scope is not set.
  Result<Document> GetScope(const ObjectId& master_account_id, std::string_view scope) const;

  // Replaces the scope with `value`; returns what is stored. InvalidArgument on "scope" or
  // on the path of a bad key inside `value`.
  Result<Document> PutScope(const ObjectId& master_account_id, std::string_view scope,
                            DocumentView value);

  // Merges `patch` into the scope (an absent scope is patched from {}); returns the result.
  Result<Document> PatchScope(const ObjectId& master_account_id, std::string_view scope,
                              DocumentView patch);

  // Removes the scope. NotFound ("scope") when it is not set.
  Status DeleteScope(const ObjectId& master_account_id, std::string_view scope);

  // The whole `preferences` object at once (API.md: PUT/PATCH/DELETE without a scope).
  // Errors name fields as paths inside `preferences`: "<scope>" for a bad or repeated
  // scope name or a value that is not an object, "<scope>.<key>..." for a bad key inside.

  // Replaces every scope: afterwards the user has exactly the scopes of `preferences`.
  // Returns what is stored.
  Result<Document> PutAll(const ObjectId& master_account_id, DocumentView preferences);

  // JSON Merge Patch (RFC 7396) over the whole object: a scope set to null is removed, a
  // scope set to an object is merged into the stored one (from {} when absent). Any other
  // value of a scope is refused (a scope's settings are an object). Returns the result.
  Result<Document> PatchAll(const ObjectId& master_account_id, DocumentView patch);

  // Removes every scope; nothing to remove is not an error.
  Status DeleteAll(const ObjectId& master_account_id);

 private:
  const ServiceContext* ctx_;
};

}  // namespace noema
