// SQL functions that let a statement look inside the stored BSON:
//
//   noema_match(doc, filter)  1 when the document satisfies the Filter bound with
//                             sqlite3_bind_pointer(kFilterPointerType), else 0.
//   noema_field(doc, path)    the column encoding (sqlite_values.h) of the first value the
//                             dotted path reaches; decimals as their nearest REAL; NULL
//                             when missing or without an encoding. Used to sort on fields
//                             that have no extracted column.
//
// Thread-safety: registered per connection; the functions are pure.
#pragma once

#include <sqlite3.h>

#include "noema/status.h"

namespace noema::sqlite {

Status RegisterDocumentFunctions(sqlite3* db);

}  // namespace noema::sqlite
