#include "store/snapshot.hpp"

#include <simdjson.h>

#include <cmath>
#include <limits>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "messages/errors.hpp"
#include "store/json_writer.hpp"

namespace crew {

namespace {

using ojson = nlohmann::ordered_json;

[[noreturn]] void corrupt(std::string_view path, std::string_view what) {
  throw input_error(errc::corrupt_log, fmt::format("{}: {}", path, what));
}

ojson parse_json(std::string_view json, std::string_view path) {
  try {
    return ojson::parse(json.begin(), json.end());
  } catch (const nlohmann::json::exception& e) {
    corrupt(path, fmt::format("malformed JSON ({})", e.what()));
  }
}

/// The whole number `v` as T, or nullopt when it is not one or out of T's
/// range. Not get<T>(): nlohmann casts a double such as 1e300 to T, which is
/// undefined behaviour.
template <class T>
std::optional<T> whole_number(const ojson& v) {
  if (v.is_number_unsigned()) {
    auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<T>::max()))
      return std::nullopt;
    return static_cast<T>(u);
  }
  if (v.is_number_integer()) {
    auto i = v.get<int64_t>();
    if (i < 0 && !std::numeric_limits<T>::is_signed)
      return std::nullopt;
    return static_cast<T>(i);
  }
  if (v.is_number_float()) {
    // an integral double in T's range; the bounds are powers of 2, exact
    static_assert(sizeof(T) == 8);
    constexpr double lo = std::numeric_limits<T>::is_signed ? -0x1p63 : 0.0;
    constexpr double hi = std::numeric_limits<T>::is_signed ? 0x1p63 : 0x1p64;
    auto d = v.get<double>();
    if (!(d >= lo && d < hi) || d != std::trunc(d))
      return std::nullopt;
    return static_cast<T>(d);
  }
  return std::nullopt;
}

std::string get_str(const ojson& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string())
    return {};
  return it->get<std::string>();
}

void resolve_deps_impl(std::vector<planned_task>& plan, std::string_view what,
                       errc code) {
  std::unordered_map<std::string_view, uint32_t> by_task;
  std::unordered_map<std::string_view, uint32_t> by_step;
  by_task.reserve(plan.size());
  by_step.reserve(plan.size());
  for (uint32_t i = 0; i < plan.size(); ++i) {
    if (!by_task.emplace(plan[i].id, i).second)
      throw input_error(
          code, fmt::format("{}: duplicate task id '{}'", what, plan[i].id));
    by_step.emplace(plan[i].step_id, i); // first task with a step id wins
  }
  for (auto& t : plan) {
    t.deps.clear();
    t.deps.reserve(t.depends_on.size());
    for (const auto& d : t.depends_on) {
      auto it = by_step.find(d);
      if (it == by_step.end()) {
        it = by_task.find(d);
        if (it == by_task.end())
          throw input_error(code,
                            fmt::format("{}: task '{}' depends on unknown "
                                        "'{}'",
                                        what, t.id, d));
      }
      t.deps.push_back(it->second);
    }
  }
}

// -- a minimal pretty printer in JSON.stringify(x, null, 2) layout ------------

class pretty {
public:
  explicit pretty(std::string& out) : out_(out) {
    // nop
  }

  void begin_object() {
    out_.push_back('{');
    ++depth_;
    first_ = true;
  }

  void end_object() { close('}'); }

  void begin_array() {
    out_.push_back('[');
    ++depth_;
    first_ = true;
  }

  void end_array() { close(']'); }

  // Starts a member `"key": ` (key must not need escaping).
  void key(std::string_view k) {
    next();
    out_.push_back('"');
    out_.append(k);
    out_.append("\": ", 3);
  }

  // Starts an array element.
  void element() { next(); }

  void str(std::string_view s) { append_json_string(out_, s); }

  void raw(std::string_view s) { out_.append(s); }

  void member(std::string_view k, std::string_view s) {
    key(k);
    str(s);
  }

  void string_array(std::string_view k, const std::vector<std::string>& xs) {
    key(k);
    begin_array();
    for (const auto& x : xs) {
      element();
      str(x);
    }
    end_array();
  }

private:
  void next() {
    if (!first_)
      out_.push_back(',');
    first_ = false;
    newline();
  }

