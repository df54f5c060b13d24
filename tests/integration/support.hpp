#pragma once

// Helpers for the CLI integration tests: a throw-away project, running the
// real `crew` binary, reading its on-disk state.

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <spawn.h>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "runtime/workers/process.hpp"

#ifndef CREW_BINARY
#  error "CREW_BINARY must name the crew executable"
#endif

extern char** environ;

namespace crew::it {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

inline std::string read_text(const fs::path& p) {
  std::ifstream in{p, std::ios::binary};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_text(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream out{p, std::ios::binary | std::ios::trunc};
  out << text;
}

inline void append_text(const fs::path& p, const std::string& text) {
  std::ofstream out{p, std::ios::binary | std::ios::app};
  out << text;
}

/// Splits into lines, dropping a final empty one.
inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : text) {
    if (c == '\n') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty())
    out.push_back(cur);
  return out;
}

inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

/// Polls `pred` every 20 ms until it holds or `timeout` passes.
inline bool wait_until(const std::function<bool()>& pred,
                       std::chrono::milliseconds timeout = 5000ms) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred())
      return true;
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(20ms);
  }
}

/// Reads a pid written by a worker (`echo $$ > file`); 0 if not there yet.
inline int read_pid(const fs::path& p) {
  std::error_code ec;
  if (!fs::exists(p, ec))
    return 0;
  auto text = read_text(p);
  if (text.empty() || text.back() != '\n')
    return 0; // still being written
  try {
    return std::stoi(text);
  } catch (...) {
    return 0;
  }
}

struct cli_result {
  int code = -1;
  std::string out;
  std::string err;
  std::string signal_text; ///< non-empty if crew itself died abnormally

  std::vector<std::string> out_lines() const { return lines_of(out); }

  /// The last stdout line, parsed as JSON.
  json last_json() const {
    auto ls = out_lines();
    REQUIRE_MESSAGE(!ls.empty(), "no stdout; stderr: " << err);
    return json::parse(ls.back());
  }

  /// All of stdout parsed as one JSON document.
  json doc() const {
    INFO("stdout: " << out << "\nstderr: " << err);
    return json::parse(out);
  }
};

inline std::ostream& operator<<(std::ostream& os, const cli_result& r) {
  return os << "exit " << r.code << r.signal_text << "\n--- stdout:\n"
            << r.out << "\n--- stderr:\n"
            << r.err;
}

/// A fresh project `<tmp>/proj` (its own root thanks to `.crew/`) plus a
/// private HOME `<tmp>/home`; everything is removed on destruction, and every
/// pid handed to `track` is SIGKILLed if it is still alive.
struct project {
  fs::path base;
  fs::path root;
  fs::path home;
  std::vector<int> tracked;

