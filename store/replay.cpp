#include "store/replay.hpp"

#include "store/clock.hpp"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <unordered_map>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/detail/event_scan.hpp"
#include "store/snapshot.hpp"

namespace crew {

namespace detail {

simdjson::padded_string load_padded(const std::filesystem::path& path,
                                    uint64_t offset) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      throw input_error(errc::not_found,
                        fmt::format("{}: no such file", path.string()));
    throw io_error(
        fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
  }
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } guard{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0)
    throw io_error(
        fmt::format("cannot stat {}: {}", path.string(), std::strerror(errno)));
  // Only the bytes present at fstat time: a concurrent appender can only add
  // complete lines after them.
  auto total = static_cast<uint64_t>(st.st_size);
  auto size = static_cast<size_t>(total > offset ? total - offset : 0);
  simdjson::padded_string buf(size);
  size_t got = 0;
  while (got < size) {
    auto n = ::pread(fd, buf.data() + got, size - got,
                     static_cast<off_t>(offset + got));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      throw io_error(fmt::format("cannot read {}: {}", path.string(),
                                 std::strerror(errno)));
    }
    if (n == 0)
      break;
    got += static_cast<size_t>(n);
  }
  if (got < size) {
    // the file shrank while reading: keep what we have
    simdjson::padded_string shorter(buf.data(), got);
    return shorter;
  }
  return buf;
}

namespace {

simdjson::error_code read_string(simdjson::ondemand::value& v,
                                 std::string_view& out) {
  return v.get_string().get(out);
}

// Returns the raw JSON text of a value of any type.
simdjson::error_code read_raw(simdjson::ondemand::value& v,
                              std::string_view& out) {
  using namespace simdjson;
  ondemand::json_type t;
  if (auto err = v.type().get(t))
    return err;
  switch (t) {
    case ondemand::json_type::object: {
      ondemand::object obj;
      if (auto err = v.get_object().get(obj))
        return err;
      return obj.raw_json().get(out);
    }
    case ondemand::json_type::array: {
      ondemand::array arr;
      if (auto err = v.get_array().get(arr))
        return err;
      return arr.raw_json().get(out);
    }
    case ondemand::json_type::null: {
      out = {};
      // get(), not a conversion to bool: that throws simdjson_error on a
      // token like `nul` or `nope`, which must be an error code instead
      bool is_null = false;
      if (auto err = v.is_null().get(is_null))
        return err;
      return is_null ? SUCCESS : INCORRECT_TYPE;
    }
    default:
      out = v.raw_json_token();
      return SUCCESS;
  }
}

} // namespace

simdjson::error_code parse_event_line(simdjson::ondemand::parser& parser,
                                      const char* p, size_t n, size_t cap,
                                      event_view& ev) {
  using namespace simdjson;
  ev.seq = 0;
  ev.time = ev.type = ev.run_id = ev.task_id = ev.message = ev.data_raw = {};
  ondemand::document doc;
  if (auto err = parser.iterate(p, n, cap).get(doc))
    return err;
  ondemand::object obj;
  if (auto err = doc.get_object().get(obj))
    return err;
  bool has_type = false;
  for (auto fres : obj) {
    ondemand::field field;
    if (auto err = std::move(fres).get(field))
      return err;
    auto key = field.key();
    auto& val = field.value();
    error_code err = SUCCESS;
    if (key == "time") {
      err = read_string(val, ev.time);
    } else if (key == "type") {
      err = read_string(val, ev.type);
      has_type = true;
    } else if (key == "runId") {
      err = read_string(val, ev.run_id);
    } else if (key == "taskId") {
      err = read_string(val, ev.task_id);
    } else if (key == "message") {
      err = read_string(val, ev.message);
    } else if (key == "data") {
      err = read_raw(val, ev.data_raw);
    } else if (key == "metadata") {
      ondemand::object meta;
      err = val.get_object().get(meta);
      if (!err) {
        for (auto mres : meta) {
          ondemand::field mf;
          if ((err = std::move(mres).get(mf)))
            break;
          if (mf.key() == "seq") {
            if ((err = mf.value().get_uint64().get(ev.seq)))
              break;
          } else {
            // validate the skipped value's structure as we go
            std::string_view ignored;
            if ((err = read_raw(mf.value(), ignored)))
              break;
          }
        }
      }
    } else {
      std::string_view ignored;
      err = read_raw(val, ignored);
    }
    if (err)
      return err;
  }
  if (!has_type)
    return NO_SUCH_FIELD;
  // 3.0 has no document::at_end(): a token after the object means garbage
  if (doc.current_location().error() != OUT_OF_BOUNDS)
    return TRAILING_CONTENT;
  return SUCCESS;
}

} // namespace detail

