#include "noema/service/awards.h"

#include <utility>

#include "service/award_rules.h"
#include "service/user_core_doc.h"

namespace noema {
namespace {

using service_internal::ArrayOfDocuments;
using service_internal::LoadUserCore;

Result<Award> ParseAward(DocumentView item) {
  Award award;
  NOEMA_ASSIGN_OR_RETURN(std::string_view award_id, item.GetString("awardId"));
  award.award_id = std::string(award_id);
  NOEMA_ASSIGN_OR_RETURN(award.achieved_at, item.GetDate("achievedAt"));
  auto display_name = item.GetString("displayName");
  if (display_name.ok()) award.display_name = std::string(*display_name);
  auto description = item.GetString("description");
  if (description.ok()) award.description = std::string(*description);
  return award;
}

Result<std::vector<Award>> AwardsOf(DocumentView user) {
  NOEMA_ASSIGN_OR_RETURN(std::vector<Document> items, ArrayOfDocuments(user, "awards"));
  std::vector<Award> awards;
  for (const Document& item : items) {
    NOEMA_ASSIGN_OR_RETURN(Award award, ParseAward(item));
    awards.push_back(std::move(award));
  }
  return awards;
}

}  // namespace

Result<GrantedAward> AwardService::Grant(const ObjectId& master_account_id,
                                         std::string_view award_id,
                                         const std::optional<std::string>& display_name,
                                         const std::optional<std::string>& description,
                                         const Origin& origin) {
  if (display_name) {
    NOEMA_RETURN_IF_ERROR(service_internal::ValidateText(
        *display_name, 1, kAwardDisplayNameCharsMax, /*multiline=*/false, "displayName"));
  }
  if (description) {
    NOEMA_RETURN_IF_ERROR(service_internal::ValidateText(*description, 1, kAwardDescriptionCharsMax,
                                                         /*multiline=*/true, "description"));
  }
  GrantedAward result;
  NOEMA_RETURN_IF_ERROR(ctx_.store->RunTransaction([&](Transaction& tx) -> Status {
    result = GrantedAward();
    NOEMA_ASSIGN_OR_RETURN(result.newly_granted,
                           service_internal::GrantAwardInTx(tx, ctx_, master_account_id, award_id,
                                                            display_name.value_or(""),
                                                            description.value_or(""), origin));
    NOEMA_ASSIGN_OR_RETURN(Document user, LoadUserCore(tx, master_account_id));
    NOEMA_ASSIGN_OR_RETURN(std::vector<Award> awards, AwardsOf(user));
    for (Award& award : awards) {
      if (award.award_id == award_id) {
        result.award = std::move(award);
        return Status::Ok();
      }
    }
    return Status::Internal("the granted award is missing from the user");
  }));
  return result;
}

Result<std::vector<Award>> AwardService::List(const ObjectId& master_account_id) const {
  std::vector<Award> result;
  NOEMA_RETURN_IF_ERROR(ctx_.store->RunReadOnly([&](Transaction& tx) -> Status {
    NOEMA_ASSIGN_OR_RETURN(Document user, LoadUserCore(tx, master_account_id));
    NOEMA_ASSIGN_OR_RETURN(result, AwardsOf(user));
    return Status::Ok();
  }));
  return result;
}

}  // namespace noema
