#include "runtime/workers/prompt.hpp"

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <system_error>

namespace crew {

std::string substitute_goal(std::string_view text, std::string_view goal) {
  static constexpr std::string_view placeholder = "{goal}";
  std::string result;
  result.reserve(text.size());
  size_t pos = 0;
  for (;;) {
    auto hit = text.find(placeholder, pos);
    if (hit == std::string_view::npos)
      break;
    result.append(text.substr(pos, hit - pos));
    result.append(goal);
    pos = hit + placeholder.size();
  }
  result.append(text.substr(pos));
  return result;
}

std::string render_prompt(const prompt_context& ctx) {
  std::string out;
  auto line = [&out](std::string_view a, std::string_view b = {}) {
    out.append(a);
    out.append(b);
    out.push_back('\n');
  };
  line("# crew Worker Runtime Context");
  line("Run ID: ", ctx.run_id);
  line("Team: ", ctx.team);
  line("Workflow: ", ctx.workflow);
  line("State root: ", ctx.state_root);
  line("Artifacts root: ", ctx.artifacts_root);
  line("Events path: ", ctx.events_path);
  line("Task ID: ", ctx.task_id);
  line("Task cwd: ", ctx.task_cwd);
  line("Workspace mode: ", ctx.workspace_mode);
  line("");
  line("Goal:");
  line(ctx.goal);
  line("");
  line("Step: ", ctx.step_id);
  line("Role: ", ctx.role);
  if (!ctx.agent.empty())
    line("Agent: ", ctx.agent);
  line("");
  line("Protocol:");
  line("- Work inside the task cwd above; it is your workspace for this step.");
  line("- Write your final answer to stdout; it becomes the result artifact "
       "that later steps read.");
  line("- Do not edit files outside the scope of this step.");
  line("- If you are blocked, say so plainly in the final answer and name "
       "what is missing instead of guessing.");
  if (!ctx.deps.empty()) {
    line("");
    line("# Dependency Outputs");
    for (const auto& dep : ctx.deps) {
      line("");
      line("## " + dep.task_id + " (" + dep.title + ")");
      line("Status: ", dep.status);
      line("Result artifact: ",
           dep.result_path.empty() ? "(none)" : dep.result_path);
      line(dep.result_text.empty() ? "(no result output)" : dep.result_text);
    }
  }
  line("");
  line("Task:");
  out.append(substitute_goal(ctx.task_text, ctx.goal));
  return out;
}

std::string read_result_excerpt(const std::filesystem::path& file,
                                size_t max_chars) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec))
    return {};
  auto size = std::filesystem::file_size(file, ec);
  if (ec)
    return {};
  std::ifstream in{file, std::ios::binary};
  if (!in)
    return {};
  auto want = static_cast<size_t>(std::min<uintmax_t>(size, max_chars));
  std::string text(want, '\0');
  in.read(text.data(), static_cast<std::streamsize>(want));
  text.resize(static_cast<size_t>(in.gcount()));
  if (size <= max_chars)
    return text;
  // Do not cut a UTF-8 sequence in half: drop continuation bytes and the
  // lead byte of an incomplete sequence at the end.
  size_t keep = text.size();
  size_t back = 0;
  while (back < 4 && keep > back
         && (static_cast<unsigned char>(text[keep - 1 - back]) & 0xC0) == 0x80)
    ++back;
  if (keep > back) {
    auto lead = static_cast<unsigned char>(text[keep - 1 - back]);
    size_t len = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (len > back + 1)
      keep -= back + 1;
  }
  text.resize(keep);
  text += "\n...(truncated " + std::to_string(size - keep) + " bytes)";
  return text;
}

} // namespace crew
