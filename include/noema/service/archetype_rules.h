// The thresholds of the archetypes of EVENT_CATALOG.md ("thresholds configurable"), with
// the table's values as defaults, and their JSON form for `--archetype-rules FILE`
// (noema serve, noema report; docs/analytics.md lists the names).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "noema/status.h"

namespace noema {

// The archetype rules of EVENT_CATALOG.md, thresholds configurable (defaults: the table).
struct ArchetypeRules {
  int64_t touch_and_go_sessions_max = 4;
  double power_generation_hours_min = 20;
  int64_t power_commands_min = 1500;
  int64_t refiner_commands_min = 200;
  int64_t refiner_iterate_min = 50;
  double refiner_iterate_per_make_min = 0.5;
  int64_t video_commands_min = 20;
  int64_t engaged_sessions_min = 30;
  int64_t engaged_commands_min = 300;
  int64_t engaged_management_min = 10;
  int64_t engaged_menu_min = 75;
  double engaged_menu_per_session_min = 1.5;
  int64_t focused_sessions_min = 5;
  int64_t focused_sessions_max = 25;
  double focused_commands_per_session_min = 4;
  double focused_top_command_share_min = 0.6;
  int64_t new_light_sessions_max = 15;
  int64_t new_light_commands_max = 150;
  double new_light_generation_hours_max = 2;
  // Command sets (names as in command_executed.commandName).
  std::vector<std::string> iterate_commands = {"/again", "/effect", "/regen"};
  std::vector<std::string> make_commands = {"/make"};
  // A video command is one whose name starts with one of these prefixes.
  std::vector<std::string> video_command_prefixes = {"/vid", "/animate"};
  std::vector<std::string> management_commands = {"/set",      "/account", "/utils",
                                                  "/settings", "/balance", "/wallet"};
};

// Limits of a rules file: command names and prefixes are 1..64 bytes, at most 64 per
// list; every number is finite and >= 0, shares at most 1.
inline constexpr size_t kArchetypeCommandsMax = 64;
inline constexpr size_t kArchetypeCommandCharsMax = 64;

// The rules of a JSON object whose members override the defaults, named as the fields in
// camelCase ("touchAndGoSessionsMax", "iterateCommands", ...). InvalidArgument naming the
// member: an unknown name, a wrong type, a number out of range, focusedSessionsMin above
// focusedSessionsMax, a bad command name. Malformed JSON: InvalidArgument on "rules".
Result<ArchetypeRules> ArchetypeRulesFromJson(std::string_view json);

}  // namespace noema