read_report for_each_event(const std::filesystem::path& path,
                           const std::function<void(const event_view&)>& fn,
                           read_options opts) {
  auto buf = detail::load_padded(path, opts.start_offset);
  simdjson::ondemand::parser parser;
  auto res = detail::scan_events(
      parser, buf.data(), buf.size(), buf.size() + simdjson::SIMDJSON_PADDING,
      path.string(), opts.tolerate_torn_tail, opts.since_seq, opts.start_line,
      fn);
  return read_report{res.events, res.last_seq, res.torn_tail, res.torn_line};
}

// -- replay -------------------------------------------------------------------

namespace {

// Task id -> plan index: open addressing over a flat array holding the full
// hash, so most probes never touch the (cold) plan strings. At 500,000 tasks
// this is several times faster than std::unordered_map's node chains.
class task_index {
public:
  explicit task_index(const std::vector<planned_task>& plan) : plan_(plan) {
    size_t cap = 16;
    while (cap < plan.size() * 2)
      cap <<= 1;
    mask_ = cap - 1;
    slots_.assign(cap, slot{0, empty});
    for (size_t i = 0; i < plan.size(); ++i) {
      auto h = hash(plan[i].id);
      auto pos = h & mask_;
      while (slots_[pos].idx != empty) {
        if (slots_[pos].hash == h && plan[slots_[pos].idx].id == plan[i].id)
          break; // duplicate id: the first task wins
        pos = (pos + 1) & mask_;
      }
      if (slots_[pos].idx == empty)
        slots_[pos] = slot{h, static_cast<uint32_t>(i)};
    }
  }

  /// Returns the plan index of `id`, or -1.
  int64_t find(std::string_view id) const noexcept {
    auto h = hash(id);
    for (auto pos = h & mask_;; pos = (pos + 1) & mask_) {
      const auto& s = slots_[pos];
      if (s.idx == empty)
        return -1;
      if (s.hash == h && plan_[s.idx].id == id)
        return s.idx;
    }
  }

private:
  static constexpr uint32_t empty = UINT32_MAX;

  struct slot {
    uint64_t hash;
    uint32_t idx;
  };

  static uint64_t hash(std::string_view s) noexcept {
    return std::hash<std::string_view>{}(s);
  }

