#include "store/checkpoint.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <type_traits>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/atomic_file.hpp"
#include "store/clock.hpp"
#include "store/snapshot.hpp"

namespace crew {

namespace {

// -- a bounds-checked binary encoding (host byte order: the files are local
//    caches, and a byte-order marker makes a foreign file a cache miss) -------

constexpr uint32_t byte_order_mark = 0x01020304;
constexpr std::string_view plan_magic{"CREWPLN\x01", 8};
// Version 2 adds the stop intent (a version-1 file is ignored: full replay).
constexpr std::string_view checkpoint_magic{"CREWCKP\x02", 8};
constexpr std::string_view trailer{"END!", 4};

class bin_writer {
public:
  template <class T>
  void num(T x) {
    static_assert(std::is_trivially_copyable_v<T>);
    buf_.append(reinterpret_cast<const char*>(&x), sizeof(T));
  }

  void str(std::string_view x) {
    num(static_cast<uint32_t>(x.size()));
    buf_.append(x);
  }

  void raw(std::string_view x) {
    buf_.append(x);
  }

  std::string take() {
    return std::move(buf_);
  }

private:
  std::string buf_;
};

class bin_reader {
public:
  explicit bin_reader(std::string_view data) : data_(data) {
    // nop
  }

  template <class T>
  T num() {
    T x{};
    if (!take(sizeof(T)))
      return x;
    std::memcpy(&x, data_.data() + pos_ - sizeof(T), sizeof(T));
    return x;
  }

  std::string_view str() {
    auto n = num<uint32_t>();
    if (!take(n))
      return {};
    return data_.substr(pos_ - n, n);
  }

  bool expect(std::string_view bytes) {
    return take(bytes.size())
           && data_.substr(pos_ - bytes.size(), bytes.size()) == bytes;
  }

  /// A count of items of at least `min_bytes` each that can still follow.
  uint64_t count(size_t min_bytes) {
    auto n = num<uint64_t>();
    if (min_bytes > 0 && n > (data_.size() - pos_) / min_bytes)
      ok_ = false;
    return ok_ ? n : 0;
  }

  bool ok() const noexcept {
    return ok_;
  }

  bool at_end() const noexcept {
    return pos_ == data_.size();
  }

private:
  bool take(size_t n) {
    if (!ok_ || n > data_.size() - pos_) {
      ok_ = false;
      return false;
    }
    pos_ += n;
    return true;
  }

  std::string_view data_;
  size_t pos_ = 0;
  bool ok_ = true;
};

/// A read-only view of a whole file through mmap: a 40 MB cache is read
/// without a copy into (and page faults on) a fresh buffer.
class mapped_file {
public:
  explicit mapped_file(const std::filesystem::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return;
    struct stat st;
    if (::fstat(fd, &st) == 0 && st.st_size > 0) {
      auto size = static_cast<size_t>(st.st_size);
      auto* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
      if (p != MAP_FAILED) {
        data_ = static_cast<const char*>(p);
        size_ = size;
      }
    }
    ::close(fd);
  }

  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;

  ~mapped_file() {
    if (data_)
      ::munmap(const_cast<char*>(data_), size_);
  }

  /// The content; empty when the file is missing, empty or unreadable.
  std::string_view view() const noexcept {
    return {data_, size_};
  }

private:
  const char* data_ = nullptr;
  size_t size_ = 0;
};

int64_t ms_of(std::string_view iso) {
  std::chrono::system_clock::time_point tp;
  if (iso.empty() || !parse_iso_time(iso, tp))
    return 0;
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           tp.time_since_epoch())
    .count();
}

std::string iso_of(int64_t ms) {
  if (ms == 0)
    return {};
  // clamped: checkpoint.bin is read from disk and may hold any value
  return iso_time(time_of_unix_ms(ms));
}

template <class T>
auto find_sparse(std::vector<std::pair<uint32_t, T>>& xs, uint32_t i) {
  return std::lower_bound(xs.begin(), xs.end(), i,
                          [](const auto& x, uint32_t k) { return x.first < k; });
}

template <class T>
auto find_sparse(const std::vector<std::pair<uint32_t, T>>& xs, uint32_t i) {
  return std::lower_bound(xs.begin(), xs.end(), i,
                          [](const auto& x, uint32_t k) { return x.first < k; });
}

/// Stores `value` for `i` in a sparse vector, or erases the entry when
/// `keep` is false.
template <class T>
void put_sparse(std::vector<std::pair<uint32_t, T>>& xs, uint32_t i, T value,
                bool keep) {
  auto pos = find_sparse(xs, i);
  bool found = pos != xs.end() && pos->first == i;
  if (!keep) {
    if (found)
      xs.erase(pos);
  } else if (found) {
    pos->second = std::move(value);
  } else {
    xs.emplace(pos, i, std::move(value));
  }
}

} // namespace

