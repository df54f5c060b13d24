#include "runtime/workers/pi/pi_invocation.hpp"

#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <system_error>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "runtime/workers/pi/model_routing.hpp"

namespace crew {

namespace {

namespace fs = std::filesystem;

// Keeps insertion order so the mock output matches pi-crew's JSON.stringify.
using json = nlohmann::ordered_json;

constexpr std::string_view whitespace = " \t\r\n";

std::string_view trim(std::string_view s) {
  auto first = s.find_first_not_of(whitespace);
  if (first == std::string_view::npos)
    return {};
  auto last = s.find_last_not_of(whitespace);
  return s.substr(first, last - first + 1);
}

bool is_executable_file(const fs::path& file) {
  std::error_code ec;
  return fs::is_regular_file(file, ec) && ::access(file.c_str(), X_OK) == 0;
}

bool is_script(const fs::path& file) {
  auto ext = file.extension().string();
  return ext == ".js" || ext == ".mjs" || ext == ".cjs";
}

// Calls `fn(dir / name)` for each `PATH` entry until it returns true; an empty
// entry means the current directory, as for execvp.
template <class F>
bool for_each_on_path(std::string_view name, std::string_view path, F fn) {
  size_t begin = 0;
  while (begin <= path.size()) {
    auto end = path.find(':', begin);
    auto dir = path.substr(begin, end == std::string_view::npos
                                    ? std::string_view::npos
                                    : end - begin);
    if (fn(fs::path{dir.empty() ? "." : dir} / name))
      return true;
    if (end == std::string_view::npos)
      break;
    begin = end + 1;
  }
  return false;
}

// An integer >= 0 spelled exactly by `text` (surrounding blanks allowed).
std::optional<int> parse_count(const std::optional<std::string>& text) {
  if (!text)
    return std::nullopt;
  auto digits = trim(*text);
  int value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(),
                                   value);
  if (digits.empty() || ec != std::errc{}
      || end != digits.data() + digits.size() || value < 0)
    return std::nullopt;
  return value;
}

std::string adaptive_mock_plan() {
  auto phase = [](const char* name,
                  std::initializer_list<std::pair<const char*, const char*>>
                    tasks) {
    auto list = json::array();
    for (auto [role, task] : tasks)
      list.push_back(json{{"role", role}, {"task", task}});
    return json{{"name", name}, {"tasks", std::move(list)}};
  };
  json plan{
    {"phases",
     json::array({phase("research", {{"explorer", "Explore adaptive target"},
                                     {"analyst", "Analyze adaptive target"},
                                     {"planner", "Plan adaptive target"}}),
                  phase("build", {{"executor", "Implement adaptive target"}}),
                  phase("check", {{"reviewer", "Review adaptive target"},
                                  {"test-engineer", "Test adaptive target"},
                                  {"writer", "Summarize adaptive target"}})})}};
  return "Adaptive mock plan\nADAPTIVE_PLAN_JSON_START\n" + plan.dump()
         + "\nADAPTIVE_PLAN_JSON_END";
}

} // namespace

env_lookup process_env() {
  return [](std::string_view name) -> std::optional<std::string> {
    if (auto value = std::getenv(std::string{name}.c_str()))
      return std::string{value};
    return std::nullopt;
  };
}

// -- the pi binary ------------------------------------------------------------

std::string find_on_path(std::string_view name, std::string_view path) {
  if (name.empty())
    return {};
  if (name.find('/') != std::string_view::npos)
    return is_executable_file(name) ? std::string{name} : std::string{};
  std::string found;
  for_each_on_path(name, path, [&](const fs::path& candidate) {
    if (!is_executable_file(candidate))
      return false;
    found = candidate.string();
    return true;
  });
  return found;
}

pi_command pi_binary(const env_lookup& env) {
  pi_command cmd;
  auto path = env("PATH").value_or("");
  if (auto bin = env("PI_TEAMS_PI_BIN"); bin && !trim(*bin).empty()) {
    fs::path file{std::string{trim(*bin)}};
    std::error_code ec;
    if (!fs::exists(file, ec)) {
      cmd.argv = {file.string()};
      cmd.problem = "PI_TEAMS_PI_BIN=" + file.string() + " does not exist";
    } else if (is_script(file)) {
      auto node = find_on_path("node", path);
      cmd.argv = {node.empty() ? std::string{"node"} : node, file.string()};
      if (node.empty())
        cmd.problem = "node not found on PATH (needed to run PI_TEAMS_PI_BIN="
                      + file.string() + ")";
    } else {
      cmd.argv = {file.string()};
      if (!is_executable_file(file))
        cmd.problem = "PI_TEAMS_PI_BIN=" + file.string()
                      + " is not an executable file";
    }
    return cmd;
  }
  if (auto pi = find_on_path("pi", path); !pi.empty()) {
    cmd.argv = {pi};
    return cmd;
  }
  cmd.argv = {"pi"};
  std::string unusable;
  for_each_on_path("pi", path, [&](const fs::path& candidate) {
    std::error_code ec;
    if (!fs::exists(candidate, ec))
      return false;
    unusable = candidate.string();
    return true;
  });
  cmd.problem = unusable.empty()
                  ? "pi not found on PATH (install "
                    "@mariozechner/pi-coding-agent or set PI_TEAMS_PI_BIN)"
                  : "pi on PATH is not an executable file: " + unusable;
  return cmd;
}

