// Internal to src/service: reading and rewriting userCore documents, shared by the
// account, wallet, API key and award services, and the identity and text rules they share.
//
// A userCore document is rewritten whole (Transaction::Replace): RewriteFields copies a
// document while substituting some top-level fields, so fields this code does not know
// (imported legacy data, additions of other services) survive every rewrite. Arrays of
// subdocuments (wallets, apiKeys, awards, walletChallenges) are edited as vectors of
// Documents for the same reason: an item's unknown fields are kept.
//
// Thread-safety: every function is thread-safe (no shared state).
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "noema/bson.h"
#include "noema/object_id.h"
#include "noema/service/context.h"
#include "noema/status.h"
#include "noema/store.h"

namespace noema::service_internal {

// Writes one field into the builder, or nothing to drop the field.
using FieldWriter = std::function<void(DocumentBuilder&)>;
using FieldRewrites = std::vector<std::pair<std::string, FieldWriter>>;

// A copy of `doc` in which every top-level field named in `rewrites` is produced by its
// writer, in the original field's place (or appended, in `rewrites` order, when `doc`
// lacks it). Other fields are copied unchanged.
Document RewriteFields(DocumentView doc, const FieldRewrites& rewrites);

// A writer that drops the field.
FieldWriter DropField();

// The subdocuments of the array at top-level `key`; an absent field is an empty array.
// DataLoss when the field is not an array of documents (a stored document is corrupt).
Result<std::vector<Document>> ArrayOfDocuments(DocumentView doc, std::string_view key);

// A writer for array field `key` holding `items`; it drops the field when `items` is
// empty (an absent array and an empty one mean the same; see docs/decisions.md).
FieldWriter DocumentArrayField(std::string key, std::vector<Document> items);

// The userCore document of `id` inside `tx`. NotFound when there is none.
Result<Document> LoadUserCore(Transaction& tx, const ObjectId& id);

// Replaces the user's userCore document. Takes a Document (not a view) so that a
// freshly built temporary stays alive for the call.
Status ReplaceUserCore(Transaction& tx, const ObjectId& id, const Document& user);

// The user's `status`; "active" when the field is absent (the schema's default).
std::string UserStatus(DocumentView user);
inline constexpr std::string_view kStatusActive = "active";

// userCore.erasedAt: set once, by the erasure of the user (DECISIONS.md 18,
// include/noema/service/erasure.h). An erased user stays erased: its status cannot
// change again and no personal data (profile, identity, wallet, preferences) is added back.
inline constexpr std::string_view kErasedAtField = "erasedAt";
bool IsErased(DocumentView user);
// FailedPrecondition naming `field` when the user is erased; OK otherwise.
Status RefuseErased(DocumentView user, std::string_view field = "masterAccountId");

// The user document as services return it: without secrets and internal bookkeeping
// (apiKeys[].keyHash and walletChallenges are removed).
Document PublicUserDocument(DocumentView user);
// The same for a document the caller owns: returned as it is, without a copy, when it has
// nothing to remove (the common case of a user without API keys or open challenges).
Document PublicUserDocument(Document&& user);

// DECISIONS.md 7: platform names are lowercase [a-z0-9_]{1,32}.
// DECISIONS.md 7: platform user ids are 1-128 characters (Unicode code points).
inline constexpr size_t kPlatformUserIdCharsMax = 128;
Status ValidatePlatform(std::string_view platform, std::string_view field);
Status ValidatePlatformUserId(std::string_view platform_user_id, std::string_view field);
// "platform:platformUserId", the value of the unique multikey index userCore.identityKeys.
std::string IdentityKey(std::string_view platform, std::string_view platform_user_id);

// The number of Unicode code points of `text`, or nullopt when it is not valid UTF-8.
std::optional<size_t> Utf8Length(std::string_view text);

// Checks that `text` is valid UTF-8 of chars_min..chars_max code points without control
// characters (line breaks and tabs are allowed when `multiline`). InvalidArgument naming
// `field` otherwise.
Status ValidateText(std::string_view text, size_t chars_min, size_t chars_max, bool multiline,
                    std::string_view field);

// Writes the event `event_type` for the user, attributed to `origin` (its platform and
// session, or the user's active session on that platform; see event_writer.h).
Result<ObjectId> WriteUserEvent(Transaction& tx, const ServiceContext& ctx,
                                const ObjectId& master_account_id, const Origin& origin,
                                std::string_view event_type, Document event_data);

// The userEconomy (zero credit, held and exp) and userPreferences (empty) documents every
// new user starts with, whoever creates the user (AccountService, the legacy import).
Document NewUserEconomy(const ObjectId& id, Timestamp now);
Document NewUserPreferences(const ObjectId& id, Timestamp now);

}  // namespace noema::service_internal