  const std::vector<planned_task>& plan_;
  std::vector<slot> slots_;
  uint64_t mask_ = 0;
};

// Reads `"exitCode":<int>` from a flat data object such as the runtime
// writes (`{"attempt":1,"exitCode":0}`). Returns false when the object is not
// that simple, so the caller falls back to a real parse.
bool quick_exit_code(std::string_view data, int64_t& code, bool& found) {
  found = false;
  if (data.find('{', 1) != std::string_view::npos
      || data.find('[') != std::string_view::npos)
    return false; // nested: a nested "exitCode" must not count
  constexpr std::string_view key = "\"exitCode\":";
  auto pos = data.find(key);
  if (pos == std::string_view::npos)
    return true;
  if (data[pos - 1] == '\\'
      || data.find(key, pos + 1) != std::string_view::npos)
    return false; // inside a string value, or ambiguous
  auto first = data.data() + pos + key.size();
  auto last = data.data() + data.size();
  auto [ptr, ec] = std::from_chars(first, last, code);
  if (ec != std::errc{} || ptr == last || (*ptr != ',' && *ptr != '}'))
    return false;
  found = true;
  return true;
}

/// Where a replay finds task states: all of them (`dense_tasks`), or the
/// few a log tail touches on top of a checkpoint (`tail_tasks`).
class task_store {
public:
  virtual ~task_store() = default;
  /// The plan index of `id`, or -1.
  virtual int64_t find(std::string_view id) = 0;
  virtual task_state& at(uint32_t i) = 0;
  /// Terminal events seen for task `i` since its last requeue.
  virtual uint32_t& terminals(uint32_t i) = 0;
  /// The id of task `i` (for messages).
  virtual std::string_view id_of(uint32_t i) = 0;
  /// Appends a task that an `adaptive.plan_injected` event added.
  virtual void add(planned_task task) = 0;
};

class dense_tasks final : public task_store {
public:
  dense_tasks(const std::vector<planned_task>& plan, replay_state& st)
      : plan_(plan), index_(plan), tasks_(st.tasks), added_(st.added) {
    tasks_.assign(plan.size(), task_state{});
    terminal_.assign(plan.size(), 0);
  }

  int64_t find(std::string_view id) override {
    if (auto i = index_.find(id); i >= 0 || added_ids_.empty())
      return i;
    auto i = added_ids_.find(std::string{id});
    return i == added_ids_.end() ? -1 : static_cast<int64_t>(i->second);
  }

  task_state& at(uint32_t i) override {
    return tasks_[i];
  }

  uint32_t& terminals(uint32_t i) override {
    return terminal_[i];
  }

  std::string_view id_of(uint32_t i) override {
    return i < plan_.size() ? std::string_view{plan_[i].id}
                            : std::string_view{added_[i - plan_.size()].id};
  }

  void add(planned_task task) override {
    auto i = static_cast<uint32_t>(tasks_.size());
    added_ids_.emplace(task.id, i);
    added_.push_back(std::move(task));
    tasks_.emplace_back();
    terminal_.push_back(0);
  }

private:
  const std::vector<planned_task>& plan_;
  task_index index_;
  std::vector<task_state>& tasks_;
  std::vector<uint32_t> terminal_;
  std::vector<planned_task>& added_;
  std::unordered_map<std::string, uint32_t> added_ids_;
};

class replayer {
public:
  replayer(task_store& tasks, replay_state& st, const char* buf_end)
      : st_(st), buf_end_(buf_end), tasks_(tasks) {
    // nop
  }

  void operator()(const event_view& ev) {
    ++st_.events;
    check_seq(ev);
    auto type = ev.type;
    if (type.starts_with("task.")) {
      on_task_event(ev, type.substr(5));
    } else if (type == "crew.task.retry_attempt") {
      on_retry(ev);
    } else if (type == "adaptive.plan_injected") {
      on_plan_injected(ev);
    } else if (type.starts_with("run.")) {
      run_status rs;
      if (type != "run.created" && from_string(type.substr(4), rs)) {
        st_.status = rs;
        st_.summary.assign(ev.message);
        if (rs == run_status::running) // a (re)start withdraws a stop
          st_.stop = {};
      }
    } else if (type == stop_event_type(stop_kind::cancel)) {
      st_.stop = {stop_kind::cancel, std::string{ev.message}, ev.seq};
    } else if (type == stop_event_type(stop_kind::expire)) {
      st_.stop = {stop_kind::expire, std::string{ev.message}, ev.seq};
    }
  }

private:
  void check_seq(const event_view& ev) {
    auto expected = st_.last_seq + 1;
    if (ev.seq != expected && st_.seq_contiguous) {
      st_.seq_contiguous = false;
      st_.first_gap_seq = expected;
      st_.violations.push_back(fmt::format(
          "line {}: seq {} where {} was expected", ev.line, ev.seq, expected));
    }
    if (ev.seq > st_.last_seq)
      st_.last_seq = ev.seq;
  }

