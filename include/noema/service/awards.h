// AwardService: the awards (trophies) of a user (DECISIONS.md 17).
//
// Awards live in userCore.awards as {awardId, achievedAt, displayName?, description?}.
// An awardId appears at most once per user: granting an award the user already has is
// a no-op that returns the existing award with newly_granted false (so a retried grant
// is harmless; docs/decisions.md). Every grant writes an award_granted event in the same
// unit of work. Some awards are granted automatically by rules (first_generation,
// century_creator; src/service/award_rules.h) inside the generation service's units.
//
// Thread-safety: safe to use from many threads at once; the service holds no mutable
// state. REQUIRES: the ServiceContext (and its store and clock) outlives the service.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "noema/object_id.h"
#include "noema/service/context.h"
#include "noema/status.h"
#include "noema/time.h"

namespace noema {

// awardId: [a-z0-9_]{1,64}. displayName: 1-100 characters; description: 1-500
// characters (line breaks allowed); neither may contain other control characters.
inline constexpr size_t kAwardIdCharsMax = 64;
inline constexpr size_t kAwardDisplayNameCharsMax = 100;
inline constexpr size_t kAwardDescriptionCharsMax = 500;

struct Award {
  std::string award_id;
  Timestamp achieved_at;
  std::optional<std::string> display_name;
  std::optional<std::string> description;
};

struct GrantedAward {
  Award award;
  bool newly_granted = false;  // false: the user already had it; nothing was written
};

class AwardService {
 public:
  explicit AwardService(const ServiceContext& ctx) : ctx_(ctx) {}

  // Administrator action: grants the award (see above).
  //   InvalidArgument: field "awardId", "displayName" or "description".
  //   NotFound: no such user.
  Result<GrantedAward> Grant(const ObjectId& master_account_id, std::string_view award_id,
                             const std::optional<std::string>& display_name,
                             const std::optional<std::string>& description, const Origin& origin);

  // The user's awards in the order they were granted.
  Result<std::vector<Award>> List(const ObjectId& master_account_id) const;

 private:
  const ServiceContext& ctx_;
};

}  // namespace noema
