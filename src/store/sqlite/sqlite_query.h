// Turns a Filter or a Query into one SQL statement over a collection's tables, and
// encodes the opaque page cursor.
//
// A predicate runs in SQL when an extracted column, a side table or _id serves it
// (equality, or a range whose bounds have a column encoding); every other predicate is
// evaluated on the decoded document by the noema_match() SQL function
// (sqlite_functions.h), inside the same statement, so LIMIT and ORDER BY stay in SQL.
// A sort on a field without a column uses noema_field().
//
// Range predicates keep MongoDB's type brackets: a bound only meets values of its own
// kind (numbers, strings or objectIds), which the SQL expresses with the storage-class
// order NULL < numbers < TEXT < BLOB.
//
// Thread-safety: plans are values.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "noema/store.h"
#include "store/query_common.h"
#include "store/sqlite/sqlite_connection.h"
#include "store/sqlite/sqlite_layout.h"
#include "store/sqlite/sqlite_values.h"

namespace noema::sqlite {

// What sqlite3_bind_pointer calls the Filter that noema_match() receives.
inline constexpr char kFilterPointerType[] = "noema.Filter";

// One SQL statement and its parameters. Holds the storage the parameters point at, so
// it must not be moved or copied once planned: plan into a local and run it there.
class QueryPlan {
 public:
  QueryPlan() = default;
  QueryPlan(const QueryPlan&) = delete;
  QueryPlan& operator=(const QueryPlan&) = delete;

  const std::string& sql() const { return sql_; }
  // Binds every parameter (the statement must be freshly reset).
  void BindTo(Statement& statement) const;

  // Find: the statement returns (_id, doc, sort value), at most limit + 1 rows.
  // `filter` and `sort_field` must outlive the plan.
  Status PlanFind(const CollectionLayout& layout, const Filter& filter, std::string_view sort_field,
                  bool descending, size_t limit, std::string_view cursor);
  Status PlanFind(const CollectionLayout& layout, const Query& query) {
    return PlanFind(layout, query.filter, query.sort_field, query.descending, query.limit,
                    query.cursor);
  }
  // Scan: the statement returns (_id, doc) of every match in _id order, with no limit.
  // `filter` must outlive the plan.
  Status PlanScan(const CollectionLayout& layout, const Filter& filter);
  // Count: the statement returns one row, count(*).
  Status PlanCount(const CollectionLayout& layout, const Filter& filter);

  // The cursor that continues after a row whose sort value and _id are given.
  std::string NextCursor(const SqlScalar& sort_value, std::string_view id) const;

 private:
  struct Binding {
    SqlScalar scalar;
    const Filter* filter = nullptr;  // set for the noema_match() parameter
  };

  // Returns the parameter's "?N".
  std::string Bind(const SqlScalar& scalar);
  Status PlanWhere(const CollectionLayout& layout, const Filter& filter, std::string* where);
  Status DecodeCursor(std::string_view cursor);

  std::string sql_;
  std::vector<Binding> bindings_;
  Filter residual_;
  // What a cursor belongs to: a hash of the sort, the direction and the filter (computed
  // only when a cursor is read or made).
  uint32_t QueryFingerprint() const;
  const Filter* filter_ = nullptr;
  std::string_view sort_field_;
  bool descending_ = false;
  // Storage of the decoded cursor's sort value and _id.
  SqlScalar cursor_sort_value_;
  std::string cursor_sort_bytes_;
  std::string cursor_id_;
};

// Field paths are checked the same way by every store (src/store/query_common.h).
using store_internal::CheckFieldPath;

}  // namespace noema::sqlite
