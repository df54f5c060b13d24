#include "doctor.hpp"

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <regex>
#include <string_view>
#include <system_error>
#include <vector>

#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "runtime/workers/pi/pi_invocation.hpp"
#include "runtime/workers/process.hpp"
#include "runtime/operations/project.hpp"

namespace crew::cli {

namespace {

namespace fs = std::filesystem;
// Keeps `ok` before `checks` and each row in check, status, detail, fix order.
using json = nlohmann::ordered_json;

constexpr uint64_t probe_timeout_ms = 20000;
constexpr size_t probe_stdout_max = 65536;

constexpr const char* install_pi
  = "install @mariozechner/pi-coding-agent: npm install -g "
    "@mariozechner/pi-coding-agent, or set PI_TEAMS_PI_BIN";
constexpr const char* reinstall_pi
  = "reinstall @mariozechner/pi-coding-agent (it needs node >= 20.6): npm "
    "install -g @mariozechner/pi-coding-agent, or set PI_TEAMS_PI_BIN to a "
    "working pi";
constexpr const char* install_node
  = "install node >= 20.6 (https://nodejs.org or your package manager)";

enum class check_status : uint8_t { ok = 1, warn, error };

const char* to_string(check_status x) noexcept {
  switch (x) {
    case check_status::ok:
      return "ok";
    case check_status::warn:
      return "warn";
    case check_status::error:
      return "error";
  }
  return "?";
}

/// One finding: `fix` says what to do about a warn or error row.
struct check_row {
  std::string check;
  check_status status = check_status::ok;
  std::string detail;
  std::string fix;
};

/// Whether the project needs a working pi, and why (not).
struct pi_need {
  bool needed = true;
  std::string reason;
};

// -- probes -------------------------------------------------------------------

/// How a short-lived probe (`pi --version`, `git status`) ended and what it
/// printed.
struct probe_result {
  process_outcome outcome;
  std::string out; ///< stdout, at most probe_stdout_max bytes
};

/// Runs `argv` with stdin closed and a 20 s limit, capturing its output in
/// memory only.
probe_result probe(std::vector<std::string> argv, std::string cwd = {},
                   std::vector<std::string> env = {}) {
  process_spec spec;
  spec.argv = std::move(argv);
  spec.cwd = std::move(cwd);
  spec.env = std::move(env);
  spec.timeout_ms = probe_timeout_ms;
  spec.kill_grace_ms = 1000;
  probe_result r;
  process_callbacks cb;
  cb.on_stdout = [&r](std::string_view chunk) {
    if (r.out.size() < probe_stdout_max)
      r.out.append(chunk.substr(0, probe_stdout_max - r.out.size()));
  };
  r.outcome = run_process(spec, cb);
  return r;
}

std::string_view trim(std::string_view s) {
  constexpr std::string_view blanks = " \t\r\n";
  auto first = s.find_first_not_of(blanks);
  if (first == std::string_view::npos)
    return {};
  return s.substr(first, s.find_last_not_of(blanks) - first + 1);
}

std::vector<std::string> nonblank_lines(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    auto end = text.find('\n');
    auto line = trim(text.substr(0, end));
    if (!line.empty())
      out.emplace_back(line.size() > 200 ? line.substr(0, 200) : line);
    if (end == std::string_view::npos)
      break;
    text.remove_prefix(end + 1);
  }
  return out;
}

/// Why a probe failed: "exit code 1: <its last line of output>".
std::string failure_text(const probe_result& r) {
  auto lines = nonblank_lines(r.outcome.stderr_tail);
  if (lines.empty())
    lines = nonblank_lines(r.out);
  return lines.empty() ? r.outcome.error : r.outcome.error + ": " + lines.back();
}

struct version_info {
  std::string text; ///< as printed, e.g. "0.73.1" or "20.20.2"
  int major = 0;
  int minor = 0;
};

/// The first `X.Y[.Z]` in `text`.
std::optional<version_info> find_version(const std::string& text) {
  static const std::regex pattern{R"((\d+)\.(\d+)(\.\d+)?)"};
  std::smatch m;
  if (!std::regex_search(text, m, pattern))
    return std::nullopt;
  return version_info{m.str(0), std::atoi(m.str(1).c_str()),
                      std::atoi(m.str(2).c_str())};
}

/// `a, b, c, … (N)` for long lists.
std::string short_list(const std::vector<std::string>& xs, size_t shown = 5) {
  if (xs.size() <= shown)
    return fmt::format("{}", fmt::join(xs, ", "));
  return fmt::format("{}, … ({} in all)",
                     fmt::join(xs.begin(), xs.begin() + static_cast<long>(shown), ", "),
                     xs.size());
}

/// A private directory removed again on destruction: pi's agent dir for
/// `pi --version`, which creates auth.json and a session directory there.
struct scratch_dir {
  fs::path path;