  void close(char c) {
    --depth_;
    if (!first_) // non-empty container
      newline();
    out_.push_back(c);
    first_ = false;
  }

  void newline() {
    out_.push_back('\n');
    out_.append(static_cast<size_t>(depth_) * 2, ' ');
  }

  std::string& out_;
  int depth_ = 0;
  bool first_ = true;
};

} // namespace

// -- manifest.json ------------------------------------------------------------

std::string manifest_json(const run_manifest& m) {
  ojson j;
  j["schemaVersion"] = 1;
  j["runId"] = m.run_id;
  j["team"] = m.team;
  if (!m.workflow.empty())
    j["workflow"] = m.workflow;
  j["goal"] = m.goal;
  j["status"] = to_string(m.status);
  j["workspaceMode"] = m.workspace_mode;
  j["createdAt"] = m.created_at;
  j["updatedAt"] = m.updated_at;
  j["cwd"] = m.cwd;
  j["stateRoot"] = m.state_root;
  j["artifactsRoot"] = m.artifacts_root;
  j["tasksPath"] = m.tasks_path;
  j["eventsPath"] = m.events_path;
  j["artifacts"] = ojson::array();
  j["summary"] = m.summary;
  j["snapshotSeq"] = m.seq;
  if (!m.runtime_mode.empty())
    j["runtime"] = m.runtime_mode;
  if (m.owner_pid != 0)
    j["owner"] = ojson{{"pid", m.owner_pid}, {"startTime", m.owner_start}};
  // Team and workflow names come from resource files: a stray byte in one
  // must not stop the manifest from being written after the plan was.
  auto out = j.dump(2, ' ', false, ojson::error_handler_t::replace);
  out.push_back('\n');
  return out;
}

run_manifest parse_manifest(std::string_view json,
                            const std::string& path_for_errors) {
  auto j = parse_json(json, path_for_errors);
  if (!j.is_object())
    corrupt(path_for_errors, "manifest is not a JSON object");
  run_manifest m;
  m.run_id = get_str(j, "runId");
  if (m.run_id.empty())
    corrupt(path_for_errors, "manifest has no runId");
  m.team = get_str(j, "team");
  m.workflow = get_str(j, "workflow");
  m.goal = get_str(j, "goal");
  auto status = get_str(j, "status");
  if (!from_string(status, m.status))
    corrupt(path_for_errors, fmt::format("unknown run status '{}'", status));
  if (auto mode = get_str(j, "workspaceMode"); !mode.empty())
    m.workspace_mode = std::move(mode);
  m.created_at = get_str(j, "createdAt");
  m.updated_at = get_str(j, "updatedAt");
  m.cwd = get_str(j, "cwd");
  m.state_root = get_str(j, "stateRoot");
  m.artifacts_root = get_str(j, "artifactsRoot");
  m.tasks_path = get_str(j, "tasksPath");
  m.events_path = get_str(j, "eventsPath");
  m.summary = get_str(j, "summary");
  m.runtime_mode = get_str(j, "runtime");
  auto number = [&]<class T>(const ojson& obj, const char* key, T& out) {
    auto it = obj.find(key);
    if (it == obj.end())
      return;
    auto x = whole_number<T>(*it);
    if (!x)
      corrupt(path_for_errors,
              fmt::format("bad field ({} is not a whole number in range)", key));
    out = *x;
  };
  number(j, "snapshotSeq", m.seq);
  if (auto it = j.find("owner"); it != j.end() && it->is_object()) {
    number(*it, "pid", m.owner_pid);
    number(*it, "startTime", m.owner_start);
  }
  return m;
}

// -- tasks.json ---------------------------------------------------------------

const char* queue_state(const std::vector<planned_task>& plan,
                        const task_state_source& states, size_t i) {
  switch (states.status(i)) {
    case task_status::queued:
      for (auto d : plan[i].deps)
        if (states.status(d) != task_status::completed)
          return "blocked";
      return "ready";
    case task_status::running:
      return "running";
    case task_status::completed:
    case task_status::skipped:
      return "done";
    default:
      return "blocked";
  }
}

namespace {

/// A task_state_source over a vector parallel to the plan.
class vector_source : public task_state_source {
public:
  explicit vector_source(const std::vector<task_state>& xs) : xs_(xs) {
    // nop
  }

  task_status status(size_t i) const override {
    return xs_[i].status;
  }