  // The planner's tasks join the plan (`data.tasks`, plan.json entries).
  // Tasks the plan already has (plan.json is rewritten once the event is
  // durable) are not added twice.
  void on_plan_injected(const event_view& ev) {
    std::string_view raw;
    simdjson::ondemand::document doc;
    simdjson::ondemand::object obj;
    simdjson::ondemand::value tasks;
    auto cap = static_cast<size_t>(buf_end_ - ev.data_raw.data());
    if (ev.data_raw.size() < 2
        || data_parser_.iterate(ev.data_raw.data(), ev.data_raw.size(), cap)
             .get(doc)
        || doc.get_object().get(obj)
        || obj.find_field_unordered("tasks").get(tasks)
        || detail::read_raw(tasks, raw)) {
      st_.violations.push_back(fmt::format(
        "line {}: adaptive.plan_injected without a tasks array", ev.line));
      return;
    }
    std::vector<planned_task> added;
    try {
      added = parse_plan_tasks(
        raw, fmt::format("line {}: adaptive.plan_injected data.tasks", ev.line));
    } catch (const std::exception& e) {
      st_.violations.push_back(e.what());
      return;
    }
    for (auto& t : added)
      if (tasks_.find(t.id) < 0)
        tasks_.add(std::move(t));
  }

  // A failed attempt that will be retried: the attempt ends with its error,
  // the task stays running until the next task.started.
  void on_retry(const event_view& ev) {
    auto found = tasks_.find(ev.task_id);
    if (found < 0) {
      st_.violations.push_back(fmt::format("line {}: {} for unknown task '{}'",
                                           ev.line, ev.type, ev.task_id));
      return;
    }
    auto& t = tasks_.at(static_cast<uint32_t>(found));
    close_attempt(t, ev, ev.message);
    t.error.assign(ev.message);
    read_details(ev, t);
    t.worker_pid = 0;
    t.worker_start = 0;
    std::chrono::system_clock::time_point at;
    int64_t delay = 0;
    if (parse_iso_time(ev.time, at) && ev.data_raw.size() >= 2) {
      simdjson::ondemand::document doc;
      auto cap = static_cast<size_t>(buf_end_ - ev.data_raw.data());
      if (!data_parser_.iterate(ev.data_raw.data(), ev.data_raw.size(), cap)
             .get(doc)) {
        if (doc.find_field_unordered("delayMs").get_int64().get(delay)
            != simdjson::SUCCESS)
          delay = 0;
      }
      auto at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     at.time_since_epoch())
                     .count();
      // saturated: delayMs comes from the file and may be any int64
      if (__builtin_add_overflow(at_ms, delay, &t.retry_due_ms))
        t.retry_due_ms = delay > 0 ? INT64_MAX : INT64_MIN;
    }
  }

