// The document rules of the MongoDB store that do not need a server: the checks every
// write passes before it is sent, and the unique-key look-up that keeps a transaction
// alive when a key is taken.
//
// Both stores refuse the same documents with the same messages: the collection's
// validator (ValidatorFor) runs client-side first, so an error names the failing path
// exactly as on SQLite (MongoDB's own validator, installed by Init, is the second line);
// the primary alias (sessionId, eventId, generationId) must equal _id; an indexed field
// holds a scalar (null, bool, number, string, date or objectId), and an array only where
// its index is multikey.
//
// Why look a unique key up before writing it: inside a MongoDB transaction, a write
// that fails (a duplicate key included) aborts the whole transaction on the server, so
// the unit could not go on after an AlreadyExists as it can on SQLite. Looking the keys
// up first, inside the same transaction (its snapshot plus its own writes), reports the
// duplicate without a failed write. A key taken by a concurrent transaction after the
// snapshot still fails the write, as a WriteConflict (transient: the unit is re-run and
// the look-up then sees the key) or a duplicate key error.
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string_view>

#include "noema/bson.h"
#include "noema/collections.h"
#include "noema/object_id.h"
#include "noema/status.h"

namespace noema::mongo {

// Checks a document before it is inserted or replaces another: its size, the
// collection's validator, the primary alias and the indexed fields.
Status CheckDocument(Collection collection, DocumentView doc);

// The AlreadyExists of a duplicate key on the named index ("_id_" for _id), worded as
// the SQLite store words it. An unknown index name is reported as it is.
Status DuplicateKeyStatus(Collection collection, std::string_view index_name);

// The shard key field of the collections DECISIONS.md shards (userEvents,
// generationOutputs, transactions: hashed masterAccountId), or empty.
std::string_view ShardKeyField(Collection collection);

// The query that finds a stored document holding one of the unique keys of `doc`: its
// _id (unless `replacing`), or any key of a unique index. nullopt when `doc` has no
// key to look up. With `replacing`, the document of that _id is excluded.
//
// With `on_shard`, the query also names the document's shard key value, so that mongos
// sends it to one shard instead of all: on a sharded collection MongoDB enforces _id
// per shard only, and every unique index there starts with the shard key.
std::optional<Document> UniqueConflictQuery(Collection collection, DocumentView doc,
                                            const ObjectId* replacing, bool on_shard = false);

// The AlreadyExists for `doc` given `existing`, a document UniqueConflictQuery found.
Status UniqueConflictStatus(Collection collection, DocumentView doc, DocumentView existing,
                            bool check_id);

}  // namespace noema::mongo
