#include "config/resources.hpp"

#include "config/builtin_resources.hpp"
#include "config/frontmatter.hpp"
#include "messages/errors.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>

namespace crew {

namespace fs = std::filesystem;

const char* to_string(resource_source x) noexcept {
  switch (x) {
    case resource_source::builtin:
      return "builtin";
    case resource_source::user:
      return "user";
    case resource_source::project:
      return "project";
  }
  return "???";
}

std::string to_lower(std::string_view str) {
  std::string out{str};
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
  return out;
}

namespace {

bool ends_with(std::string_view str, std::string_view suffix) {
  return str.size() >= suffix.size()
         && str.substr(str.size() - suffix.size()) == suffix;
}

/// Returns the file name of `path` without directories and without `suffix`.
std::string basename_without(std::string_view path, std::string_view suffix) {
  if (auto pos = path.find_last_of("/\\"); pos != std::string_view::npos)
    path.remove_prefix(pos + 1);
  if (auto pos = path.find(':'); pos != std::string_view::npos
                                 && path.substr(0, pos) == "builtin")
    path.remove_prefix(pos + 1);
  if (ends_with(path, suffix))
    path.remove_suffix(suffix.size());
  return std::string{path};
}

std::string where(const std::string& path, size_t line) {
  return line > 0 ? fmt::format("{}:{}", path, line) : path;
}

/// Parses a strict unsigned decimal integer in [min, max]; throws otherwise.
uint64_t parse_uint(const frontmatter& fm, std::string_view key,
                    const std::string& path, uint64_t min, uint64_t max) {
  auto value = frontmatter_get(fm, key);
  auto fail = [&] {
    throw input_error(fmt::format(
      "{}: {}: must be an integer between {} and {} (got '{}')",
      where(path, frontmatter_line(fm, key)), key, min, max, value));
  };
  if (value.empty() || value.size() > 19)
    fail();
  uint64_t result = 0;
  for (auto c : value) {
    if (c < '0' || c > '9')
      fail();
    result = result * 10 + static_cast<uint64_t>(c - '0');
  }
  if (result < min || result > max)
    fail();
  return result;
}

bool is_word_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
         || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (true) {
    auto nl = text.find('\n');
    lines.push_back(text.substr(0, nl));
    if (nl == std::string_view::npos)
      break;
    text.remove_prefix(nl + 1);
  }
  return lines;
}

/// Matches `## <id>`; returns the trimmed id or an empty view.
bool match_step_heading(std::string_view line, std::string_view& id) {
  line = trim(line);
  if (line.size() < 3 || line.substr(0, 2) != "##")
    return false;
  if (line[2] != ' ' && line[2] != '\t')
    return false;
  id = trim(line.substr(2));
  return !id.empty();
}

/// Matches `key: value` with key `[\w-]+`.
bool match_config_line(std::string_view line, std::string_view& key,
                       std::string_view& value) {
  line = trim(line);
  size_t i = 0;
  while (i < line.size() && is_word_char(line[i]))
    ++i;
  if (i == 0 || i >= line.size() || line[i] != ':')
    return false;
  key = line.substr(0, i);
  value = trim(line.substr(i + 1));
  return true;
}

std::string join_lines(const std::vector<std::string_view>& lines, size_t first,
                       size_t last) {
  std::string out;
  for (size_t i = first; i < last; ++i) {
    if (i > first)
      out += '\n';
    out += lines[i];
  }
  return std::string{trim(out)};
}

} // namespace

