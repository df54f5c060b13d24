#pragma once

#include <cstdint>
#include <filesystem>
#include <map>

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace crew {

/// Where a resource was found; later sources override earlier ones.
enum class resource_source : uint8_t {
  builtin = 1,
  user,
  project,
};

/// Returns "builtin", "user" or "project".
const char* to_string(resource_source x) noexcept;

/// An agent definition (`agents/*.md`, inventory §3.2 and DESIGN §8).
struct agent_def {
  std::string name;
  std::string description;
  std::string model;
  std::vector<std::string> fallback_models;
  std::string thinking;
  std::vector<std::string> tools;
  std::string system_prompt; ///< the trimmed body
  bool system_prompt_append = false; ///< `systemPromptMode: append`
  std::string command;   ///< command backend: shell command line; empty = pi
  uint32_t max_attempts = 0; ///< per-agent retry override; 0 = unset
  uint64_t timeout_ms = 0;   ///< per-attempt wall-clock limit; 0 = none
  bool disabled = false;     ///< `disabled: true` or `enabled: false`
  resource_source source = resource_source::builtin;
  std::string path; ///< file path, or `builtin:agents/<file>`
};

/// One role of a team: a name bound to an agent.
struct team_role {
  std::string name;
  std::string agent; ///< `agent=<name>` token; defaults to the role name
  std::string description;
};

/// A team definition (`teams/*.team.md`, inventory §3.3).
struct team_def {
  std::string name;
  std::string description;
  std::string default_workflow; ///< `defaultWorkflow` or `workflow`
  std::string workspace_mode = "single"; ///< `single` or `worktree`
  uint32_t max_concurrency = 0; ///< 0 = unset
  std::vector<team_role> roles;
  resource_source source = resource_source::builtin;
  std::string path;
};

/// One `## <id>` section of a workflow.
struct workflow_step {
  std::string id;
  std::string role; ///< defaults to the step id
  std::string task; ///< the text after the config lines; default `{goal}`
  std::string model;
  std::string output; ///< shared output name; empty = none
  std::string parallel_group;
  std::vector<std::string> depends_on;
  std::vector<std::string> reads;
  bool verify = false;
  bool output_disabled = false; ///< `output: false`
  size_t line = 0; ///< line of the `## id` heading
  size_t task_line = 0; ///< line where `task` starts (its `task:` line if set so)
};

/// A workflow definition (`workflows/*.workflow.md`, inventory §3.4).
struct workflow_def {
  std::string name;
  std::string description;
  uint32_t max_concurrency = 0; ///< 0 = unset
  std::vector<workflow_step> steps;
  resource_source source = resource_source::builtin;
  std::string path;
};

/// Parses an agent file. Throws `input_error` naming `path` (and the line and
/// key) on a malformed `maxAttempts` or `timeoutMs`.
agent_def parse_agent(std::string_view content, std::string path,
                      resource_source source);

/// Parses a team file. Throws `input_error` on a malformed `maxConcurrency`
/// or an unknown `workspaceMode`.
team_def parse_team(std::string_view content, std::string path,
                    resource_source source);

/// Parses a workflow file. Throws `input_error` on a malformed
/// `maxConcurrency` or a step with an empty id.
workflow_def parse_workflow(std::string_view content, std::string path,
                            resource_source source);

/// All discovered resources after merging builtin < user < project.
struct resource_set {
  std::map<std::string, agent_def> agents; ///< key: lowercased name
  std::map<std::string, team_def> teams;   ///< key: name (case-sensitive)
  std::map<std::string, workflow_def> workflows; ///< key: name

  /// Case-insensitive lookup; nullptr if absent.
  const agent_def* find_agent(std::string_view name) const;

  /// Case-sensitive lookup; nullptr if absent.
  const team_def* find_team(std::string_view name) const;

  /// Case-sensitive lookup; nullptr if absent.
  const workflow_def* find_workflow(std::string_view name) const;
};

/// Applies config `agents.disableBuiltins` (drops builtin agents) and
/// `agents.overrides.<name>` (case-insensitive: `disabled`, `model`,
/// `fallbackModels`, `thinking`, `tools`; `false` clears a value) to the
/// discovered agents, then drops disabled ones (inventory §3.6). `config` is
/// the validated config object (`crew_config::values`).
void apply_agent_overrides(resource_set& resources,
                           const nlohmann::json& config);

/// Loads the builtin resources, then `<user_root>/{agents,teams,workflows}`
/// (skipped if `user_root` is empty), then
/// `<project_crew_root>/{agents,teams,workflows}`. Each directory is read in
/// name order; later definitions replace earlier ones with the same name;
/// disabled agents are dropped after merging. Missing directories are fine;
/// a file that fails to parse or read throws `input_error` naming it.
resource_set discover_resources(const std::filesystem::path& project_crew_root,
                                const std::filesystem::path& user_root);

/// Returns `str` in ASCII lower case.
std::string to_lower(std::string_view str);

} // namespace crew
