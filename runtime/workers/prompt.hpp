#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace crew {

/// The result of one dependency, as shown to a dependent task's worker.
struct dependency_output {
  std::string task_id;
  std::string title;
  std::string status;      ///< task status name, e.g. "completed"
  std::string result_path; ///< result artifact path; empty if none
  std::string result_text; ///< excerpt (see read_result_excerpt); may be empty
};

/// Everything a worker prompt is rendered from (inventory §5.2, simplified).
struct prompt_context {
  std::string run_id;
  std::string team;
  std::string workflow;
  std::string state_root;
  std::string artifacts_root;
  std::string events_path;
  std::string task_id;
  std::string task_cwd;
  std::string workspace_mode = "single";
  std::string goal;
  std::string step_id;
  std::string role;
  std::string agent;
  std::string task_text; ///< raw step text; `{goal}` is substituted
  std::vector<dependency_output> deps;
};

/// Replaces every `{goal}` in `text` with `goal`; other braces stay as-is.
std::string substitute_goal(std::string_view text, std::string_view goal);

/// Renders the worker prompt: runtime context, goal, step and role, protocol,
/// dependency outputs (only if any) and the task text, newline-joined.
std::string render_prompt(const prompt_context& ctx);

/// Reads the first `max_chars` bytes of `file` (cut back to a UTF-8 boundary)
/// followed by `"\n...(truncated N bytes)"` if the file is larger, where N
/// counts the bytes left out. Returns "" if the file is missing or unreadable.
std::string read_result_excerpt(const std::filesystem::path& file,
                                size_t max_chars = 24000);

} // namespace crew