// -- arguments and environment ------------------------------------------------

std::vector<std::string> pi_args(const pi_arg_options& options) {
  std::vector<std::string> args;
  if (options.mode == pi_output_mode::json)
    args = {"--mode", "json", "-p", "--no-session"};
  else
    args = {"--mode", "rpc", "--no-session"};
  if (!options.model.empty()) {
    args.emplace_back("--model");
    args.push_back(with_thinking(options.model, options.thinking));
  }
  if (!options.tools.empty()) {
    std::string list;
    for (const auto& tool : options.tools) {
      if (!list.empty())
        list += ',';
      list += tool;
    }
    args.emplace_back("--tools");
    args.push_back(std::move(list));
  }
  if (options.extensions) {
    args.emplace_back("--no-extensions");
    for (const auto& extension : *options.extensions) {
      args.emplace_back("--extension");
      args.push_back(extension);
    }
  }
  if (!options.inherit_skills)
    args.emplace_back("--no-skills");
  if (!options.inherit_project_context)
    args.emplace_back("--no-context-files");
  if (!options.system_prompt_file.empty()) {
    args.emplace_back(options.replace_system_prompt ? "--system-prompt"
                                                    : "--append-system-prompt");
    args.push_back(options.system_prompt_file);
  }
  return args;
}

std::string depth_guard::error() const {
  if (!blocked())
    return {};
  return "pi-crew depth guard blocked child worker: depth "
         + std::to_string(depth) + " >= max " + std::to_string(max_depth);
}

depth_guard check_depth(const env_lookup& env,
                        std::optional<uint32_t> config_max_depth) {
  depth_guard guard;
  if (auto depth = parse_count(env("PI_CREW_DEPTH")))
    guard.depth = *depth;
  else if (auto teams = parse_count(env("PI_TEAMS_DEPTH")))
    guard.depth = *teams;
  if (auto max = parse_count(env("PI_CREW_MAX_DEPTH")))
    guard.max_depth = *max;
  else if (auto teams = parse_count(env("PI_TEAMS_MAX_DEPTH")))
    guard.max_depth = *teams;
  else if (config_max_depth)
    guard.max_depth = static_cast<int>(*config_max_depth);
  return guard;
}

uint64_t final_drain_ms(const env_lookup& env) {
  if (auto ms = parse_count(env("CREW_PI_FINAL_DRAIN_MS")))
    return static_cast<uint64_t>(*ms);
  return default_final_drain_ms;
}

std::vector<std::string> pi_env(int parent_depth, int max_depth,
                                std::string_view role,
                                bool inherit_project_context,
                                bool inherit_skills) {
  std::vector<std::string> env;
  auto flag = [](bool on) { return std::string{on ? "1" : "0"}; };
  for (auto prefix : {"PI_CREW_", "PI_TEAMS_"}) {
    auto put = [&](const char* key, const std::string& value) {
      env.push_back(std::string{prefix} + key + "=" + value);
    };
    put("DEPTH", std::to_string(parent_depth + 1));
    put("MAX_DEPTH", std::to_string(max_depth));
    put("ROLE", std::string{role});
    put("INHERIT_PROJECT_CONTEXT", flag(inherit_project_context));
    put("INHERIT_SKILLS", flag(inherit_skills));
  }
  return env;
}

// -- mock modes ---------------------------------------------------------------

std::optional<mock_result> pi_mock(std::string_view mode,
                                   std::string_view agent,
                                   std::string_view prompt) {
  if (mode.empty())
    return std::nullopt;
  mock_result result;
  if (mode == "success") {
    result.stdout_text = "Mock child Pi success for " + std::string{agent}
                         + "\n";
    return result;
  }
  if (mode == "json-success" || mode == "adaptive-plan") {
    auto text = mode == "adaptive-plan"
                    && prompt.find("ADAPTIVE_PLAN_JSON_START")
                         != std::string_view::npos
                  ? adaptive_mock_plan()
                  : "Mock JSON success for " + std::string{agent};
    json message{
      {"type", "message"},
      {"message",
       {{"role", "assistant"},
        {"content", json::array({{{"type", "text"}, {"text", text}}})}}}};
    json end{{"type", "message_end"},
             {"usage",
              {{"input", 10}, {"output", 5}, {"cost", 0.001}, {"turns", 1}}}};
    result.stdout_text = message.dump(-1, ' ', false,
                                      json::error_handler_t::replace)
                         + "\n" + end.dump() + "\n";
    return result;
  }
  result.exit_code = 1;
  result.stderr_text = mode == "retryable-failure"
                         ? std::string{"rate limit: mock failure"}
                         : "mock failure: " + std::string{mode};
  return result;
}

} // namespace crew
