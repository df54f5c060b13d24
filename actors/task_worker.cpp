#include "actors/task_worker.hpp"

#include <chrono>
#include <filesystem>
#include <optional>

#include <caf/blocking_actor.hpp>

#include "runtime/workers/pi/pi_rpc.hpp"
#include "runtime/workers/pi/pi_worker.hpp"
#include "runtime/workers/process.hpp"
#include "store/atomic_file.hpp"
#include "store/utf8.hpp"

namespace crew {

namespace {

attempt_result scaffold(const task_attempt& job) {
  attempt_result res;
  res.index = job.index;
  res.attempt = job.attempt;
  std::string body = "# Scaffold result for " + job.task_id
                     + "\n\nNo worker was launched (runtime.mode scaffold). "
                       "The prompt is in "
                     + job.prompt_path + ".\n";
  write_file_atomic(job.result_path, body, false);
  res.ok = true;
  res.exit_code = 0;
  return res;
}

attempt_result run_command(caf::blocking_actor* self, const run_actor& owner,
                           const task_attempt& job) {
  process_spec spec;
  spec.command_line = job.command_line;
  spec.cwd = job.cwd;
  spec.env = job.env;
  spec.stdin_data = job.prompt;
  spec.stdout_path = job.result_path;
  spec.stderr_path = job.log_path;
  spec.timeout_ms = job.timeout_ms;
  process_callbacks cb;
  cb.on_spawn = [&](int pid) {
    self->send(owner, started_atom_v,
               attempt_started{job.index, job.attempt, pid});
  };
  // Heartbeats from activity: every output chunk, at most every 250 ms.
  cb.on_output = [&] { self->send(owner, beat_atom_v, job.index, job.attempt); };
  auto out = run_process(spec, cb);
  attempt_result res;
  res.index = job.index;
  res.attempt = job.attempt;
  res.ok = out.success();
  res.exit_code = out.signal == 0 ? out.exit_code : -1;
  res.signal = out.signal;
  res.duration_us = out.duration_ms * 1000;
  if (!res.ok) {
    res.error = out.error;
    if (!out.stderr_tail.empty()) {
      auto tail = out.stderr_tail;
      while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r'))
        tail.pop_back();
      if (auto nl = tail.rfind('\n'); nl != std::string::npos)
        tail = tail.substr(nl + 1);
      if (!tail.empty())
        res.error += ": " + tail;
    }
  }
  return res;
}

attempt_result run_pi(caf::blocking_actor* self, const run_actor& owner,
                      const task_attempt& job, pi_rpc_pool* pool) {
  pi_job pj;
  pj.run_id = job.run_id;
  pj.task_id = job.task_id;
  pj.agent = job.agent;
  pj.role = job.role;
  pj.cwd = job.cwd;
  pj.prompt = job.prompt;
  pj.system_prompt = job.system_prompt;
  pj.replace_system_prompt = job.replace_system_prompt;
  pj.models = job.models;
  pj.thinking = job.thinking;
  pj.tools = job.tools;
  pj.result_path = job.result_path;
  pj.transcript_path = job.transcript_path;
  pj.log_path = job.log_path;
  pj.agent_dir = job.agent_dir;
  pj.timeout_ms = job.timeout_ms;
  pj.response_timeout_ms = job.response_timeout_ms;
  pj.env = job.env;
  if (job.max_depth > 0)
    pj.config_max_depth = job.max_depth;
  pi_callbacks cb;
  cb.on_spawn = [&](int pid) {
    self->send(owner, started_atom_v,
               attempt_started{job.index, job.attempt, pid});
  };
  // Heartbeats from activity, at most every 250 ms.
  auto last_beat = std::chrono::steady_clock::time_point{};
  cb.on_activity = [&] {
    auto now = std::chrono::steady_clock::now();
    if (now - last_beat < std::chrono::milliseconds{250})
      return;
    last_beat = now;
    self->send(owner, beat_atom_v, job.index, job.attempt);
  };
  auto out = pool ? pool->run(pj, cb) : run_pi_attempt(pj, cb);
  attempt_result res;
  res.index = job.index;
  res.attempt = job.attempt;
  res.ok = out.ok;
  res.exit_code = out.signal == 0 ? out.exit_code : -1;
  res.signal = out.signal;
  res.error = out.error;
  res.duration_us = out.duration_ms * 1000;
  res.details = out.details_json();
  return res;
}

} // namespace

void task_worker(caf::blocking_actor* self, run_actor owner, task_attempt job,
                 run_setup_ptr setup) {
  attempt_result res;
  res.index = job.index;
  res.attempt = job.attempt;
  try {
    std::filesystem::create_directories(
      std::filesystem::path{job.result_path}.parent_path());
    std::filesystem::create_directories(
      std::filesystem::path{job.log_path}.parent_path());
    write_file_atomic(job.prompt_path, job.prompt + "\n", false);
    std::optional<task_worktree> wt;
    if (setup->worktrees && job.backend != "scaffold") {
      wt = prepare_task_worktree(setup->manifest.cwd, setup->paths.crew_root,
                                 job.run_id, job.task_id, setup->worktree,
                                 job.agent);
      job.cwd = wt->agent_cwd.string();
    }
    if (job.backend == "scaffold")
      res = scaffold(job);
    else if (job.backend == "pi")
      res = run_pi(self, owner, job, setup->pi_pool.get());
    else
      res = run_command(self, owner, job);
    if (wt) {
      // The diff documents the attempt; failing to record it does not
      // change its outcome.
      try {
        record_task_diff(*wt, setup->paths.artifacts_dir, job.task_id);
      } catch (const std::exception& e) {
        append_file(job.log_path,
                    std::string{"crew: diff not recorded: "} + e.what() + "\n",
                    false);
      }
    }
  } catch (const std::exception& e) {
    res.ok = false;
    res.error = std::string{"worker error: "} + e.what();
  }
  // Worker text (stderr, pi's messages, paths in exceptions) goes into events.
  res.error = valid_utf8(res.error);
  self->send(owner, result_atom_v, std::vector<attempt_result>{std::move(res)});
}

} // namespace crew