  task_state state(size_t i) const override {
    return xs_[i];
  }

private:
  const std::vector<task_state>& xs_;
};

/// Appends one task object of tasks.json (inventory §1.5).
void append_task(pretty& w, std::string& out, std::string_view run_id,
                 const std::vector<planned_task>& plan,
                 const task_state_source& states, size_t i,
                 std::string_view cwd) {
  const auto& p = plan[i];
  auto s = states.state(i);
  w.element();
  w.begin_object();
  w.member("id", p.id);
  w.member("runId", run_id);
  w.member("stepId", p.step_id);
  w.member("role", p.role);
  w.member("agent", p.agent);
  w.member("title", p.title);
  w.member("status", to_string(s.status));
  w.string_array("dependsOn", p.depends_on);
  w.member("cwd", cwd);
  if (!s.started_at.empty())
    w.member("startedAt", s.started_at);
  if (!s.finished_at.empty())
    w.member("finishedAt", s.finished_at);
  w.key("exitCode");
  if (s.has_exit_code)
    fmt::format_to(std::back_inserter(out), "{}", s.exit_code);
  else
    w.raw("null");
  if (!p.model.empty())
    w.member("model", p.model);
  if (!s.error.empty())
    w.member("error", s.error);
  if (!s.details.empty()) {
    // the worker's report: model, modelAttempts, modelRouting, usage, …
    auto details = nlohmann::json::parse(s.details, nullptr, false);
    if (details.is_object())
      for (auto& [key, value] : details.items()) {
        if (key == "model") // tasks.json's `model` is the step's
          continue;
        w.key(key);
        w.raw(value.dump());
      }
  }
  w.key("attempts");
  w.begin_array();
  for (const auto& a : s.attempts) {
    w.element();
    w.begin_object();
    w.member("startedAt", a.started_at);
    if (!a.ended_at.empty())
      w.member("endedAt", a.ended_at);
    if (!a.error.empty())
      w.member("error", a.error);
    w.end_object();
  }
  w.end_array();
  w.key("graph");
  w.begin_object();
  w.member("taskId", p.id);
  w.key("dependencies");
  w.begin_array();
  for (auto d : p.deps) {
    w.element();
    w.str(plan[d].id);
  }
  w.end_array();
  w.member("queue", queue_state(plan, states, i));
  w.end_object();
  w.end_object();
}

} // namespace

const char* queue_state(const std::vector<planned_task>& plan,
                        const std::vector<task_state>& states, size_t i) {
  return queue_state(plan, vector_source{states}, i);
}

void write_tasks_json(std::string_view run_id,
                      const std::vector<planned_task>& plan,
                      const task_state_source& states, std::string_view cwd,
                      const std::function<void(std::string_view)>& sink,
                      size_t chunk_bytes) {
  std::string out;
  out.reserve(chunk_bytes + 4096);
  pretty w{out};
  w.begin_array();
  for (size_t i = 0; i < plan.size(); ++i) {
    append_task(w, out, run_id, plan, states, i, cwd);
    if (out.size() >= chunk_bytes) {
      sink(out);
      out.clear();
    }
  }
  w.end_array();
  out.push_back('\n');
  sink(out);
}

std::string tasks_json(std::string_view run_id,
                       const std::vector<planned_task>& plan,
                       const std::vector<task_state>& states,
                       std::string_view cwd) {
  if (plan.size() != states.size())
    throw input_error(errc::invalid_input,
                      fmt::format("tasks_json: {} planned tasks but {} states",
                                  plan.size(), states.size()));
  std::string out;
  write_tasks_json(run_id, plan, vector_source{states}, cwd,
                   [&](std::string_view chunk) { out.append(chunk); });
  return out;
}

