// ArchetypeRulesFromJson: the JSON form of ArchetypeRules
// (include/noema/service/archetype_rules.h).
#include "noema/service/archetype_rules.h"

#include <bson/bson.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <variant>
#include <vector>

#include "noema/bson.h"

namespace noema {
namespace {

// A member of the JSON form and the field it sets.
struct Member {
  std::string_view name;
  std::variant<int64_t ArchetypeRules::*, double ArchetypeRules::*,
               std::vector<std::string> ArchetypeRules::*>
      field;
  bool share = false;  // a fraction: at most 1
};

const std::vector<Member>& Members() {
  using R = ArchetypeRules;
  static const std::vector<Member> members = {
      {"touchAndGoSessionsMax", &R::touch_and_go_sessions_max},
      {"powerGenerationHoursMin", &R::power_generation_hours_min},
      {"powerCommandsMin", &R::power_commands_min},
      {"refinerCommandsMin", &R::refiner_commands_min},
      {"refinerIterateMin", &R::refiner_iterate_min},
      {"refinerIteratePerMakeMin", &R::refiner_iterate_per_make_min},
      {"videoCommandsMin", &R::video_commands_min},
      {"engagedSessionsMin", &R::engaged_sessions_min},
      {"engagedCommandsMin", &R::engaged_commands_min},
      {"engagedManagementMin", &R::engaged_management_min},
      {"engagedMenuMin", &R::engaged_menu_min},
      {"engagedMenuPerSessionMin", &R::engaged_menu_per_session_min},
      {"focusedSessionsMin", &R::focused_sessions_min},
      {"focusedSessionsMax", &R::focused_sessions_max},
      {"focusedCommandsPerSessionMin", &R::focused_commands_per_session_min},
      {"focusedTopCommandShareMin", &R::focused_top_command_share_min, true},
      {"newLightSessionsMax", &R::new_light_sessions_max},
      {"newLightCommandsMax", &R::new_light_commands_max},
      {"newLightGenerationHoursMax", &R::new_light_generation_hours_max},
      {"iterateCommands", &R::iterate_commands},
      {"makeCommands", &R::make_commands},
      {"videoCommandPrefixes", &R::video_command_prefixes},
      {"managementCommands", &R::management_commands},
  };
  return members;
}

Status SetInteger(bson_iter_t* iter, const std::string& name, int64_t* out) {
  if (!BSON_ITER_HOLDS_INT32(iter) && !BSON_ITER_HOLDS_INT64(iter)) {
    return Status::InvalidArgument("expected a whole number", name);
  }
  const int64_t value = bson_iter_as_int64(iter);
  if (value < 0) return Status::InvalidArgument("expected a number >= 0", name);
  *out = value;
  return Status::Ok();
}

Status SetNumber(bson_iter_t* iter, const std::string& name, bool share, double* out) {
  if (!BSON_ITER_HOLDS_NUMBER(iter)) return Status::InvalidArgument("expected a number", name);
  const double value = bson_iter_as_double(iter);
  if (!std::isfinite(value) || value < 0) {
    return Status::InvalidArgument("expected a number >= 0", name);
  }
  if (share && value > 1) return Status::InvalidArgument("expected a share in 0..1", name);
  *out = value;
  return Status::Ok();
}

Status SetCommands(bson_iter_t* iter, const std::string& name, std::vector<std::string>* out) {
  if (!BSON_ITER_HOLDS_ARRAY(iter)) {
    return Status::InvalidArgument("expected an array of command names", name);
  }
  bson_iter_t item;
  bson_iter_recurse(iter, &item);
  std::vector<std::string> commands;
  for (size_t index = 0; bson_iter_next(&item); ++index) {
    const std::string field = name + "." + std::to_string(index);
    if (!BSON_ITER_HOLDS_UTF8(&item)) return Status::InvalidArgument("expected a string", field);
    uint32_t length = 0;
    const char* text = bson_iter_utf8(&item, &length);
    if (length == 0 || length > kArchetypeCommandCharsMax) {
      return Status::InvalidArgument(
          "a command is 1.." + std::to_string(kArchetypeCommandCharsMax) + " bytes", field);
    }
    if (commands.size() == kArchetypeCommandsMax) {
      return Status::InvalidArgument(
          "at most " + std::to_string(kArchetypeCommandsMax) + " commands", name);
    }
    commands.emplace_back(text, length);
  }
  *out = std::move(commands);
  return Status::Ok();
}

}  // namespace

Result<ArchetypeRules> ArchetypeRulesFromJson(std::string_view json) {
  const size_t first = json.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || json[first] != '{') {
    return Status::InvalidArgument("not a JSON object", "rules");
  }
  Result<Document> parsed = Document::FromJson(json);
  if (!parsed.ok()) {
    return Status::InvalidArgument("not a JSON object: " + parsed.status().message(), "rules");
  }
  ArchetypeRules rules;
  bson_iter_t iter;
  bson_iter_init(&iter, parsed->get());
  std::vector<std::string> seen;
  while (bson_iter_next(&iter)) {
    const std::string name(bson_iter_key(&iter), bson_iter_key_len(&iter));
    if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
      return Status::InvalidArgument("given more than once", name);
    }
    seen.push_back(name);
    const Member* member = nullptr;
    for (const Member& candidate : Members()) {
      if (candidate.name == name) member = &candidate;
    }
    if (member == nullptr) {
      return Status::InvalidArgument("unknown archetype setting (docs/analytics.md lists them)",
                                     name);
    }
    Status set;
    if (auto* integer = std::get_if<int64_t ArchetypeRules::*>(&member->field)) {
      set = SetInteger(&iter, name, &(rules.**integer));
    } else if (auto* number = std::get_if<double ArchetypeRules::*>(&member->field)) {
      set = SetNumber(&iter, name, member->share, &(rules.**number));
    } else {
      set = SetCommands(
          &iter, name,
          &(rules.*std::get<std::vector<std::string> ArchetypeRules::*>(member->field)));
    }
    NOEMA_RETURN_IF_ERROR(set);
  }
  if (rules.focused_sessions_min > rules.focused_sessions_max) {
    return Status::InvalidArgument("focusedSessionsMin is above focusedSessionsMax",
                                   "focusedSessionsMin");
  }
  return rules;
}

}  // namespace noema