// -- plan.bin -----------------------------------------------------------------

std::string plan_bin(const std::vector<planned_task>& plan,
                     uint64_t plan_json_size) {
  bin_writer w;
  w.raw(plan_magic);
  w.num(byte_order_mark);
  w.num(plan_json_size);
  w.num(static_cast<uint64_t>(plan.size()));
  for (auto& p : plan) {
    for (auto* s : {&p.id, &p.step_id, &p.role, &p.agent, &p.title, &p.model,
                    &p.task})
      w.str(*s);
    w.num(static_cast<uint32_t>(p.depends_on.size()));
    for (auto& d : p.depends_on)
      w.str(d);
    w.num(static_cast<uint32_t>(p.deps.size()));
    for (auto d : p.deps)
      w.num(d);
  }
  w.raw(trailer);
  return w.take();
}

std::optional<std::vector<planned_task>>
read_plan_bin(const std::filesystem::path& path, uint64_t plan_json_size) {
  mapped_file file{path};
  bin_reader r{file.view()};
  if (!r.expect(plan_magic) || r.num<uint32_t>() != byte_order_mark
      || r.num<uint64_t>() != plan_json_size)
    return std::nullopt;
  auto n = r.count(7 * sizeof(uint32_t) + 2 * sizeof(uint32_t));
  std::vector<planned_task> plan(n);
  for (auto& p : plan) {
    for (auto* s : {&p.id, &p.step_id, &p.role, &p.agent, &p.title, &p.model,
                    &p.task})
      s->assign(r.str());
    auto nd = r.num<uint32_t>();
    for (uint32_t k = 0; k < nd && r.ok(); ++k)
      p.depends_on.emplace_back(r.str());
    auto ni = r.num<uint32_t>();
    for (uint32_t k = 0; k < ni && r.ok(); ++k) {
      auto d = r.num<uint32_t>();
      if (d >= n)
        return std::nullopt;
      p.deps.push_back(d);
    }
    if (!r.ok())
      return std::nullopt;
  }
  if (!r.expect(trailer) || !r.at_end())
    return std::nullopt;
  return plan;
}

bool resolve_plan_bin_ids(const std::filesystem::path& path,
                          uint64_t plan_json_size,
                          std::unordered_map<std::string, uint32_t>& ids) {
  mapped_file file{path};
  bin_reader r{file.view()};
  if (!r.expect(plan_magic) || r.num<uint32_t>() != byte_order_mark
      || r.num<uint64_t>() != plan_json_size)
    return false;
  auto n = r.count(7 * sizeof(uint32_t) + 2 * sizeof(uint32_t));
  size_t unresolved = ids.size();
  std::string key;
  for (uint64_t i = 0; i < n && r.ok(); ++i) {
    auto id = r.str();
    if (unresolved > 0) {
      key.assign(id);
      if (auto pos = ids.find(key); pos != ids.end() && pos->second == UINT32_MAX) {
        pos->second = static_cast<uint32_t>(i);
        --unresolved;
      }
    } else {
      return true;
    }
    for (int k = 0; k < 6; ++k)
      r.str();
    auto nd = r.num<uint32_t>();
    for (uint32_t k = 0; k < nd && r.ok(); ++k)
      r.str();
    auto ni = r.num<uint32_t>();
    for (uint32_t k = 0; k < ni && r.ok(); ++k)
      r.num<uint32_t>();
  }
  return r.ok();
}

// -- checkpoint.bin -----------------------------------------------------------

