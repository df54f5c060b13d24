#include "common.hpp"

#include <csignal>
#include <cstring>
#include <spawn.h>
#include <fcntl.h>

#include <fmt/format.h>

#include "messages/errors.hpp"

extern char** environ;

namespace crew::cli {

using json = nlohmann::json;

void add_common(CLI::App* cmd, common_opts& o) {
  cmd->add_option("--cwd", o.cwd, "project directory (state lives in <root>/.crew)");
  cmd->add_flag("--json", o.json, "machine-readable output on stdout");
}

void add_run_opts(CLI::App* cmd, run_opts& o) {
  add_common(cmd, o);
  cmd->add_option("run", o.run_id, "run id")->required();
}

void add_overrides(CLI::App* cmd, std::vector<std::string>& sets) {
  cmd->add_option("--set", sets, "config override key=value (repeatable)");
}

void ignore_sigpipe() {
  std::signal(SIGPIPE, SIG_IGN);
}

std::atomic<bool> interrupted{false};

namespace {

// Written by the signal handler, as is `interrupted`: lock-free atomics only.
std::atomic<int> interrupting_signal{0};

void on_stop_signal(int sig) {
  int none = 0;
  interrupting_signal.compare_exchange_strong(none, sig);
  interrupted = true;
}

} // namespace

run_progress
execute_in_foreground(const node_options& node, run_setup_ptr setup,
                      const std::function<void(const run_progress&)>& on_progress) {
  struct sigaction sa{};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART; // output and waits go on; the run loop polls the flag
  for (int sig : {SIGINT, SIGTERM, SIGHUP})
    ::sigaction(sig, &sa, nullptr);
  crew::runtime rt{node};
  return rt.execute(std::move(setup), on_progress, &interrupted);
}

int stop_signal() {
  return interrupting_signal.load();
}

int exit_code_of(const run_progress& final) {
  if (final.status == "completed")
    return 0;
  if (final.status == "cancelled" && stop_signal() != 0)
    return 128 + stop_signal();
  return 1;
}

void command_table::add(CLI::App* cmd, std::function<int()> run) {
  commands_.emplace_back(cmd, std::move(run));
}

int command_table::run_parsed() const {
  for (auto& [cmd, run] : commands_)
    if (*cmd)
      return run();
  return 0;
}

json counts_json(const crew::run_progress& p) {
  json out = json::object();
  auto put = [&](const char* key, uint32_t n) {
    if (n > 0)
      out[key] = n;
  };
  put("completed", p.completed);
  put("failed", p.failed);
  put("skipped", p.skipped);
  put("cancelled", p.cancelled);
  put("running", p.running);
  put("queued", p.queued);
  return out;
}

int spawn_detached(std::vector<std::string> args, const std::string& log) {
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  pid_t pid = 0;
  auto rc = posix_spawn(&pid, "/proc/self/exe", &fa, &attr, argv.data(),
                        environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0)
    throw crew::io_error(fmt::format("cannot start a background crew: {}",
                                     std::strerror(rc)));
  return pid;
}

} // namespace crew::cli
