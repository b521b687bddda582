#include "noema/collections.h"

namespace noema {

std::string_view CollectionName(Collection collection) {
  switch (collection) {
    case Collection::kUserCore: return "userCore";
    case Collection::kUserEconomy: return "userEconomy";
    case Collection::kUserPreferences: return "userPreferences";
    case Collection::kTransactions: return "transactions";
    case Collection::kUserSessions: return "userSessions";
    case Collection::kUserEvents: return "userEvents";
    case Collection::kGenerationOutputs: return "generationOutputs";
    case Collection::kActivityDaily: return "activityDaily";
  }
  return "unknown";
}

std::optional<Collection> CollectionFromName(std::string_view name) {
  for (Collection c : kAllCollections) {
    if (CollectionName(c) == name) return c;
  }
  return std::nullopt;
}

std::string_view PrimaryAlias(Collection collection) {
  switch (collection) {
    case Collection::kUserSessions: return "sessionId";
    case Collection::kUserEvents: return "eventId";
    case Collection::kGenerationOutputs: return "generationId";
    default: return {};
  }
}

bool IsAppendOnly(Collection collection) {
  return collection == Collection::kTransactions || collection == Collection::kUserEvents;
}

bool IsRedactable(Collection collection) { return collection == Collection::kUserEvents; }

}  // namespace noema