std::string checkpoint_bin(const run_checkpoint& ck) {
  bin_writer w;
  w.raw(checkpoint_magic);
  w.num(byte_order_mark);
  w.num(ck.seq);
  w.num(static_cast<uint8_t>(ck.status));
  w.str(ck.summary);
  w.num(static_cast<uint8_t>(ck.stop.kind));
  w.str(ck.stop.reason);
  w.num(ck.stop.seq);
  w.num(static_cast<uint64_t>(ck.tasks.size()));
  for (auto& t : ck.tasks) {
    w.num(static_cast<uint8_t>(t.status));
    w.num(static_cast<uint8_t>((t.has_exit_code ? 1 : 0) | (t.waiting ? 2 : 0)));
    w.num(t.attempts);
    w.num(t.exit_code);
    w.num(t.worker_pid);
    w.num(t.worker_start);
    w.num(t.started_ms);
    w.num(t.finished_ms);
    w.num(t.retry_due_ms);
  }
  w.num(static_cast<uint64_t>(ck.errors.size()));
  for (auto& [i, e] : ck.errors) {
    w.num(i);
    w.str(e);
  }
  w.num(static_cast<uint64_t>(ck.history.size()));
  for (auto& [i, h] : ck.history) {
    w.num(i);
    w.num(static_cast<uint32_t>(h.size()));
    for (auto& a : h) {
      w.num(a.started_ms);
      w.num(a.ended_ms);
      w.str(a.error);
    }
  }
  w.num(static_cast<uint64_t>(ck.details.size()));
  for (auto& [i, d] : ck.details) {
    w.num(i);
    w.str(d);
  }
  w.raw(trailer);
  return w.take();
}

std::optional<run_checkpoint> read_checkpoint(const std::filesystem::path& path) {
  mapped_file file{path};
  bin_reader r{file.view()};
  if (!r.expect(checkpoint_magic) || r.num<uint32_t>() != byte_order_mark)
    return std::nullopt;
  run_checkpoint ck;
  ck.seq = r.num<uint64_t>();
  auto status = r.num<uint8_t>();
  if (status < static_cast<uint8_t>(run_status::queued)
      || status > static_cast<uint8_t>(run_status::cancelled))
    return std::nullopt;
  ck.status = static_cast<run_status>(status);
  ck.summary.assign(r.str());
  auto stop = r.num<uint8_t>();
  if (stop > static_cast<uint8_t>(stop_kind::expire))
    return std::nullopt;
  ck.stop.kind = static_cast<stop_kind>(stop);
  ck.stop.reason.assign(r.str());
  ck.stop.seq = r.num<uint64_t>();
  auto n = r.count(46);
  if (!r.ok())
    return std::nullopt;
  ck.tasks.resize(n);
  for (auto& t : ck.tasks) {
    auto st = r.num<uint8_t>();
    if (st < static_cast<uint8_t>(task_status::queued)
        || st > static_cast<uint8_t>(task_status::skipped))
      return std::nullopt;
    t.status = static_cast<task_status>(st);
    auto flags = r.num<uint8_t>();
    t.has_exit_code = (flags & 1) != 0;
    t.waiting = (flags & 2) != 0;
    t.attempts = r.num<uint32_t>();
    t.exit_code = r.num<int32_t>();
    t.worker_pid = r.num<int32_t>();
    t.worker_start = r.num<uint64_t>();
    t.started_ms = r.num<int64_t>();
    t.finished_ms = r.num<int64_t>();
    t.retry_due_ms = r.num<int64_t>();
  }
  auto ne = r.count(8);
  ck.errors.reserve(ne);
  for (uint64_t k = 0; k < ne && r.ok(); ++k) {
    auto i = r.num<uint32_t>();
    auto e = r.str();
    if (i >= n || (!ck.errors.empty() && ck.errors.back().first >= i))
      return std::nullopt;
    ck.errors.emplace_back(i, std::string{e});
  }
  auto nh = r.count(8);
  ck.history.reserve(nh);
  for (uint64_t k = 0; k < nh && r.ok(); ++k) {
    auto i = r.num<uint32_t>();
    auto na = r.num<uint32_t>();
    if (i >= n || (!ck.history.empty() && ck.history.back().first >= i))
      return std::nullopt;
    auto& h = ck.history.emplace_back(i, std::vector<attempt_checkpoint>{}).second;
    for (uint32_t a = 0; a < na && r.ok(); ++a) {
      auto& x = h.emplace_back();
      x.started_ms = r.num<int64_t>();
      x.ended_ms = r.num<int64_t>();
      x.error.assign(r.str());
    }
  }
  auto nd = r.count(8);
  ck.details.reserve(nd);
  for (uint64_t k = 0; k < nd && r.ok(); ++k) {
    auto i = r.num<uint32_t>();
    auto d = r.str();
    if (i >= n || (!ck.details.empty() && ck.details.back().first >= i))
      return std::nullopt;
    ck.details.emplace_back(i, std::string{d});
  }
  if (!r.ok() || !r.expect(trailer) || !r.at_end())
    return std::nullopt;
  return ck;
}

