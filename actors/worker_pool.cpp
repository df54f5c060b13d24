#include "actors/worker_pool.hpp"

#include "actors/undeliverable.hpp"

#include <chrono>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <fmt/format.h>

namespace crew {

namespace {

using self_ptr = worker_pool_impl::stateful_pointer<worker_pool_state>;

int64_t steady_ns() {
  using namespace std::chrono;
  return duration_cast<nanoseconds>(steady_clock::now().time_since_epoch())
    .count();
}

attempt_result make_result(const sim_job& job, const sim_outcome& out,
                           uint64_t hang_timeout_ms) {
  attempt_result res;
  res.index = job.index;
  res.attempt = job.attempt;
  res.duration_us = out.latency_us;
  switch (out.kind) {
    case sim_kind::success:
      res.ok = true;
      res.exit_code = 0;
      break;
    case sim_kind::failure:
      res.exit_code = 1;
      res.error = "exit code 1 (simulated failure)";
      break;
    case sim_kind::hang:
      res.duration_us = hang_timeout_ms * 1000;
      res.signal = 15;
      res.error = fmt::format("timed out after {} ms (simulated hang)",
                              hang_timeout_ms);
      break;
    case sim_kind::crash:
      res.signal = 9;
      res.error = "killed by signal 9 (SIGKILL) (simulated crash)";
      break;
  }
  return res;
}

/// Arms one timer for the earliest pending result (never one per attempt).
void arm(self_ptr self) {
  auto& st = self->state;
  if (st.queue.empty())
    return;
  auto due = st.queue.top().due_ns;
  if (st.timer_due_ns != 0 && st.timer_due_ns <= due)
    return;
  st.timer_due_ns = due;
  auto delay = std::max<int64_t>(0, due - steady_ns());
  self->delayed_send(self, std::chrono::nanoseconds{delay}, due_atom_v);
}

void deliver_due(self_ptr self) {
  auto& st = self->state;
  st.timer_due_ns = 0;
  auto now = steady_ns();
  std::vector<attempt_result> out;
  while (!st.queue.empty() && st.queue.top().due_ns <= now) {
    out.push_back(st.queue.top().result);
    st.queue.pop();
  }
  if (!out.empty())
    self->send(st.owner, result_atom_v, std::move(out));
  arm(self);
}

} // namespace

worker_pool_impl::behavior_type worker_pool(self_ptr self, run_actor owner,
                                            sim_params params,
                                            uint64_t hang_timeout_ms,
                                            std::string deadletter_path) {
  self->set_default_handler(undeliverable_handler(std::move(deadletter_path)));
  self->state.owner = std::move(owner);
  self->state.params = params;
  self->state.hang_timeout_ms = hang_timeout_ms;
  return {
    [=](dispatch_atom, const std::vector<sim_job>& jobs) {
      auto& st = self->state;
      std::vector<attempt_result> now_results;
      auto now = steady_ns();
      for (auto& job : jobs) {
        auto out = sim_decide(st.params, job.index, job.attempt);
        auto res = make_result(job, out, st.hang_timeout_ms);
        if (res.duration_us == 0) {
          now_results.push_back(std::move(res));
        } else {
          auto due = now + static_cast<int64_t>(res.duration_us) * 1000;
          st.queue.push({due, std::move(res)});
        }
      }
      if (!now_results.empty())
        self->send(st.owner, result_atom_v, std::move(now_results));
      arm(self);
    },
    [=](due_atom) { deliver_due(self); },
    [=](cancel_atom) {
      // Every pending attempt ends now; the run maps them to cancelled.
      auto& st = self->state;
      std::vector<attempt_result> out;
      while (!st.queue.empty()) {
        auto res = st.queue.top().result;
        st.queue.pop();
        res.ok = false;
        res.error = "cancelled";
        out.push_back(std::move(res));
      }
      if (!out.empty())
        self->send(st.owner, result_atom_v, std::move(out));
    },
  };
}

} // namespace crew