  void on_task_event(const event_view& ev, std::string_view kind) {
    enum { started, completed, failed, skipped, cancelled, requeued, worker } k;
    if (kind == "started")
      k = started;
    else if (kind == "completed")
      k = completed;
    else if (kind == "failed")
      k = failed;
    else if (kind == "skipped")
      k = skipped;
    else if (kind == "cancelled")
      k = cancelled;
    else if (kind == "requeued")
      k = requeued;
    else if (kind == "worker")
      k = worker;
    else
      return; // task.progress and friends carry no state
    auto found = tasks_.find(ev.task_id);
    if (found < 0) {
      st_.violations.push_back(fmt::format("line {}: {} for unknown task '{}'",
                                           ev.line, ev.type, ev.task_id));
      return;
    }
    auto idx = static_cast<uint32_t>(found);
    auto& t = tasks_.at(idx);
    if (k != started && k != worker) {
      t.worker_pid = 0;
      t.worker_start = 0;
    }
    if (k != worker)
      t.retry_due_ms = 0;
    switch (k) {
      case worker:
        read_worker(ev, t);
        break;
      case started:
        t.status = task_status::running;
        t.started_at.assign(ev.time);
        t.finished_at.clear();
        t.error.clear();
        t.attempts.emplace_back().started_at.assign(ev.time);
        break;
      case completed:
        terminal(idx, ev);
        t.status = task_status::completed;
        t.finished_at.assign(ev.time);
        t.error.clear();
        read_exit_code(ev, t);
        read_details(ev, t);
        close_attempt(t, ev, {});
        break;
      case failed:
        terminal(idx, ev);
        t.status = task_status::failed;
        t.finished_at.assign(ev.time);
        t.error.assign(ev.message);
        read_exit_code(ev, t);
        read_details(ev, t);
        close_attempt(t, ev, ev.message);
        break;
      case skipped:
      case cancelled:
        terminal(idx, ev);
        t.status = k == skipped ? task_status::skipped : task_status::cancelled;
        t.finished_at.assign(ev.time);
        t.error.assign(ev.message);
        close_attempt(t, ev, ev.message);
        break;
      case requeued:
        // An attempt cut off by a crash ends here, with the requeue's reason.
        close_attempt(t, ev, ev.message);
        tasks_.terminals(idx) = 0;
        t.status = task_status::queued;
        t.started_at.clear();
        t.finished_at.clear();
        t.error.clear();
        t.exit_code = 0;
        t.has_exit_code = false;
        t.details.clear();
        break;
    }
  }

  void terminal(uint32_t idx, const event_view& ev) {
    if (++tasks_.terminals(idx) == 2)
      st_.violations.push_back(
          fmt::format("task '{}': 2 terminal events (second: {} at line {})",
                      tasks_.id_of(idx), ev.type, ev.line));
  }

  static void close_attempt(task_state& t, const event_view& ev,
                            std::string_view error) {
    if (t.attempts.empty() || !t.attempts.back().ended_at.empty())
      return;
    auto& a = t.attempts.back();
    a.ended_at.assign(ev.time);
    a.error.assign(error);
  }

  // Reads `exitCode` from the event's data with a second parser: data_raw
  // points into the padded file buffer, so it can be parsed in place.
  void read_exit_code(const event_view& ev, task_state& t) {
    if (ev.data_raw.size() < 2 || ev.data_raw.front() != '{')
      return;
    // cheap pre-check: most events without the key skip the parse
    int64_t code = 0;
    bool found = false;
    if (quick_exit_code(ev.data_raw, code, found)) {
      if (found) {
        t.exit_code = static_cast<int32_t>(code);
        t.has_exit_code = true;
      }
      return;
    }
    simdjson::ondemand::document doc;
    auto cap = static_cast<size_t>(buf_end_ - ev.data_raw.data());
    if (data_parser_.iterate(ev.data_raw.data(), ev.data_raw.size(), cap)
            .get(doc))
      return;
    if (doc.find_field("exitCode").get_int64().get(code) == simdjson::SUCCESS) {
      t.exit_code = static_cast<int32_t>(code);
      t.has_exit_code = true;
    }
  }

  // Keeps what a worker reported about the attempt (see
  // task_state::details): the members a pi worker adds to the event data.
  void read_details(const event_view& ev, task_state& t) {
    auto raw = ev.data_raw;
    if (raw.size() < 2 || raw.front() != '{'
        || (raw.find("\"modelAttempts\"") == std::string_view::npos
            && raw.find("\"usage\"") == std::string_view::npos))
      return;
    simdjson::ondemand::document doc;
    auto cap = static_cast<size_t>(buf_end_ - raw.data());
    simdjson::ondemand::object obj;
    if (data_parser_.iterate(raw.data(), raw.size(), cap).get(doc)
        || doc.get_object().get(obj))
      return;
    std::string out = "{";
    for (auto fres : obj) {
      simdjson::ondemand::field field;
      std::string_view key, value;
      if (std::move(fres).get(field) || field.unescaped_key().get(key)
          || detail::read_raw(field.value(), value))
        return;
      if (key != "model" && key != "modelAttempts" && key != "modelRouting"
          && key != "usage" && key != "jsonEvents")
        continue;
      if (out.size() > 1)
        out += ',';
      out += '"';
      out += key;
      out += "\":";
      out += value;
    }
    out += '}';
    t.details = std::move(out);
  }