// -- conversions --------------------------------------------------------------

std::string_view checkpoint_error(const run_checkpoint& ck, uint32_t i) {
  auto pos = find_sparse(ck.errors, i);
  if (pos != ck.errors.end() && pos->first == i)
    return pos->second;
  return {};
}

task_state checkpoint_task_state(const run_checkpoint& ck, uint32_t i) {
  auto& t = ck.tasks[i];
  task_state out;
  out.status = t.status;
  out.started_at = iso_of(t.started_ms);
  out.finished_at = iso_of(t.finished_ms);
  out.error = std::string{checkpoint_error(ck, i)};
  if (auto d = find_sparse(ck.details, i); d != ck.details.end() && d->first == i)
    out.details = d->second;
  out.exit_code = t.exit_code;
  out.has_exit_code = t.has_exit_code;
  out.worker_pid = t.worker_pid;
  out.worker_start = t.worker_start;
  out.retry_due_ms = t.waiting ? t.retry_due_ms : 0;
  if (auto h = find_sparse(ck.history, i);
      h != ck.history.end() && h->first == i)
    for (auto& a : h->second)
      out.attempts.push_back({iso_of(a.started_ms), iso_of(a.ended_ms), a.error});
  // The last attempt is implied by the task's own fields.
  if (t.attempts > out.attempts.size() && t.started_ms != 0 && !t.waiting) {
    attempt_record cur;
    cur.started_at = out.started_at;
    if (is_terminal(t.status)) {
      cur.ended_at = out.finished_at;
      cur.error = out.error;
    }
    out.attempts.push_back(std::move(cur));
  }
  return out;
}

namespace {

/// Fills `t` from `st`; returns how many leading attempts need a history
/// entry (all but an implied last one).
size_t fill_task(task_checkpoint& t, const task_state& st) {
  t.status = st.status;
  t.has_exit_code = st.has_exit_code;
  t.exit_code = st.exit_code;
  t.worker_pid = st.worker_pid;
  t.worker_start = st.worker_start;
  t.started_ms = ms_of(st.started_at);
  t.finished_ms = ms_of(st.finished_at);
  t.waiting = st.status == task_status::running && st.retry_due_ms != 0;
  t.retry_due_ms = t.waiting ? st.retry_due_ms : 0;
  t.attempts = static_cast<uint32_t>(st.attempts.size());
  if (st.attempts.empty())
    return 0;
  auto& last = st.attempts.back();
  bool implied = !t.waiting && t.started_ms != 0
                 && last.started_at == st.started_at
                 && (is_terminal(st.status)
                       ? last.ended_at == st.finished_at && last.error == st.error
                       : last.ended_at.empty());
  return implied ? st.attempts.size() - 1 : st.attempts.size();
}

std::vector<attempt_checkpoint> history_of(const task_state& st, size_t n) {
  std::vector<attempt_checkpoint> out;
  out.reserve(n);
  for (size_t k = 0; k < n; ++k) {
    auto& a = st.attempts[k];
    out.push_back({ms_of(a.started_at), ms_of(a.ended_at), a.error});
  }
  return out;
}

} // namespace

run_checkpoint make_checkpoint(const std::vector<task_state>& states) {
  run_checkpoint ck;
  ck.tasks.resize(states.size());
  for (uint32_t i = 0; i < states.size(); ++i) {
    auto& st = states[i];
    auto n = fill_task(ck.tasks[i], st);
    if (!st.error.empty())
      ck.errors.emplace_back(i, st.error);
    if (!st.details.empty())
      ck.details.emplace_back(i, st.details);
    if (n > 0)
      ck.history.emplace_back(i, history_of(st, n));
  }
  return ck;
}

void set_checkpoint_task(run_checkpoint& ck, uint32_t i, const task_state& st) {
  auto n = fill_task(ck.tasks[i], st);
  put_sparse(ck.errors, i, st.error, !st.error.empty());
  put_sparse(ck.details, i, st.details, !st.details.empty());
  put_sparse(ck.history, i, history_of(st, n), n > 0);
}

// -- positions in the log -----------------------------------------------------