std::vector<task_state>
parse_tasks(std::string_view json, const std::vector<planned_task>& plan,
            const std::filesystem::path& path_for_errors) {
  auto path = path_for_errors.string();
  auto j = parse_json(json, path);
  if (!j.is_array())
    corrupt(path, "tasks file is not a JSON array");
  std::unordered_map<std::string_view, size_t> index;
  index.reserve(plan.size());
  for (size_t i = 0; i < plan.size(); ++i)
    index.emplace(plan[i].id, i);
  std::vector<task_state> states(plan.size());
  size_t n = 0;
  for (const auto& t : j) {
    ++n;
    if (!t.is_object())
      corrupt(path, fmt::format("task #{} is not a JSON object", n));
    auto id = get_str(t, "id");
    auto it = index.find(id);
    if (it == index.end())
      corrupt(path, fmt::format("task '{}' is not in the plan", id));
    auto& s = states[it->second];
    auto status = get_str(t, "status");
    if (!from_string(status, s.status))
      corrupt(path, fmt::format("task '{}': unknown status '{}'", id, status));
    s.started_at = get_str(t, "startedAt");
    s.finished_at = get_str(t, "finishedAt");
    s.error = get_str(t, "error");
    if (auto ec = t.find("exitCode");
        ec != t.end() && ec->is_number_integer()) {
      s.exit_code = ec->get<int32_t>();
      s.has_exit_code = true;
    }
    if (auto at = t.find("attempts"); at != t.end() && at->is_array()) {
      for (const auto& a : *at) {
        if (!a.is_object())
          continue;
        s.attempts.push_back(attempt_record{get_str(a, "startedAt"),
                                            get_str(a, "endedAt"),
                                            get_str(a, "error")});
      }
    }
  }
  return states;
}

// -- plan.json ----------------------------------------------------------------

std::string plan_json(const std::vector<planned_task>& plan) {
  std::string out;
  out.reserve(plan.size() * 300 + 16);
  pretty w{out};
  w.begin_array();
  for (const auto& p : plan) {
    w.element();
    w.begin_object();
    w.member("id", p.id);
    w.member("stepId", p.step_id);
    w.member("role", p.role);
    w.member("agent", p.agent);
    w.member("title", p.title);
    w.member("model", p.model);
    w.member("task", p.task);
    w.string_array("dependsOn", p.depends_on);
    w.end_object();
  }
  w.end_array();
  out.push_back('\n');
  return out;
}

std::vector<planned_task> parse_plan_tasks(std::string_view json,
                                           std::string_view path) {
  // A streaming parse (simdjson On-Demand): plan.json of a 500,000-task run
  // is ~90 MB, and recovery reads it before anything else.
  simdjson::padded_string buf{json};
  simdjson::ondemand::parser parser;
  simdjson::ondemand::document doc;
  simdjson::ondemand::array tasks;
  if (parser.iterate(buf).get(doc) || doc.get_array().get(tasks))
    corrupt(path, "plan is not a JSON array");
  std::vector<planned_task> plan;
  auto fail = [&](std::string_view what) {
    corrupt(path, fmt::format("task #{}: {}", plan.size(), what));
  };
  for (auto item : tasks) {
    simdjson::ondemand::object obj;
    if (item.get_object().get(obj)) {
      plan.emplace_back();
      fail("not a JSON object");
    }
    auto& p = plan.emplace_back();
    for (auto field : obj) {
      std::string_view key;
      if (field.unescaped_key().get(key))
        fail("malformed key");
      auto value = field.value();
      auto text = [&](std::string& out) {
        std::string_view v;
        if (value.get_string().get(v))
          fail(fmt::format("{} is not a string", key));
        out.assign(v);
      };
      if (key == "id")
        text(p.id);
      else if (key == "stepId")
        text(p.step_id);
      else if (key == "role")
        text(p.role);
      else if (key == "agent")
        text(p.agent);
      else if (key == "title")
        text(p.title);
      else if (key == "model")
        text(p.model);
      else if (key == "task")
        text(p.task);
      else if (key == "dependsOn") {
        simdjson::ondemand::array deps;
        if (value.get_array().get(deps))
          fail("dependsOn is not an array");
        for (auto d : deps) {
          std::string_view v;
          if (d.get_string().get(v))
            fail("dependsOn holds a non-string");
          p.depends_on.emplace_back(v);
        }
      }
    }
    if (p.id.empty())
      fail("has no id");
  }
  return plan;
}

std::vector<planned_task>
parse_plan(std::string_view json,
           const std::filesystem::path& path_for_errors) {
  auto path = path_for_errors.string();
  auto plan = parse_plan_tasks(json, path);
  resolve_deps_impl(plan, path, errc::corrupt_log);
  return plan;
}

void resolve_deps(std::vector<planned_task>& plan, std::string_view what) {
  resolve_deps_impl(plan, what, errc::invalid_input);
}

} // namespace crew