agent_def parse_agent(std::string_view content, std::string path,
                      resource_source source) {
  auto fm = parse_frontmatter(content);
  agent_def result;
  result.name = std::string{frontmatter_get(fm, "name")};
  if (result.name.empty())
    result.name = basename_without(path, ".md");
  result.description = std::string{frontmatter_get(fm, "description")};
  if (result.description.empty())
    result.description = "No description provided.";
  result.model = std::string{frontmatter_get(fm, "model")};
  result.fallback_models = split_csv(frontmatter_get(fm, "fallbackModels"));
  result.thinking = std::string{frontmatter_get(fm, "thinking")};
  result.tools = split_csv(frontmatter_get(fm, "tools"));
  result.system_prompt_append = frontmatter_get(fm, "systemPromptMode")
                                == "append";
  result.command = std::string{frontmatter_get(fm, "command")};
  if (frontmatter_has(fm, "maxAttempts"))
    result.max_attempts = static_cast<uint32_t>(
      parse_uint(fm, "maxAttempts", path, 1, 100));
  if (frontmatter_has(fm, "timeoutMs"))
    result.timeout_ms = parse_uint(fm, "timeoutMs", path, 1,
                                   std::numeric_limits<uint32_t>::max());
  result.disabled = frontmatter_get(fm, "disabled") == "true"
                    || frontmatter_get(fm, "enabled") == "false";
  result.system_prompt = std::string{trim(fm.body)};
  result.source = source;
  result.path = std::move(path);
  return result;
}

team_def parse_team(std::string_view content, std::string path,
                    resource_source source) {
  auto fm = parse_frontmatter(content);
  team_def result;
  result.name = std::string{frontmatter_get(fm, "name")};
  if (result.name.empty())
    result.name = basename_without(path, ".team.md");
  result.description = std::string{frontmatter_get(fm, "description")};
  result.default_workflow = std::string{frontmatter_get(fm, "defaultWorkflow")};
  if (result.default_workflow.empty())
    result.default_workflow = std::string{frontmatter_get(fm, "workflow")};
  if (auto mode = frontmatter_get(fm, "workspaceMode"); !mode.empty()) {
    if (mode != "single" && mode != "worktree")
      throw input_error(fmt::format(
        "{}: workspaceMode: must be 'single' or 'worktree' (got '{}')",
        where(path, frontmatter_line(fm, "workspaceMode")), mode));
    result.workspace_mode = std::string{mode};
  }
  if (frontmatter_has(fm, "maxConcurrency"))
    result.max_concurrency = static_cast<uint32_t>(
      parse_uint(fm, "maxConcurrency", path, 1, 1024));
  for (auto raw : split_lines(fm.body)) {
    auto line = trim(raw);
    if (line.empty() || line.front() != '-')
      continue;
    line = trim(line.substr(1));
    // Deliberate fix of pi-crew's split(":", 2): keep text after a 2nd colon.
    auto colon = line.find(':');
    team_role role;
    role.name = std::string{trim(line.substr(0, colon))};
    if (role.name.empty())
      continue;
    std::string rest = colon == std::string_view::npos
                         ? std::string{}
                         : std::string{trim(line.substr(colon + 1))};
    if (auto pos = rest.find("agent="); pos != std::string::npos) {
      auto end = pos + 6;
      while (end < rest.size() && is_word_char(rest[end]))
        ++end;
      if (end > pos + 6) {
        role.agent = rest.substr(pos + 6, end - pos - 6);
        rest.erase(pos, end - pos);
      }
    }
    if (role.agent.empty())
      role.agent = role.name;
    role.description = std::string{trim(rest)};
    result.roles.push_back(std::move(role));
  }
  result.source = source;
  result.path = std::move(path);
  return result;
}

