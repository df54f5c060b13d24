#include "runtime/workers/pi/pi_rpc.hpp"

#include <algorithm>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "runtime/workers/pi/pi_rpc_conversation.hpp"
#include "runtime/workers/pi/pi_rpc_process.hpp"

namespace crew {

namespace {

using json = nlohmann::json;
using pi_rpc::clock_type;
using std::chrono::milliseconds;

constexpr auto close_grace = milliseconds{1000}; // stdin closed -> SIGTERM
constexpr auto term_grace = milliseconds{2000};  // SIGTERM -> SIGKILL
constexpr size_t max_logged_stderr = 256 * 1024;

uint64_t ms_between(clock_type::time_point a, clock_type::time_point b) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<milliseconds>(b - a).count());
}

/// The spawn-time identity of a job's process (see `pi_rpc_pool`).
std::string key_of(const pi_attempt_request& req) {
  const auto& job = req.job;
  json key = json::array();
  key.push_back(req.command.argv);
  key.push_back(job.cwd);
  key.push_back(job.system_prompt);
  key.push_back(job.replace_system_prompt);
  key.push_back(job.tools);
  key.push_back(job.thinking);
  key.push_back(job.inherit_skills);
  key.push_back(job.inherit_project_context);
  // The model too: switching it with `set_model` would rewrite the user's
  // defaultModel in pi's settings.json. A fallback gets its own process.
  key.push_back(req.model);
  // The pi_env part of the child environment; job.env is per task.
  auto first = std::min(job.env.size(), req.child_env.size());
  key.push_back(std::vector<std::string>(
      req.child_env.begin() + static_cast<std::ptrdiff_t>(first),
      req.child_env.end()));
  return key.dump(-1, ' ', false, json::error_handler_t::replace);
}

} // namespace

// -- pi_rpc_pool --------------------------------------------------------------

pi_rpc_pool::pi_rpc_pool(size_t max_processes, env_lookup env)
    : max_(std::max<size_t>(1, max_processes)),
      env_(env ? std::move(env) : process_env()) {
  // nop
}

pi_rpc_pool::~pi_rpc_pool() {
  std::vector<worker*> all;
  for (auto& w : workers_)
    all.push_back(w.get());
  pi_rpc::stop_workers(all, close_grace, term_grace);
}

size_t pi_rpc_pool::spawned() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return spawned_;
}

size_t pi_rpc_pool::size() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return workers_.size();
}

std::unique_ptr<pi_rpc_pool::worker> pi_rpc_pool::detach(worker* w) {
  auto i = std::find_if(workers_.begin(), workers_.end(),
                        [w](const auto& x) { return x.get() == w; });
  if (i == workers_.end())
    return nullptr;
  auto owned = std::move(*i);
  workers_.erase(i);
  return owned;
}

void pi_rpc_pool::release(worker* w, bool broken) {
  if (!broken) {
    std::lock_guard<std::mutex> guard{mutex_};
    w->busy = false;
    w->last_used = clock_type::now();
  } else {
    std::unique_ptr<worker> owned;
    {
      std::lock_guard<std::mutex> guard{mutex_};
      owned = detach(w);
    }
    if (owned)
      pi_rpc::stop_workers({owned.get()}, milliseconds{0}, term_grace);
  }
  idle_.notify_all();
}

