#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crew {

/// Reads one environment variable; nullopt when it is unset. Tests pass a
/// map-backed lookup instead of the process environment.
using env_lookup =
  std::function<std::optional<std::string>(std::string_view name)>;

/// Looks variables up in the environment of this process.
env_lookup process_env();

// -- the pi binary ------------------------------------------------------------

/// How to start pi: the argv prefix that pi's own arguments follow.
struct pi_command {
  /// `{"/usr/bin/pi"}`, or `{"/usr/bin/node", "/x/cli.js"}` for a script.
  std::vector<std::string> argv;
  /// Why pi cannot be started (not found, not executable); empty if usable.
  std::string problem;

  bool usable() const noexcept {
    return problem.empty() && !argv.empty();
  }
};

/// Resolves the pi CLI: `PI_TEAMS_PI_BIN` when set (a `.js`, `.mjs` or
/// `.cjs` script runs with `node` from `PATH`), else `pi` on `PATH`. Unlike
/// pi-crew, a `PI_TEAMS_PI_BIN` that does not exist is reported as a problem
/// instead of silently falling back to `pi`.
pi_command pi_binary(const env_lookup& env);

/// Finds an executable regular file `name` in the `:`-separated `path` (a
/// `name` containing `/` is checked as is); empty if there is none.
std::string find_on_path(std::string_view name, std::string_view path);

// -- arguments and environment ------------------------------------------------

/// `--mode json` runs one prompt per process; `--mode rpc` keeps a warm
/// process that takes prompts as JSON lines on stdin.
enum class pi_output_mode : uint8_t { json = 1, rpc };

/// What `pi_args` turns into command-line flags.
struct pi_arg_options {
  pi_output_mode mode = pi_output_mode::json;
  /// The candidate model, else the agent's; empty lets pi pick its default.
  std::string model;
  /// Thinking level appended to the model (see `with_thinking`).
  std::string thinking;
  /// Tool allow-list for `--tools`; empty keeps pi's default tools.
  std::vector<std::string> tools;
  /// Declared extensions: if set (even empty), pi loads only these.
  std::optional<std::vector<std::string>> extensions;
  bool inherit_skills = false;         ///< false adds `--no-skills`
  bool inherit_project_context = true; ///< false adds `--no-context-files`
  /// Path of a private (0600) file the caller wrote the system prompt to;
  /// empty adds no system prompt.
  std::string system_prompt_file;
  /// Replace pi's system prompt (`--system-prompt`) instead of appending to
  /// it (`--append-system-prompt`).
  bool replace_system_prompt = false;
};

/// Builds pi's arguments: `--mode json -p --no-session` (or `--mode rpc
/// --no-session`), `--model`, `--tools`, extensions, `--no-skills`,
/// `--no-context-files` and the system prompt file. There is deliberately no
/// prompt argument: the caller writes the prompt to stdin and closes it. pi
/// parses an argument starting with `-` as a flag and one starting with `@`
/// as a file to include, so an arbitrary prompt is only safe on stdin.
std::vector<std::string> pi_args(const pi_arg_options& options);

/// The nesting depth of crew workers, read from the environment.
struct depth_guard {
  int depth = 0;     ///< depth of this process; 0 outside any worker
  int max_depth = 2; ///< workers may be started while depth < max_depth

  bool blocked() const noexcept {
    return depth >= max_depth;
  }

  /// `pi-crew depth guard blocked child worker: depth D >= max M`, or empty
  /// when not blocked.
  std::string error() const;
};

/// Reads the depth guard: depth from `PI_CREW_DEPTH`, else `PI_TEAMS_DEPTH`,
/// else 0; max from `PI_CREW_MAX_DEPTH`, else `PI_TEAMS_MAX_DEPTH` (an
/// integer >= 0), else `config_max_depth` (`limits.maxTaskDepth`), else 2.
/// Values that are not integers count as unset.
depth_guard check_depth(const env_lookup& env,
                        std::optional<uint32_t> config_max_depth);

/// pi-crew's `finalDrainMs`: how long pi may take to exit after its final
/// answer before it is terminated (the answer stands).
constexpr uint64_t default_final_drain_ms = 5000;

/// The final drain in ms: `CREW_PI_FINAL_DRAIN_MS` (an integer >= 0; 0
/// disables the drain) when set and valid, else `default_final_drain_ms`.
/// pi-crew has no variable for it; this one exists for tests and for
/// measuring pi builds that are slow to exit.
uint64_t final_drain_ms(const env_lookup& env);

/// The `KEY=VALUE` additions to a worker's environment: `PI_CREW_DEPTH`
/// (parent_depth + 1), `PI_CREW_MAX_DEPTH`, `PI_CREW_ROLE`,
/// `PI_CREW_INHERIT_PROJECT_CONTEXT` and `PI_CREW_INHERIT_SKILLS` (`1`/`0`),
/// each also as its `PI_TEAMS_*` alias.
std::vector<std::string> pi_env(int parent_depth, int max_depth,
                                std::string_view role,
                                bool inherit_project_context,
                                bool inherit_skills);

// -- mock modes ---------------------------------------------------------------

/// What a mocked pi run produced.
struct mock_result {
  int exit_code = 0;
  std::string stdout_text;
  std::string stderr_text;
};

/// Fakes a pi run for `PI_TEAMS_MOCK_CHILD_PI=<mode>` (inventory §5.10):
/// `success` prints plain text, `json-success` prints two JSON events (text
/// and usage), `adaptive-plan` does the same but answers with an adaptive
/// plan when the prompt contains `ADAPTIVE_PLAN_JSON_START`,
/// `retryable-failure` fails with a rate-limit error, any other value fails
/// with `mock failure: <mode>`. Returns nullopt for an empty mode (no mock).
/// The output is meant to be fed through `pi_stream` like a real run's.
std::optional<mock_result> pi_mock(std::string_view mode,
                                   std::string_view agent,
                                   std::string_view prompt);

} // namespace crew