workflow_def parse_workflow(std::string_view content, std::string path,
                            resource_source source) {
  auto fm = parse_frontmatter(content);
  workflow_def result;
  result.name = std::string{frontmatter_get(fm, "name")};
  if (result.name.empty())
    result.name = basename_without(path, ".workflow.md");
  result.description = std::string{frontmatter_get(fm, "description")};
  if (frontmatter_has(fm, "maxConcurrency"))
    result.max_concurrency = static_cast<uint32_t>(
      parse_uint(fm, "maxConcurrency", path, 1, 1024));
  auto lines = split_lines(fm.body);
  // Collect the heading positions first.
  std::vector<std::pair<size_t, std::string_view>> headings;
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string_view id;
    if (match_step_heading(lines[i], id))
      headings.emplace_back(i, id);
  }
  for (size_t h = 0; h < headings.size(); ++h) {
    auto [first, id] = headings[h];
    auto last = h + 1 < headings.size() ? headings[h + 1].first : lines.size();
    workflow_step step;
    step.id = std::string{id};
    step.line = fm.body_line + first;
    std::string task_key;
    auto i = first + 1;
    for (; i < last; ++i) {
      std::string_view key;
      std::string_view value;
      if (trim(lines[i]).empty() || !match_config_line(lines[i], key, value))
        break;
      if (key == "role") {
        step.role = std::string{value};
      } else if (key == "dependsOn") {
        step.depends_on = split_csv(value);
      } else if (key == "parallelGroup") {
        step.parallel_group = std::string{value};
      } else if (key == "output") {
        if (value == "false")
          step.output_disabled = true;
        else
          step.output = std::string{value};
      } else if (key == "reads") {
        step.reads = value == "false" ? std::vector<std::string>{}
                                      : split_csv(value);
      } else if (key == "model") {
        step.model = std::string{value};
      } else if (key == "verify") {
        step.verify = value == "true";
      } else if (key == "task") {
        task_key = std::string{value};
        step.task_line = fm.body_line + i;
      }
      // skills, progress, worktree and unknown keys: metadata only
    }
    step.task = join_lines(lines, i, last);
    if (step.task.empty()) {
      step.task = task_key.empty() ? std::string{"{goal}"} : task_key;
      if (task_key.empty())
        step.task_line = step.line;
    } else {
      while (trim(lines[i]).empty()) // join_lines trimmed the blank lines
        ++i;
      step.task_line = fm.body_line + i;
    }
    if (step.role.empty())
      step.role = step.id;
    result.steps.push_back(std::move(step));
  }
  result.source = source;
  result.path = std::move(path);
  return result;
}

const agent_def* resource_set::find_agent(std::string_view name) const {
  auto i = agents.find(to_lower(name));
  return i != agents.end() ? &i->second : nullptr;
}

const team_def* resource_set::find_team(std::string_view name) const {
  auto i = teams.find(std::string{name});
  return i != teams.end() ? &i->second : nullptr;
}

const workflow_def* resource_set::find_workflow(std::string_view name) const {
  auto i = workflows.find(std::string{name});
  return i != workflows.end() ? &i->second : nullptr;
}

namespace {

enum class kind { agent, team, workflow };

std::optional<kind> classify(std::string_view dir, std::string_view file) {
  if (dir == "agents") {
    if (ends_with(file, ".md") && !ends_with(file, ".team.md")
        && !ends_with(file, ".workflow.md"))
      return kind::agent;
  } else if (dir == "teams") {
    if (ends_with(file, ".team.md"))
      return kind::team;
  } else if (dir == "workflows") {
    if (ends_with(file, ".workflow.md"))
      return kind::workflow;
  }
  return std::nullopt;
}

void add(resource_set& set, kind k, std::string_view content, std::string path,
         resource_source source) {
  switch (k) {
    case kind::agent: {
      auto def = parse_agent(content, std::move(path), source);
      auto key = to_lower(def.name);
      set.agents.insert_or_assign(std::move(key), std::move(def));
      break;
    }
    case kind::team: {
      auto def = parse_team(content, std::move(path), source);
      auto key = def.name;
      set.teams.insert_or_assign(std::move(key), std::move(def));
      break;
    }
    case kind::workflow: {
      auto def = parse_workflow(content, std::move(path), source);
      auto key = def.name;
      set.workflows.insert_or_assign(std::move(key), std::move(def));
      break;
    }
  }
}

std::string read_file(const fs::path& file) {
  std::ifstream in{file, std::ios::binary};
  if (!in)
    throw input_error(fmt::format("{}: cannot read file", file.string()));
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad())
    throw input_error(fmt::format("{}: cannot read file", file.string()));
  return std::move(buf).str();
}

