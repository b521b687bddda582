// What both stores check before Transaction::Redact (store.h) rewrites a document of an
// append-only collection: the one sanctioned exception to "never replaced", for the
// erasure of a user's personal data (DECISIONS.md 18, docs/decisions.md "Erasure").
//
// Thread-safety: pure functions.
#pragma once

#include "noema/bson.h"
#include "noema/collections.h"
#include "noema/object_id.h"
#include "noema/status.h"

namespace noema::store_internal {

// The top-level field whose members a redaction may remove (userEvents.eventData).
inline constexpr std::string_view kRedactableField = "eventData";

// OK when `redacted` may take the place of `stored` (the document with `_id` == id):
//   - FailedPrecondition on any collection but userEvents (IsRedactable): the ledger
//     (transactions) is never rewritten, not even by a redaction;
//   - InvalidArgument naming the field when `redacted` differs from `stored` anywhere but
//     in eventData (a field added, removed, reordered or changed), or when its eventData
//     is not `stored`'s with some members removed (a member added or changed). eventData
//     may also be removed whole.
// So a redaction can only take information away, never add or alter any.
Status CheckRedaction(Collection collection, const ObjectId& id, DocumentView stored,
                      DocumentView redacted);

// FailedPrecondition unless IsRedactable(collection); the message names the collection.
Status CheckRedactable(Collection collection);

}  // namespace noema::store_internal
