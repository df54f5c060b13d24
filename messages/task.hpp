#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp> // inspect() type names

namespace crew {

/// One attempt of one task, handed to a process-backed task_worker.
struct task_attempt {
  std::string run_id;
  std::string task_id;
  uint32_t index = 0;   ///< position of the task in the run's plan
  uint32_t attempt = 0; ///< 1-based
  std::string backend;  ///< "command" or "scaffold"
  std::string command_line;
  std::string cwd;
  std::vector<std::string> env; ///< extra KEY=VALUE entries
  std::string prompt;
  std::string prompt_path; ///< artifacts/<run>/prompts/<task>.md
  std::string result_path; ///< artifacts/<run>/results/<task>.txt
  std::string log_path;    ///< artifacts/<run>/logs/<task>.log (stderr)
  uint64_t timeout_ms = 0; ///< 0 = none
  // -- backend "pi" (agents without `command:`) --------------------------------
  std::string agent;
  std::string role;
  std::vector<std::string> models; ///< candidates in order; empty: pi's default
  std::string thinking;
  std::vector<std::string> tools;
  std::string system_prompt;
  bool replace_system_prompt = false; ///< `systemPromptMode: replace`
  uint64_t response_timeout_ms = 0;   ///< no output for this long: kill
  std::string transcript_path; ///< artifacts/<run>/transcripts/<task>.jsonl
  std::string agent_dir;       ///< state/runs/<run>/agents/<task>
  uint32_t max_depth = 0;      ///< limits.maxTaskDepth, 0: unset
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, task_attempt& x) {
  return f(caf::meta::type_name("crew::task_attempt"), x.run_id, x.task_id,
           x.index, x.attempt, x.backend, x.command_line, x.cwd, x.env,
           x.prompt, x.prompt_path, x.result_path, x.log_path, x.timeout_ms,
           x.agent, x.role, x.models, x.thinking, x.tools, x.system_prompt,
           x.replace_system_prompt, x.response_timeout_ms, x.transcript_path,
           x.agent_dir, x.max_depth);
}

/// A simulated attempt: the sim pool needs nothing but the coordinates.
struct sim_job {
  uint32_t index = 0;
  uint32_t attempt = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sim_job& x) {
  return f(caf::meta::type_name("crew::sim_job"), x.index, x.attempt);
}

/// A worker process started: lets the run actor kill its process group.
struct attempt_started {
  uint32_t index = 0;
  uint32_t attempt = 0;
  int32_t pid = 0; ///< also the process group id
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, attempt_started& x) {
  return f(caf::meta::type_name("crew::attempt_started"), x.index, x.attempt,
           x.pid);
}

/// The end of one attempt, whatever the backend.
struct attempt_result {
  uint32_t index = 0;
  uint32_t attempt = 0;
  bool ok = false;
  int32_t exit_code = -1; ///< -1 when the process did not exit normally
  int32_t signal = 0;     ///< terminating signal, 0 if none
  std::string error;      ///< empty on success
  uint64_t duration_us = 0;
  /// A JSON object the worker reports about the attempt (pi: model,
  /// modelAttempts, modelRouting, usage, jsonEvents); its members join the
  /// data of the attempt's event. Empty: nothing to report.
  std::string details;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, attempt_result& x) {
  return f(caf::meta::type_name("crew::attempt_result"), x.index, x.attempt,
           x.ok, x.exit_code, x.signal, x.error, x.duration_us, x.details);
}

/// Counts of a run's tasks by status, for progress lines and the final reply.
struct run_progress {
  std::string run_id;
  std::string status; ///< run status name
  uint32_t total = 0;
  uint32_t queued = 0;
  uint32_t running = 0;
  uint32_t completed = 0;
  uint32_t failed = 0;
  uint32_t skipped = 0;
  uint32_t cancelled = 0;
  uint64_t events = 0;      ///< last seq written
  uint64_t durable_seq = 0; ///< last seq known durable
  bool finished = false;    ///< final status durable
  double latency_p50_us = 0; ///< ready -> durably done (load tests only)
  double latency_p99_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, run_progress& x) {
  return f(caf::meta::type_name("crew::run_progress"), x.run_id, x.status,
           x.total, x.queued, x.running, x.completed, x.failed, x.skipped,
           x.cancelled, x.events, x.durable_seq, x.finished,
           x.latency_p50_us, x.latency_p99_us);
}

} // namespace crew