  // Reads `pid` and `startTime` of a `task.worker` event.
  void read_worker(const event_view& ev, task_state& t) {
    if (ev.data_raw.size() < 2 || ev.data_raw.front() != '{')
      return;
    simdjson::ondemand::document doc;
    auto cap = static_cast<size_t>(buf_end_ - ev.data_raw.data());
    if (data_parser_.iterate(ev.data_raw.data(), ev.data_raw.size(), cap)
          .get(doc))
      return;
    // One pass over the fields, stopping at the first structural error: a
    // failed lookup may abandon the document, and another lookup on it then
    // reads through simdjson's null parser pointer.
    simdjson::ondemand::object obj;
    if (doc.get_object().get(obj))
      return;
    for (auto fres : obj) {
      simdjson::ondemand::field field;
      std::string_view key;
      if (std::move(fres).get(field) || field.unescaped_key().get(key))
        return;
      int64_t pid = 0;
      uint64_t start = 0;
      if (key == "pid") {
        if (field.value().get_int64().get(pid) == simdjson::SUCCESS)
          t.worker_pid = static_cast<int32_t>(pid);
      } else if (key == "startTime") {
        if (field.value().get_uint64().get(start) == simdjson::SUCCESS)
          t.worker_start = start;
      }
    }
  }

  replay_state& st_;
  const char* buf_end_;
  task_store& tasks_;
  simdjson::ondemand::parser data_parser_;
};

/// The tasks a log tail touches, taken from a checkpoint on first use.
class tail_tasks final : public task_store {
public:
  tail_tasks(const run_checkpoint& ck,
             std::unordered_map<std::string, uint32_t> ids)
      : ck_(ck), ids_(std::move(ids)) {
    // nop
  }

  int64_t find(std::string_view id) override {
    auto i = ids_.find(std::string{id});
    return i == ids_.end() ? -1 : static_cast<int64_t>(i->second);
  }

  task_state& at(uint32_t i) override {
    return entry(i).state;
  }

  uint32_t& terminals(uint32_t i) override {
    return entry(i).terminals;
  }

  void add(planned_task) override {
    // the caller replays the whole log instead (tail_report::plan_changed)
  }

  std::string_view id_of(uint32_t i) override {
    for (auto& [id, idx] : ids_)
      if (idx == i)
        return id;
    return {};
  }

  /// Writes the touched tasks back into `ck`.
  void store(run_checkpoint& ck) const {
    for (auto& [i, e] : touched_)
      set_checkpoint_task(ck, i, e.state);
  }

private:
  struct touched {
    task_state state;
    uint32_t terminals = 0;
  };

  touched& entry(uint32_t i) {
    auto [pos, added] = touched_.try_emplace(i);
    if (added) {
      pos->second.state = checkpoint_task_state(ck_, i);
      pos->second.terminals = is_terminal(pos->second.state.status) ? 1 : 0;
    }
    return pos->second;
  }

  const run_checkpoint& ck_;
  std::unordered_map<std::string, uint32_t> ids_;
  std::unordered_map<uint32_t, touched> touched_;
};

} // namespace