pi_rpc_pool::worker* pi_rpc_pool::acquire(const std::string& key,
                                          const pi_attempt_request& req,
                                          const pi_callbacks& cb,
                                          clock_type::time_point deadline,
                                          std::string& why, bool& fresh) {
  std::unique_lock<std::mutex> lock{mutex_};
  for (;;) {
    worker* match = nullptr;
    worker* lru = nullptr;
    for (auto& w : workers_) {
      if (w->busy)
        continue;
      if (w->key == key) {
        match = w.get();
        break;
      }
      if (lru == nullptr || w->last_used < lru->last_used)
        lru = w.get();
    }
    if (match != nullptr) {
      match->busy = true;
      lock.unlock();
      if (pi_rpc::usable(*match)) {
        fresh = false;
        return match;
      }
      req.log("[crew] rpc: idle pi process " + std::to_string(match->pid)
              + " is gone; replacing it\n");
      release(match, true);
      lock.lock();
      continue;
    }
    if (workers_.size() < max_) {
      auto owned = std::make_unique<worker>();
      auto* w = owned.get();
      w->key = key;
      w->busy = true;
      workers_.push_back(std::move(owned));
      lock.unlock();
      std::string error;
      if (pi_rpc::spawn_worker(*w, req, error)) {
        std::lock_guard<std::mutex> guard{mutex_};
        ++spawned_;
        fresh = true;
        return w;
      }
      release(w, true);
      why = "spawn failed: " + error;
      return nullptr;
    }
    if (lru != nullptr) {
      auto victim = detach(lru);
      lock.unlock();
      req.log("[crew] rpc: evicting idle pi process "
              + std::to_string(victim->pid) + " of another configuration\n");
      pi_rpc::stop_workers({victim.get()}, close_grace, term_grace);
      victim.reset();
      lock.lock();
      continue;
    }
    // Every process is busy: wait for one.
    if (cb.cancel != nullptr && cb.cancel->load()) {
      why = "cancelled";
      return nullptr;
    }
    if (clock_type::now() >= deadline) {
      why = "timed out";
      return nullptr;
    }
    idle_.wait_for(lock, pi_rpc::poll_slice);
  }
}

pi_attempt_report pi_rpc_pool::attempt(worker*& current,
                                       const pi_attempt_request& req,
                                       const pi_callbacks& cb) {
  pi_attempt_report rep;
  auto& proc = rep.process;
  const auto started = clock_type::now();
  const auto deadline = req.budget_ms > 0
                            ? started + milliseconds{req.budget_ms}
                            : clock_type::time_point::max();
  auto key = key_of(req);
  if (current != nullptr && current->key != key) {
    release(current, false); // healthy, for a task wanting its model
    current = nullptr;
  }
  if (current == nullptr) {
    std::string why;
    bool fresh = false;
    current = acquire(key, req, cb, deadline, why, fresh);
    if (current == nullptr) {
      // Waiting for a free process ended: like a cancel or timeout of pi.
      proc.spawned = why == "cancelled" || why == "timed out";
      proc.cancelled = why == "cancelled";
      proc.timed_out = why == "timed out";
      proc.error = why;
      return rep;
    }
    if (!fresh)
      req.log("[crew] rpc: reusing pi process " + std::to_string(current->pid)
              + " (" + std::to_string(current->prompts) + " prompts so far)\n");
    if (cb.on_spawn)
      cb.on_spawn(current->pid);
  }
  proc.spawned = true;
  proc.exit_code = 0;
  auto err_from = pi_rpc::file_size(current->err);
  bool healthy = pi_rpc::run_conversation(*current, req, cb, deadline, rep);
  rep.stderr_text
      = pi_rpc::read_from(current->err, err_from, max_logged_stderr);
  proc.duration_ms = ms_between(started, clock_type::now());
  if (!healthy) {
    req.log("[crew] rpc: pi process " + std::to_string(current->pid)
            + " is dropped; the next attempt gets a new one\n");
    release(current, true);
    current = nullptr;
  }
  return rep;
}

pi_result pi_rpc_pool::run(const pi_job& job, const pi_callbacks& cb) {
  pi_callbacks callbacks = cb;
  callbacks.env = env_;
  worker* current = nullptr;
  pi_attempt_backend backend = [&](const pi_attempt_request& req) {
    return attempt(current, req, callbacks);
  };
  struct lease {
    pi_rpc_pool& pool;
    worker*& w;
    ~lease() {
      if (w != nullptr)
        pool.release(w, false);
    }
  } guard{*this, current};
  return run_pi_attempt_with(job, callbacks, backend);
}

} // namespace crew
