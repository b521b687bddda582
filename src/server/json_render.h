// BSON → the API's plain JSON (API.md "Conventions"): ids as 24-hex strings, dates as
// ISO-8601 UTC with milliseconds, Decimal128 money as decimal strings ("12.50"), longs
// and ints as numbers. Not Extended JSON: API clients never see `$oid` or `$date`.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "noema/bson.h"

namespace noema::server {

// Renders a document as a JSON object. `rename_id` (for example "masterAccountId")
// renames a top-level `_id`, as API.md asks; when the document already carries that
// field, `_id` is dropped instead.
std::string RenderJson(DocumentView doc, std::string_view rename_id = {});

// The same, for an owned document (a temporary lives until the end of the call).
inline std::string RenderJson(const Document& doc, std::string_view rename_id = {}) {
  return RenderJson(doc.view(), rename_id);
}

// Appends `text` as a JSON string literal (quotes included) to `out`.
void AppendJsonString(std::string* out, std::string_view text);

}  // namespace noema::server
