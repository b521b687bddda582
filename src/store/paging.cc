// ForEachIdPage (store.h): walking a collection's ids a page at a time, each page read in
// its own read-only unit.
#include <string>
#include <utility>
#include <vector>

#include "noema/store.h"

namespace noema {

Status ForEachIdPage(Store& store, Collection collection, Query query,
                     const std::function<Status(const std::vector<ObjectId>&)>& fn) {
  std::vector<ObjectId> ids;
  while (true) {
    std::string next_cursor;
    NOEMA_RETURN_IF_ERROR(store.RunReadOnly([&](Transaction& tx) -> Status {
      ids.clear();
      NOEMA_ASSIGN_OR_RETURN(Page page, tx.Find(collection, query));
      for (const Document& doc : page.items) {
        NOEMA_ASSIGN_OR_RETURN(ObjectId id, doc.view().GetObjectId("_id"));
        ids.push_back(id);
      }
      next_cursor = std::move(page.next_cursor);
      return Status::Ok();
    }));
    NOEMA_RETURN_IF_ERROR(fn(ids));
    if (next_cursor.empty()) return Status::Ok();
    query.cursor = std::move(next_cursor);
  }
}

}  // namespace noema
