// The collections of the `noema` database: the seven of ADR-002, and noema's analytics
// rollup (activityDaily, kept by the services in the same unit of work as the events).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace noema {

enum class Collection : uint8_t {
  kUserCore = 0,
  kUserEconomy,
  kUserPreferences,
  kTransactions,
  kUserSessions,
  kUserEvents,
  kGenerationOutputs,
  kActivityDaily,  // noema-owned analytics rollup (docs/analytics.md)
};

inline constexpr size_t kCollectionCount = 8;

inline constexpr std::array<Collection, kCollectionCount> kAllCollections = {
    Collection::kUserCore,          Collection::kUserEconomy,   Collection::kUserPreferences,
    Collection::kTransactions,      Collection::kUserSessions,  Collection::kUserEvents,
    Collection::kGenerationOutputs, Collection::kActivityDaily,
};

// "userCore", "userEconomy", ... exactly as ADR-002 names them.
std::string_view CollectionName(Collection collection);
std::optional<Collection> CollectionFromName(std::string_view name);

// The field that equals _id (DECISIONS.md 2: sessionId, eventId, generationId), or empty.
std::string_view PrimaryAlias(Collection collection);

// transactions and userEvents (DECISIONS.md 10, 16): their documents are never replaced
// or deleted. Both stores refuse to; an import never replaces one with other content.
bool IsAppendOnly(Collection collection);

// userEvents alone: the one append-only collection whose documents may be redacted
// (Transaction::Redact, for the erasure of a user, DECISIONS.md 18). Never transactions:
// the ledger is kept whole.
bool IsRedactable(Collection collection);

}  // namespace noema