  project() {
    auto tmpl = (fs::temp_directory_path() / "crew-it-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr)
      throw std::runtime_error("mkdtemp failed");
    base = tmpl;
    root = base / "proj";
    home = base / "home";
    fs::create_directories(root / ".crew");
    fs::create_directories(home);
  }

  ~project() {
    for (auto pid : tracked)
      if (pid > 0 && process_alive(pid))
        ::kill(pid, SIGKILL);
    std::error_code ec;
    fs::remove_all(base, ec);
  }

  project(const project&) = delete;
  project& operator=(const project&) = delete;

  void track(int pid) { tracked.push_back(pid); }

  fs::path path(const std::string& rel) const { return root / rel; }

  void write(const std::string& rel, const std::string& text) const {
    write_text(root / rel, text);
  }

  /// An agent backed by a shell command, in `.crew/agents/<name>.md`.
  void agent(const std::string& name, const std::string& command,
             const std::string& extra = "") const {
    write(".crew/agents/" + name + ".md",
          "---\nname: " + name + "\ndescription: integration test agent\ncommand: "
            + command + "\n" + extra + "---\n\nTest agent.\n");
  }

  /// A team whose roles are `role=agent` pairs, default workflow `workflow`.
  void team(const std::string& name,
            const std::vector<std::pair<std::string, std::string>>& roles,
            const std::string& workflow, int max_concurrency = 0) const {
    std::string text = "---\nname: " + name + "\ndescription: integration test team\n"
                       + "defaultWorkflow: " + workflow + "\n";
    if (max_concurrency > 0)
      text += "maxConcurrency: " + std::to_string(max_concurrency) + "\n";
    text += "---\n\nRoles:\n\n";
    for (auto& [role, agent] : roles)
      text += "- " + role + ": agent=" + agent + " test role\n";
    write(".crew/teams/" + name + ".team.md", text);
  }

  struct step {
    std::string id;
    std::string role;
    std::string depends_on; // CSV
  };

  void workflow(const std::string& name, const std::vector<step>& steps) const {
    std::string text = "---\nname: " + name
                       + "\ndescription: integration test workflow\n---\n";
    for (auto& s : steps) {
      text += "\n## " + s.id + "\nrole: " + s.role + "\n";
      if (!s.depends_on.empty())
        text += "dependsOn: " + s.depends_on + "\n";
      text += "\nDo " + s.id + " for {goal}\n";
    }
    write(".crew/workflows/" + name + ".workflow.md", text);
  }

  /// Runs `sh -c command` in the project root and returns its stdout; fails
  /// the test unless it exits 0.
  std::string sh(const std::string& command) const {
    process_spec spec;
    spec.command_line = command;
    spec.cwd = root.string();
    spec.env = env();
    spec.timeout_ms = 30000;
    auto out_file = base / "sh.out";
    spec.stdout_path = out_file.string();
    auto outcome = run_process(spec);
    REQUIRE_MESSAGE(outcome.success(), command << ": " << outcome.error << " "
                                               << outcome.stderr_tail);
    auto out = read_text(out_file);
    std::error_code ec;
    fs::remove(out_file, ec);
    return out;
  }

  std::vector<std::string> env() const {
    return {"HOME=" + home.string(), "PI_TEAMS_HOME=" + home.string(),
            "PI_CREW_EXECUTE_WORKERS=1", "PI_TEAMS_EXECUTE_WORKERS=1"};
  }

  /// Runs `crew <args...> --cwd <root>` to completion.
  cli_result crew(const std::vector<std::string>& args,
                  uint64_t timeout_ms = 30000,
                  const std::vector<std::string>& extra_env = {}) const {
    std::string cmd = shell_quote(CREW_BINARY);
    for (auto& a : args)
      cmd += " " + shell_quote(a);
    cmd += " --cwd " + shell_quote(root.string());
    static std::atomic<int> counter{0};
    auto n = std::to_string(++counter); // calls may overlap (threads)
    auto out_file = base / ("cli-" + n + ".out");
    auto err_file = base / ("cli-" + n + ".err");
    process_spec spec;
    spec.command_line = "exec " + cmd;
    spec.cwd = base.string();
    spec.env = env();
    spec.env.insert(spec.env.end(), extra_env.begin(), extra_env.end());
    spec.stdout_path = out_file.string();
    spec.stderr_path = err_file.string();
    spec.timeout_ms = timeout_ms;
    spec.kill_grace_ms = 500;
    auto outcome = run_process(spec);
    cli_result r;
    r.code = outcome.exit_code;
    r.out = read_text(out_file);
    r.err = read_text(err_file);
    if (!outcome.spawned || outcome.signal != 0 || outcome.timed_out)
      r.signal_text = " (" + outcome.error + ")";
    std::error_code ec;
    fs::remove(out_file, ec);
    fs::remove(err_file, ec);
    return r;
  }

  fs::path run_dir(const std::string& run_id) const {
    return root / ".crew" / "state" / "runs" / run_id;
  }

  fs::path artifacts(const std::string& run_id) const {
    return root / ".crew" / "artifacts" / run_id;
  }

  fs::path events_file(const std::string& run_id) const {
    return run_dir(run_id) / "events.jsonl";
  }

  /// The parsed events of a run (every complete line).
  std::vector<json> events(const std::string& run_id) const {
    std::vector<json> out;
    for (auto& line : lines_of(read_text(events_file(run_id))))
      out.push_back(json::parse(line));
    return out;
  }

  /// `crew status RUN --json`, parsed; fails the test if it does not exit 0.
  json status(const std::string& run_id) const {
    auto r = crew({"status", run_id, "--json"});
    REQUIRE_MESSAGE(r.code == 0, r);
    return r.doc();
  }

  /// Whether the only run's log already records its worker process (a
  /// `task.worker` event): from then on a crash of crew cannot orphan it.
  bool worker_recorded() const {
    auto runs = root / ".crew" / "state" / "runs";
    std::error_code ec;
    for (auto& e : fs::directory_iterator(runs, ec))
      if (read_text(e.path() / "events.jsonl").find("\"task.worker\"")
          != std::string::npos)
        return true;
    return false;
  }

  /// A recursive listing (path, type, size, mtime) of the project directory.
  std::string snapshot() const {
    std::vector<std::string> entries;
    for (auto it = fs::recursive_directory_iterator(root);
         it != fs::recursive_directory_iterator(); ++it) {
      struct stat st{};
      ::lstat(it->path().c_str(), &st);
      entries.push_back(fs::relative(it->path(), root).string() + " "
                        + std::to_string(st.st_mode) + " "
                        + std::to_string(st.st_size) + " "
                        + std::to_string(st.st_mtim.tv_sec) + "."
                        + std::to_string(st.st_mtim.tv_nsec));
    }
    std::sort(entries.begin(), entries.end());
    std::string out;
    for (auto& e : entries)
      out += e + "\n";
    return out;
  }
};

/// The task object whose `stepId` (or task `id`) is `id`, from
/// `status --json`'s "tasks" array.
inline json task_of(const json& status, const std::string& id) {
  for (auto& t : status.at("tasks"))
    if (t.value("stepId", "") == id || t.value("id", "") == id)
      return t;
  FAIL("no task '" << id << "' in " << status.dump(2));
  return {};
}

/// Starts `argv` with posix_spawn in a process group of its own, with a
/// clean signal state, stdin /dev/null and stdout/stderr to files; `env`
/// (nullptr: this process' environment). With `output_fd` >= 0 stdout and
/// stderr both go to that descriptor instead (a pipe: `crew … 2>&1 | head`).
/// Returns the pid or throws.
inline pid_t spawn_logged(std::vector<std::string> argv_s,
                          std::vector<std::string>* env, const fs::path& out_file,
                          const fs::path& err_file, int output_fd = -1) {
  std::vector<char*> argv;
  for (auto& a : argv_s)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  if (env != nullptr) {
    for (auto& e : *env)
      envp.push_back(e.data());
    envp.push_back(nullptr);
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (output_fd >= 0) {
    posix_spawn_file_actions_adddup2(&fa, output_fd, 1);
    posix_spawn_file_actions_adddup2(&fa, output_fd, 2);
  } else {
    posix_spawn_file_actions_addopen(&fa, 1, out_file.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_file.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
  }
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t dflt;
  sigemptyset(&dflt);
  sigaddset(&dflt, SIGINT);
  sigaddset(&dflt, SIGTERM);
  sigaddset(&dflt, SIGHUP);  // a test runner under nohup ignores it
  sigaddset(&dflt, SIGPIPE); // and some ignore this one
  posix_spawnattr_setsigdefault(&attr, &dflt);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK
                                    | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  auto rc = ::posix_spawn(&pid, argv[0], &fa, &attr, argv.data(),
                          env != nullptr ? envp.data() : environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0)
    throw std::runtime_error("posix_spawn " + argv_s[0] + " failed");
  return pid;
}

/// A crew process launched with posix_spawn (own process group), so a test
/// can signal it while it runs. Its output goes to files, or with
/// `output_fd` >= 0 all of it to that descriptor (see `spawn_logged`).
struct spawned_crew {
  pid_t pid = -1;
  fs::path out_file;
  fs::path err_file;
  bool reaped = false;
  int wait_status = 0;

  spawned_crew(const project& p, const std::vector<std::string>& args,
               int output_fd = -1) {
    out_file = p.base / "spawned.out";
    err_file = p.base / "spawned.err";
    std::vector<std::string> argv_s{CREW_BINARY};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    argv_s.push_back("--cwd");
    argv_s.push_back(p.root.string());
    // environ plus the project's overrides
    std::vector<std::string> env_s;
    auto overrides = p.env();
    for (char** e = environ; *e != nullptr; ++e) {
      std::string kv{*e};
      auto key = kv.substr(0, kv.find('=') + 1);
      bool replaced = false;
      for (auto& o : overrides)
        replaced = replaced || o.rfind(key, 0) == 0;
      if (!replaced)
        env_s.push_back(kv);
    }
    env_s.insert(env_s.end(), overrides.begin(), overrides.end());
    pid = spawn_logged(argv_s, &env_s, out_file, err_file, output_fd);
  }

  ~spawned_crew() {
    if (!reaped && pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &wait_status, 0);
    }
  }

  spawned_crew(const spawned_crew&) = delete;
  spawned_crew& operator=(const spawned_crew&) = delete;

  /// Waits for the exit; returns the exit code, or -1 on timeout / signal.
  int wait(std::chrono::milliseconds timeout) {
    bool done = wait_until(
      [&] {
        if (reaped)
          return true;
        auto r = ::waitpid(pid, &wait_status, WNOHANG);
        if (r == pid)
          reaped = true;
        return reaped;
      },
      timeout);
    if (!done || !WIFEXITED(wait_status))
      return -1;
    return WEXITSTATUS(wait_status);
  }

  std::string out() const { return read_text(out_file); }
  std::string err() const { return read_text(err_file); }
};

} // namespace crew::it