void load_layer(resource_set& set, const fs::path& root,
                resource_source source) {
  for (const char* dir : {"agents", "teams", "workflows"}) {
    std::error_code ec;
    auto path = root / dir;
    if (!fs::is_directory(path, ec))
      continue;
    std::vector<fs::path> files;
    for (auto& entry : fs::directory_iterator(path, ec)) {
      std::error_code ec2;
      if (entry.is_regular_file(ec2))
        files.push_back(entry.path());
    }
    if (ec)
      throw input_error(fmt::format("{}: cannot list directory: {}",
                                    path.string(), ec.message()));
    std::sort(files.begin(), files.end(),
              [](const fs::path& x, const fs::path& y) {
                return x.filename().string() < y.filename().string();
              });
    for (auto& file : files)
      if (auto k = classify(dir, file.filename().string()))
        add(set, *k, read_file(file), file.string(), source);
  }
}

} // namespace

resource_set discover_resources(const fs::path& project_crew_root,
                                const fs::path& user_root) {
  resource_set set;
  // builtin: the embedded files are sorted by path already
  for (const char* dir : {"agents", "teams", "workflows"}) {
    std::string prefix = std::string{dir} + "/";
    for (auto& file : builtin_resource_files()) {
      if (file.path.substr(0, prefix.size()) != prefix)
        continue;
      auto name = file.path.substr(prefix.size());
      if (name.find('/') != std::string_view::npos)
        continue;
      if (auto k = classify(dir, name))
        add(set, *k, file.content, "builtin:" + std::string{file.path},
            resource_source::builtin);
    }
  }
  if (!user_root.empty())
    load_layer(set, user_root, resource_source::user);
  if (!project_crew_root.empty())
    load_layer(set, project_crew_root, resource_source::project);
  std::erase_if(set.agents, [](const auto& kv) { return kv.second.disabled; });
  return set;
}

namespace {

std::vector<std::string> string_list(const nlohmann::json& v) {
  if (v.is_array()) {
    std::vector<std::string> out;
    for (auto& x : v)
      if (x.is_string())
        out.push_back(x.get<std::string>());
    return out;
  }
  if (v.is_string())
    return split_csv(v.get<std::string>());
  return {};
}

} // namespace

void apply_agent_overrides(resource_set& resources,
                           const nlohmann::json& config) {
  auto agents = config.find("agents");
  if (agents == config.end() || !agents->is_object())
    return;
  if (agents->value("disableBuiltins", false))
    std::erase_if(resources.agents, [](const auto& kv) {
      return kv.second.source == resource_source::builtin;
    });
  if (auto overrides = agents->find("overrides");
      overrides != agents->end() && overrides->is_object()) {
    // Named references, not a structured binding: clang before 16 cannot
    // capture a binding in the lambda below (P1091).
    for (auto it = overrides->begin(); it != overrides->end(); ++it) {
      const std::string& name = it.key();
      const nlohmann::json& ov = it.value();
      auto i = resources.agents.find(to_lower(name));
      if (i == resources.agents.end() || !ov.is_object())
        continue;
      auto& a = i->second;
      if (auto d = ov.find("disabled"); d != ov.end() && d->is_boolean())
        a.disabled = d->get<bool>();
      auto text = [&](const char* key, std::string& field) {
        if (auto v = ov.find(key); v != ov.end())
          field = v->is_string() ? v->get<std::string>() : std::string{};
      };
      text("model", a.model);
      text("thinking", a.thinking);
      if (auto v = ov.find("fallbackModels"); v != ov.end())
        a.fallback_models = string_list(*v);
      if (auto v = ov.find("tools"); v != ov.end())
        a.tools = string_list(*v);
    }
  }
  std::erase_if(resources.agents,
                [](const auto& kv) { return kv.second.disabled; });
}

} // namespace crew
