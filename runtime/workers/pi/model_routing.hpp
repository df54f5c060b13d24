#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace crew {

// -- errors and thinking levels -----------------------------------------------

/// Whether a failed attempt's error suggests that another model may succeed:
/// rate limits, quota, auth, unavailable or unknown models, overload and
/// network trouble (the case-insensitive patterns of inventory §5.3).
bool is_retryable_model_error(std::string_view error);

/// Whether `level` is a pi thinking level: off, minimal, low, medium, high or
/// xhigh.
bool is_thinking_level(std::string_view level) noexcept;

/// Returns `model` without a trailing `:<thinking level>`. Other suffixes stay
/// (`ollama/llama3:8b` is a model id, not a thinking level).
std::string_view strip_thinking(std::string_view model) noexcept;

/// Returns `model:<thinking>` as passed to `pi --model` (inventory §5.4), or
/// `model` unchanged when either is empty, thinking is `off`, or `model`
/// already ends with a thinking level.
std::string with_thinking(std::string_view model, std::string_view thinking);

// -- candidates ---------------------------------------------------------------

/// The models configured for one task.
struct model_request {
  std::string override_model; ///< the run's explicit model; empty if none
  std::string step_model;
  std::string agent_model;
  std::vector<std::string> fallback_models; ///< the agent's `fallbackModels`
};

/// The models to try for a task, best first.
struct model_plan {
  std::string requested; ///< first non-empty of override, step and agent
  /// Override, step, agent, then fallbacks: trimmed, without empties and
  /// without duplicates (compared without a `:<thinking>` suffix; the first
  /// spelling wins). Empty: run pi with its default model.
  std::vector<std::string> candidates;
  std::string reason; ///< why these candidates, for `modelRouting.reason`
};

/// Builds the candidate list. No model registry is consulted, so every
/// configured model is trusted to exist.
model_plan model_candidates(const model_request& request);

// -- attempts and routing -----------------------------------------------------

/// One run of a task with one model.
struct model_attempt {
  std::string model; ///< empty means pi's default model
  bool success = false;
  int exit_code = 0;
  std::string error; ///< empty on success
};

/// Whether the attempt loop moves on to the next candidate: the attempt
/// failed with a retryable error.
bool should_try_next_model(const model_attempt& attempt);

/// Where the attempts of a task ended (`task.modelRouting`).
struct model_routing {
  std::string requested;
  std::string resolved; ///< model of the used attempt ("default" if none)
  std::vector<std::string> candidates;
  std::string reason;
  std::string fallback_reason; ///< error of the attempt before the used one
  int used_attempt = -1;       ///< first success, else the last; -1 if none
};

/// Combines a plan with the attempts made for it.
model_routing route_result(const model_plan& plan,
                           const std::vector<model_attempt>& attempts);

/// Renders `task.modelAttempts`: a JSON array of
/// `{model, success, exitCode, error?}`, `model` being "default" when empty.
std::string model_attempts_json(const std::vector<model_attempt>& attempts);

/// Renders `task.modelRouting`: a JSON object `{requested?, resolved?,
/// fallbackChain (the candidates, as pi-crew names them), reason?, fallbackReason?, usedAttempt?}` (empty fields left
/// out).
std::string model_routing_json(const model_routing& routing);

} // namespace crew
