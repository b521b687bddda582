#include "service/award_rules.h"

#include <utility>

#include "noema/service/awards.h"
#include "service/user_core_doc.h"

namespace noema::service_internal {
namespace {

constexpr std::string_view kAwardsField = "awards";

Status ValidateAwardId(std::string_view award_id) {
  bool valid = !award_id.empty() && award_id.size() <= kAwardIdCharsMax;
  for (char c : award_id) {
    valid = valid && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
  }
  if (!valid) {
    return Status::InvalidArgument("awardId must be 1-64 characters of [a-z0-9_]", "awardId");
  }
  return Status::Ok();
}

}  // namespace

Result<bool> GrantAwardInTx(Transaction& tx, const ServiceContext& ctx,
                            const ObjectId& master_account_id, std::string_view award_id,
                            std::string_view display_name, std::string_view description,
                            const Origin& origin) {
  NOEMA_RETURN_IF_ERROR(ValidateAwardId(award_id));
  NOEMA_ASSIGN_OR_RETURN(Document user, LoadUserCore(tx, master_account_id));
  NOEMA_ASSIGN_OR_RETURN(std::vector<Document> awards, ArrayOfDocuments(user, kAwardsField));
  for (const Document& award : awards) {
    auto id = award.view().GetString("awardId");
    if (id.ok() && *id == award_id) return false;
  }
  const Timestamp now = ctx.Now();
  DocumentBuilder award;
  award.Append("awardId", award_id).Append("achievedAt", now);
  if (!display_name.empty()) award.Append("displayName", display_name);
  if (!description.empty()) award.Append("description", description);
  awards.push_back(std::move(award).Build());
  FieldRewrites rewrites;
  rewrites.emplace_back("updatedAt", [now](DocumentBuilder& b) { b.Append("updatedAt", now); });
  rewrites.emplace_back(std::string(kAwardsField),
                        DocumentArrayField(std::string(kAwardsField), std::move(awards)));
  NOEMA_RETURN_IF_ERROR(ReplaceUserCore(tx, master_account_id, RewriteFields(user, rewrites)));
  DocumentBuilder data;
  data.Append("awardId", award_id);
  NOEMA_RETURN_IF_ERROR(
      WriteUserEvent(tx, ctx, master_account_id, origin, "award_granted", std::move(data).Build())
          .status());
  return true;
}

Status ApplyGenerationAwardRules(Transaction& tx, const ServiceContext& ctx,
                                 const ObjectId& master_account_id, int64_t successful_generations,
                                 const Origin& origin) {
  if (successful_generations >= 1) {
    NOEMA_RETURN_IF_ERROR(GrantAwardInTx(tx, ctx, master_account_id, kAwardFirstGeneration,
                                         "First Generation",
                                         "Completed a first successful generation.", origin)
                              .status());
  }
  if (successful_generations >= kCenturyCreatorGenerations) {
    NOEMA_RETURN_IF_ERROR(GrantAwardInTx(tx, ctx, master_account_id, kAwardCenturyCreator,
                                         "Century Creator", "Completed 100 successful generations.",
                                         origin)
                              .status());
  }
  return Status::Ok();
}

}  // namespace noema::service_internal