namespace {

/// Reads lines of a log with pread.
class line_probe {
public:
  explicit line_probe(int fd, uint64_t size) : fd_(fd), size_(size) {
    // nop
  }

  /// The first complete line starting at or after `pos` (a line starts at 0
  /// or after a '\n'): its start, its end (past '\n') and its seq; false
  /// when none.
  bool line_from(uint64_t pos, uint64_t& start, uint64_t& end, uint64_t& seq) {
    start = pos;
    if (pos > 0) {
      // skip to the character after the next '\n' at or after pos - 1
      uint64_t nl;
      if (!find_newline(pos - 1, nl))
        return false;
      start = nl + 1;
    }
    for (;;) {
      uint64_t nl;
      if (!find_newline(start, nl))
        return false;
      end = nl + 1;
      if (end - start > 1) {
        if (!seq_of(start, end, seq))
          return false;
        return true;
      }
      start = end; // a blank line
    }
  }

private:
  bool read_at(uint64_t pos, size_t n, std::string& out) {
    out.resize(n);
    size_t got = 0;
    while (got < n) {
      auto r = ::pread(fd_, out.data() + got, n - got,
                       static_cast<off_t>(pos + got));
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        break;
      got += static_cast<size_t>(r);
    }
    out.resize(got);
    return got == n;
  }

  bool find_newline(uint64_t pos, uint64_t& nl) {
    constexpr size_t chunk = 4096;
    std::string buf;
    while (pos < size_) {
      auto n = static_cast<size_t>(std::min<uint64_t>(chunk, size_ - pos));
      if (!read_at(pos, n, buf))
        return false;
      if (auto* p = static_cast<const char*>(std::memchr(buf.data(), '\n', n))) {
        nl = pos + static_cast<uint64_t>(p - buf.data());
        return true;
      }
      pos += n;
    }
    return false;
  }

  bool seq_of(uint64_t start, uint64_t end, uint64_t& seq) {
    std::string line;
    if (!read_at(start, static_cast<size_t>(end - start), line))
      return false;
    constexpr std::string_view key = R"("metadata":{"seq":)";
    auto k = line.rfind(key);
    if (k == std::string::npos)
      return false;
    auto* first = line.data() + k + key.size();
    auto [ptr, ec] = std::from_chars(first, line.data() + line.size(), seq);
    return ec == std::errc{} && ptr != first;
  }

  int fd_;
  uint64_t size_;
};

} // namespace

std::optional<uint64_t> find_seq_end(const std::filesystem::path& events,
                                     uint64_t seq) {
  int fd = ::open(events.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return std::nullopt;
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } guard{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0)
    return std::nullopt;
  line_probe probe{fd, static_cast<uint64_t>(st.st_size)};
  // Bisect on byte positions for the line carrying `seq`: the line found
  // from a position has a seq that never decreases as the position grows.
  uint64_t lo = 0, hi = static_cast<uint64_t>(st.st_size);
  while (lo < hi) {
    auto mid = lo + (hi - lo) / 2;
    uint64_t start, end, s;
    if (!probe.line_from(mid, start, end, s)) {
      hi = mid; // nothing complete after mid: look before it
      continue;
    }
    if (s == seq)
      return end;
    if (s < seq)
      lo = end;
    else
      hi = mid;
  }
  uint64_t start, end, s;
  if (probe.line_from(lo, start, end, s) && s == seq)
    return end;
  return std::nullopt;
}

// -- plan.json + plan.bin -----------------------------------------------------

void write_plan(const run_paths& paths, const std::vector<planned_task>& plan,
                bool durable) {
  auto json = plan_json(plan);
  write_file_atomic(paths.plan(), json, durable);
  write_file_atomic(paths.plan_bin(), plan_bin(plan, json.size()), durable);
}

std::vector<planned_task> load_plan(const run_paths& paths) {
  std::error_code ec;
  auto size = std::filesystem::file_size(paths.plan(), ec);
  if (!ec)
    if (auto plan = read_plan_bin(paths.plan_bin(), size))
      return std::move(*plan);
  auto plan = parse_plan(read_file(paths.plan()), paths.plan().string());
  if (!ec) {
    try {
      write_file_atomic(paths.plan_bin(), plan_bin(plan, size));
    } catch (const std::exception&) {
      // a cache: the next recovery parses plan.json again
    }
  }
  return plan;
}

} // namespace crew