  scratch_dir() {
    std::error_code ec;
    auto tmp = fs::temp_directory_path(ec);
    if (ec)
      return;
    auto tmpl = (tmp / "crew-doctor-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) != nullptr)
      path = tmpl;
  }

  ~scratch_dir() {
    std::error_code ec;
    if (!path.empty())
      fs::remove_all(path, ec);
  }

  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
};

// -- checks -------------------------------------------------------------------

std::optional<std::string> mock_mode(const env_lookup& env) {
  auto mode = env("PI_TEAMS_MOCK_CHILD_PI");
  if (!mode || mode->empty())
    return std::nullopt;
  return mode;
}

pi_need pi_needed(const project_context& ctx, bool config_loaded,
                  bool resources_known, const env_lookup& env) {
  if (mock_mode(env))
    return {false, "PI_TEAMS_MOCK_CHILD_PI is set, so workers start no pi"};
  if (config_loaded) {
    auto off = [&](const char* name) { return env(name).value_or("") == "0"; };
    auto mode = ctx.config.runtime.mode;
    if (!ctx.config.execute_workers || off("PI_CREW_EXECUTE_WORKERS")
        || off("PI_TEAMS_EXECUTE_WORKERS"))
      return {false, "workers are not executed (executeWorkers off)"};
    if (mode == runtime_mode::scaffold || mode == runtime_mode::sim)
      return {false, fmt::format("runtime.mode is {}", to_string(mode))};
  }
  if (!resources_known)
    return {true, "the agents could not be loaded"};
  std::vector<std::string> on_pi;
  for (auto& [key, agent] : ctx.resources.agents)
    if (!agent.disabled && agent.command.empty())
      on_pi.push_back(agent.name);
  if (on_pi.empty())
    return {false, "every agent has a `command:`"};
  return {true, fmt::format("{} agent(s) run on pi: {}", on_pi.size(),
                            short_list(on_pi))};
}

check_row check_pi(const env_lookup& env, const pi_need& need) {
  check_row row{"pi", check_status::ok, {}, {}};
  auto unhealthy = need.needed ? check_status::error : check_status::warn;
  auto context = need.needed ? "; needed: " + need.reason
                             : "; not needed now: " + need.reason;
  auto cmd = pi_binary(env);
  if (!cmd.usable()) {
    row.status = unhealthy;
    row.detail = cmd.problem + context;
    row.fix = install_pi;
    return row;
  }
  auto where = fmt::format("{}", fmt::join(cmd.argv, " "));
  auto argv = cmd.argv;
  argv.emplace_back("--version");
  std::vector<std::string> pi_env{"PI_OFFLINE=1"};
  scratch_dir agent_dir;
  if (!agent_dir.path.empty())
    pi_env.push_back("PI_CODING_AGENT_DIR=" + agent_dir.path.string());
  auto r = probe(std::move(argv), {}, std::move(pi_env));
  if (!r.outcome.success()) {
    row.status = unhealthy;
    row.detail = fmt::format("`{} --version` failed: {}{}", where,
                             failure_text(r), context);
    row.fix = reinstall_pi;
    return row;
  }
  // pi prints its version to stderr when stdin is not a terminal.
  if (auto v = find_version(r.out + "\n" + r.outcome.stderr_tail)) {
    row.detail = fmt::format("pi {} ({})", v->text, where);
    return row;
  }
  auto lines = nonblank_lines(r.outcome.stderr_tail + "\n" + r.out);
  row.status = check_status::warn;
  row.detail = fmt::format("`{} --version` printed no version: {}", where,
                           lines.empty() ? "(nothing)" : lines.front());
  row.fix = reinstall_pi;
  return row;
}

check_row check_node(const env_lookup& env, const pi_need& need) {
  check_row row{"node", check_status::ok, {}, {}};
  auto unhealthy = need.needed ? check_status::warn : check_status::ok;
  auto context = need.needed ? " (pi needs node >= 20.6)"
                             : " (not needed now: " + need.reason + ")";
  auto node = find_on_path("node", env("PATH").value_or(""));
  if (node.empty()) {
    row.status = unhealthy;
    row.detail = "node not found on PATH" + context;
    row.fix = install_node;
    return row;
  }
  auto r = probe({node, "--version"});
  auto v = r.outcome.success() ? find_version(r.out + "\n" + r.outcome.stderr_tail)
                               : std::nullopt;
  if (!v) {
    row.status = unhealthy;
    row.detail = fmt::format("`{} --version` {}{}", node,
                             r.outcome.success() ? "printed no version"
                                                 : "failed: " + failure_text(r),
                             context);
    row.fix = install_node;
    return row;
  }
  if (v->major > 20 || (v->major == 20 && v->minor >= 6)) {
    row.detail = fmt::format("node {} ({})", v->text, node);
    return row;
  }
  row.status = unhealthy;
  row.detail = fmt::format("node {} ({}) is older than 20.6{}", v->text, node,
                           context);
  row.fix = install_node;
  return row;
}

check_row config_ok_row(const project_context& ctx) {
  std::vector<std::string> files;
  for (auto& f : ctx.config.files)
    files.push_back(f.string());
  return {"config", check_status::ok,
          fmt::format("{}; {} agents, {} teams, {} workflows",
                      files.empty() ? std::string{"defaults (no config file)"}
                                    : fmt::format("{}", fmt::join(files, ", ")),
                      ctx.resources.agents.size(), ctx.resources.teams.size(),
                      ctx.resources.workflows.size()),
          ""};
}

void check_agents(const project_context& ctx, std::vector<check_row>& rows) {
  size_t on_pi = 0, commands = 0, before = rows.size();
  for (auto& [key, a] : ctx.resources.agents) {
    if (a.disabled)
      continue;
    if (!a.command.empty()) {
      ++commands;
      continue;
    }
    ++on_pi;
    if (a.model.empty() && a.fallback_models.empty())
      rows.push_back(
        {"agents", check_status::warn,
         fmt::format("agent {} has no model: pi will use its default model",
                     a.name),
         fmt::format("set `model:` in {} (or agents.overrides.{}.model in the "
                     "config)",
                     a.path, a.name)});
  }
  if (rows.size() == before)
    rows.push_back({"agents", check_status::ok,
                    fmt::format("{} on pi, each with a model; {} with a "
                                "`command:`",
                                on_pi, commands),
                    ""});
}

bool writable_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec) && ::access(p.c_str(), W_OK | X_OK) == 0;
}

