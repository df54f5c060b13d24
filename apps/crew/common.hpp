#pragma once

// What the commands of `crew` share: --cwd and --json, the run id argument,
// config overrides, running a run in the foreground under signals, the table that runs the parsed
// subcommand, and starting a background crew.

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "crew/crew.hpp"

namespace crew::cli {

/// The options every command takes.
struct common_opts {
  std::string cwd = ".";
  bool json = false;
};

/// The options of a command about one run: the common ones and its id.
struct run_opts : common_opts {
  std::string run_id;
};

/// Adds --cwd and --json to `cmd`.
void add_common(CLI::App* cmd, common_opts& o);

/// Adds --cwd, --json and the required `run` argument to `cmd`.
void add_run_opts(CLI::App* cmd, run_opts& o);

/// Adds the repeatable `--set key=value` config override to `cmd`.
void add_overrides(CLI::App* cmd, std::vector<std::string>& sets);

/// Makes a closed stdout or stderr (`crew run | head`, a closed terminal) a
/// failed write instead of a SIGPIPE that kills crew mid-run: set once, for
/// every command, before any output. Workers get SIGPIPE back (their spawn
/// resets every signal to its default).
void ignore_sigpipe();

/// Set by SIGINT, SIGTERM and SIGHUP once `execute_in_foreground` installed
/// its handlers.
extern std::atomic<bool> interrupted;

/// Executes a prepared run in this process until it ends (`crew run`,
/// `crew resume`, `crew recover --apply`). SIGINT, SIGTERM and SIGHUP (Ctrl-C,
/// kill, a closed terminal) cancel it cleanly: the workers are stopped and
/// the run ends `cancelled` in its log, rather than crew dying and leaving
/// the run interrupted with its workers orphaned. `on_progress` sees every
/// progress report.
crew::run_progress
execute_in_foreground(const crew::node_options& node, crew::run_setup_ptr setup,
                      const std::function<void(const crew::run_progress&)>&
                        on_progress = {});

/// The signal that asked a foreground run to stop; 0 while none has.
int stop_signal();

/// The exit code of a run `execute_in_foreground` ran: 0 when it completed,
/// 128 + N when signal N cancelled it (130 Ctrl-C, 129 SIGHUP, 143 SIGTERM),
/// 1 otherwise.
int exit_code_of(const crew::run_progress& final);

/// The subcommands of `crew`, each with what runs it.
class command_table {
public:
  /// Registers `run` as what `cmd` does.
  void add(CLI::App* cmd, std::function<int()> run);

  /// Runs the subcommand that was parsed and returns its exit code (0 when
  /// none was).
  int run_parsed() const;

private:
  std::vector<std::pair<CLI::App*, std::function<int()>>> commands_;
};

/// The task counts of `p` that are not zero, by state.
nlohmann::json counts_json(const crew::run_progress& p);

/// Starts `crew <args…>` as a detached background process (own session,
/// stdin /dev/null, output appended to `log`); returns its pid.
int spawn_detached(std::vector<std::string> args, const std::string& log);

} // namespace crew::cli
