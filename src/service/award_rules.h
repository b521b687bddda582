// Internal to src/service: granting awards inside another change's unit of work.
//
// DECISIONS.md 17: an awardId appears at most once per user; some awards are granted by
// rules in the same unit of work as the event that earns them. The generation service
// calls ApplyGenerationAwardRules when it records a success.
#pragma once

#include <cstdint>
#include <string_view>

#include "noema/object_id.h"
#include "noema/service/context.h"
#include "noema/status.h"
#include "noema/store.h"

namespace noema::service_internal {

// Award ids of the automatic rules.
inline constexpr std::string_view kAwardFirstGeneration = "first_generation";
inline constexpr std::string_view kAwardCenturyCreator = "century_creator";
inline constexpr int64_t kCenturyCreatorGenerations = 100;

// Adds the award to the user's userCore.awards and writes an award_granted event, inside
// `tx`. Returns true when granted, false when the user already had it (nothing written).
Result<bool> GrantAwardInTx(Transaction& tx, const ServiceContext& ctx,
                            const ObjectId& master_account_id, std::string_view award_id,
                            std::string_view display_name, std::string_view description,
                            const Origin& origin);

// Grants first_generation when `successful_generations` (including the one being
// recorded) is >= 1 and century_creator when it is >= 100, each only once.
Status ApplyGenerationAwardRules(Transaction& tx, const ServiceContext& ctx,
                                 const ObjectId& master_account_id, int64_t successful_generations,
                                 const Origin& origin);

}  // namespace noema::service_internal
