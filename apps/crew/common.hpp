#pragma once

// What the commands of `crew` share: --cwd and --json, the run id argument,
// config overrides, the interrupt flag, the table that runs the parsed
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

/// Set by SIGINT and SIGTERM once a foreground run installed `on_signal`.
extern std::atomic<bool> interrupted;

/// The handler of SIGINT and SIGTERM during a foreground run.
void on_signal(int);

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