/// Checks that crew can write its state without creating anything itself.
check_row check_state_root(const fs::path& crew_root) {
  check_row row{"state-root", check_status::ok, {}, {}};
  std::error_code ec;
  if (!fs::exists(crew_root, ec)) {
    auto parent = crew_root.parent_path();
    while (!parent.empty() && parent != parent.root_path()
           && !fs::exists(parent, ec))
      parent = parent.parent_path();
    if (writable_dir(parent)) {
      row.detail = fmt::format("{} does not exist yet; {} is writable, so crew "
                               "can create it",
                               crew_root.string(), parent.string());
      return row;
    }
    row.status = check_status::error;
    row.detail = fmt::format("{} does not exist and {} is not writable",
                             crew_root.string(), parent.string());
    row.fix = fmt::format("create {} writable by this user, or use another --cwd",
                          crew_root.string());
    return row;
  }
  for (auto& dir : {crew_root, crew_root / "state", crew_root / "artifacts"}) {
    if (dir != crew_root && !fs::exists(dir, ec))
      continue;
    if (!fs::is_directory(dir, ec)) {
      row.status = check_status::error;
      row.detail = dir.string() + " is not a directory";
      row.fix = fmt::format("move {} away: crew keeps its state there",
                            dir.string());
      return row;
    }
    if (!writable_dir(dir)) {
      row.status = check_status::error;
      row.detail = dir.string() + " is not writable";
      row.fix = fmt::format("make {} writable by this user (chmod -R u+w), or run "
                            "crew as its owner",
                            dir.string());
      return row;
    }
  }
  row.detail = crew_root.string() + " is writable";
  return row;
}