replay_state replay_log(const std::filesystem::path& events,
                        const std::vector<planned_task>& plan) {
  auto buf = detail::load_padded(events);
  replay_state st;
  const char* buf_end = buf.data() + buf.size() + simdjson::SIMDJSON_PADDING;
  dense_tasks tasks{plan, st};
  replayer r{tasks, st, buf_end};
  simdjson::ondemand::parser parser;
  auto res = detail::scan_events(parser, buf.data(), buf.size(),
                                 buf.size() + simdjson::SIMDJSON_PADDING,
                                 events.string(), true, 0, 0, r);
  st.torn_tail = res.torn_tail;
  return st;
}

namespace {

/// Collects the values of `"taskId":"…"` in the lines of `text` without
/// parsing them; false when a value holds an escape (then the caller parses
/// properly). Extra ids (a nested "taskId" key) only cost a lookup.
bool tail_task_ids(std::string_view text,
                   std::unordered_map<std::string, uint32_t>& ids) {
  constexpr std::string_view key = R"("taskId":")";
  size_t pos = 0;
  while ((pos = text.find(key, pos)) != std::string_view::npos) {
    auto first = pos + key.size();
    auto last = text.find('"', first);
    if (last == std::string_view::npos)
      return false;
    auto id = text.substr(first, last - first);
    if (id.find('\\') != std::string_view::npos)
      return false;
    ids.emplace(id, UINT32_MAX);
    pos = last + 1;
  }
  return true;
}

} // namespace

tail_report replay_tail(const std::filesystem::path& events, uint64_t offset,
                        const std::vector<planned_task>& plan,
                        run_checkpoint& ck) {
  return replay_tail(events, offset, [&](task_id_map& ids) {
    size_t unresolved = ids.size();
    for (uint32_t i = 0; i < plan.size() && unresolved > 0; ++i)
      if (auto pos = ids.find(plan[i].id);
          pos != ids.end() && pos->second == UINT32_MAX) {
        pos->second = i;
        --unresolved;
      }
  }, ck);
}

tail_report replay_tail(const std::filesystem::path& events, uint64_t offset,
                        const std::function<void(task_id_map&)>& resolve,
                        run_checkpoint& ck) {
  auto buf = detail::load_padded(events, offset);
  auto cap = buf.size() + simdjson::SIMDJSON_PADDING;
  auto line_base = static_cast<size_t>(ck.seq);
  simdjson::ondemand::parser parser;
  // First the task ids the tail names, then their plan indices in one pass
  // over the plan: no index of all task ids is built.
  std::unordered_map<std::string, uint32_t> ids;
  if (!tail_task_ids(std::string_view{buf.data(), buf.size()}, ids))
    detail::scan_events(parser, buf.data(), buf.size(), cap, events.string(),
                        true, 0, line_base, [&](const event_view& ev) {
                          if (!ev.task_id.empty())
                            ids.emplace(ev.task_id, UINT32_MAX);
                        });
  resolve(ids);
  std::erase_if(ids, [&](const auto& x) { return x.second >= ck.tasks.size(); });
  replay_state st;
  st.status = ck.status;
  st.summary = ck.summary;
  st.stop = ck.stop;
  st.last_seq = ck.seq;
  tail_tasks tasks{ck, std::move(ids)};
  replayer r{tasks, st, buf.data() + cap};
  tail_report rep;
  auto res = detail::scan_events(
    parser, buf.data(), buf.size(), cap, events.string(), true, 0, line_base,
    [&](const event_view& ev) {
      r(ev);
      if (ev.type == "adaptive.plan_injected")
        rep.plan_changed = true;
      if (ev.type == "crew.task.deadletter")
        rep.deadletters.push_back(
          {std::string{ev.task_id}, std::string{ev.time}, std::string{ev.data_raw}});
    });
  tasks.store(ck);
  ck.seq = st.last_seq;
  ck.status = st.status;
  ck.summary = std::move(st.summary);
  ck.stop = std::move(st.stop);
  rep.events = st.events;
  rep.valid_end = offset + res.valid_end;
  rep.torn_tail = res.torn_tail;
  rep.violations = std::move(st.violations);
  return rep;
}

} // namespace crew