/// With workspaceMode worktree: git on PATH and a clean leader checkout.
std::optional<check_row> check_worktree(const project_context& ctx,
                                        bool config_loaded, bool resources_known,
                                        const env_lookup& env) {
  std::vector<std::string> sources;
  if (config_loaded && ctx.config.workspace == workspace_mode::worktree)
    sources.emplace_back("the config");
  if (resources_known)
    for (auto& [name, team] : ctx.resources.teams)
      if (team.workspace_mode == "worktree")
        sources.push_back("team " + team.name);
  if (sources.empty())
    return std::nullopt;
  check_row row{"worktree", check_status::ok, {}, {}};
  auto why = fmt::format("workspaceMode worktree ({})", fmt::join(sources, ", "));
  auto root = ctx.project_root.string();
  auto git = find_on_path("git", env("PATH").value_or(""));
  if (git.empty()) {
    row.status = check_status::error;
    row.detail = why + " needs git, which is not on PATH";
    row.fix = "install git, or set workspaceMode: single";
    return row;
  }
  // --no-optional-locks: git status must not refresh (write) the index.
  auto r = probe({git, "--no-optional-locks", "status", "--porcelain", "--", ":/",
                  ":(exclude).crew"},
                 root, {"GIT_OPTIONAL_LOCKS=0", "LC_ALL=C"});
  if (!r.outcome.success()) {
    row.status = check_status::error;
    row.detail = fmt::format("{}: `git status` failed in {}: {}", why, root,
                             failure_text(r));
    row.fix = fmt::format("make {} a git repository with a commit (git init, "
                          "git commit), or set workspaceMode: single",
                          root);
    return row;
  }
  auto head = probe({git, "rev-parse", "--verify", "--quiet", "HEAD"}, root,
                    {"LC_ALL=C"});
  if (!head.outcome.success()) {
    row.status = check_status::error;
    row.detail = fmt::format("{}: the leader {} has no commit yet", why, root);
    row.fix = "commit once (git add, git commit): worktrees start from HEAD";
    return row;
  }
  auto changes = nonblank_lines(r.out);
  if (changes.empty()) {
    row.detail = fmt::format("{}: git {}, the leader {} is clean", why, git, root);
    return row;
  }
  auto summary = fmt::format("the leader {} has {} uncommitted change(s): {}",
                             root, changes.size(), short_list(changes, 3));
  if (!ctx.config.require_clean_worktree_leader) {
    row.detail = fmt::format("{}: {} (allowed: requireCleanWorktreeLeader is "
                             "false)",
                             why, summary);
    return row;
  }
  row.status = check_status::error;
  row.detail = why + ": " + summary;
  row.fix = "commit or stash them (git status), or set "
            "requireCleanWorktreeLeader: false";
  return row;
}

// -- output -------------------------------------------------------------------

void print_text(const std::vector<check_row>& rows, size_t errors,
                size_t warnings) {
  for (auto& row : rows) {
    std::cout << fmt::format("{:<5}  {:<10}  {}\n", to_string(row.status),
                             row.check, row.detail);
    if (row.status != check_status::ok && !row.fix.empty())
      std::cout << fmt::format("{:<19}fix: {}\n", "", row.fix);
  }
  std::cout << fmt::format("{} error(s), {} warning(s)\n", errors, warnings);
}

void print_json(const std::vector<check_row>& rows, size_t errors) {
  json checks = json::array();
  for (auto& row : rows)
    checks.push_back({{"check", row.check},
                      {"status", to_string(row.status)},
                      {"detail", row.detail},
                      {"fix", row.fix}});
  std::cout << json{{"ok", errors == 0}, {"checks", checks}}.dump(2) << std::endl;
}

/// Checks the pi CLI, node, the project config, the agents' models, the
/// state root, git for worktree mode and the pi mock, and prints one row per
/// finding (`{"ok": …, "checks": [{check, status, detail, fix}…]}` with
/// `json`). Writes nothing. Returns 0 when no row is an error, 1 otherwise;
/// throws input_error when `cwd` is not a directory.
int cmd_doctor(const std::string& cwd, bool json_output) {
  auto env = process_env();
  project_context ctx;
  ctx.crew_root = crew_root_for(cwd); // input_error for a bad --cwd
  ctx.project_root = ctx.crew_root.parent_path();
  std::vector<check_row> rows;

  bool config_loaded = false, resources_known = false;
  try {
    ctx = load_project(cwd, {});
    config_loaded = resources_known = true;
    rows.push_back(config_ok_row(ctx));
  } catch (const std::exception& e) {
    rows.push_back({"config", check_status::error, e.what(),
                    "correct what the message names (file, key or line); "
                    "`crew validate` re-checks it"});
    try { // the agents without the config's overrides, if they load
      ctx.resources = discover_resources(ctx.crew_root, user_config_root());
      resources_known = true;
    } catch (const std::exception&) {
      // already reported in the config row
    }
  }
  if (resources_known)
    check_agents(ctx, rows);

  auto need = pi_needed(ctx, config_loaded, resources_known, env);
  rows.push_back(check_pi(env, need));
  rows.push_back(check_node(env, need));
  rows.push_back(check_state_root(ctx.crew_root));
  if (auto row = check_worktree(ctx, config_loaded, resources_known, env))
    rows.push_back(std::move(*row));
  if (auto mode = mock_mode(env))
    rows.push_back({"mock", check_status::warn,
                    fmt::format("PI_TEAMS_MOCK_CHILD_PI={}: pi is mocked, workers "
                                "start no pi and return canned output",
                                *mode),
                    "unset PI_TEAMS_MOCK_CHILD_PI to run the real pi"});

  size_t errors = 0, warnings = 0;
  for (auto& row : rows) {
    errors += row.status == check_status::error ? 1 : 0;
    warnings += row.status == check_status::warn ? 1 : 0;
  }
  if (json_output)
    print_json(rows, errors);
  else
    print_text(rows, errors, warnings);
  return errors == 0 ? 0 : 1;
}

} // namespace

void add_doctor_command(CLI::App& app, command_table& commands) {
  auto o = std::make_shared<common_opts>();
  auto doctor = app.add_subcommand("doctor", "check pi, node, config, agents, state root and git (exit 1 on an error)");
  add_common(doctor, *o);
  commands.add(doctor, [o] { return cmd_doctor(o->cwd, o->json); });
}

} // namespace crew::cli
