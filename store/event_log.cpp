#include "store/event_log.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <utility>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "messages/errors.hpp"
#include "store/atomic_file.hpp"
#include "store/correlation.hpp"
#include "store/clock.hpp"
#include "store/detail/event_scan.hpp"
#include "store/json_writer.hpp"
#include "store/utf8.hpp"

namespace crew {

namespace fs = std::filesystem;

// -- the line format ----------------------------------------------------------

void append_event_line(std::string& out, const event_fields& ev) {
  out.append(R"({"time":")");
  append_iso_time(out, ev.time);
  out.append(R"(","type":)");
  append_json_string(out, ev.type);
  out.append(R"(,"runId":)");
  append_json_string(out, ev.run_id);
  if (!ev.task_id.empty()) {
    out.append(R"(,"taskId":)");
    append_json_string(out, ev.task_id);
  }
  if (!ev.message.empty()) {
    out.append(R"(,"message":)");
    append_json_string(out, ev.message);
  }
  if (!ev.data_json.empty()) {
    out.append(R"(,"data":)");
    // Built from worker reports too: a stray byte must not cost the log.
    append_valid_utf8(out, ev.data_json);
  }
  out.append(R"(,"metadata":{"seq":)");
  char num[24];
  auto [end, ec] = std::to_chars(num, num + sizeof(num), ev.seq);
  out.append(num, static_cast<size_t>(end - num));
  out.append(R"(,"provenance":"team_runner")");
  if ((ev.trace_hi | ev.trace_lo) != 0) {
    out.append(R"(,"traceId":")");
    append_hex16(out, ev.trace_hi);
    append_hex16(out, ev.trace_lo);
    out.append(R"(","spanId":")");
    append_hex16(out, ev.span_id);
    out.push_back('"');
    if (ev.parent_span_id != 0) {
      out.append(R"(,"parentSpanId":")");
      append_hex16(out, ev.parent_span_id);
      out.push_back('"');
    }
  }
  out.append("}}\n");
}

// -- durability policy --------------------------------------------------------

const char* to_string(fsync_policy x) noexcept {
  switch (x) {
    case fsync_policy::none:
      return "none";
    case fsync_policy::batch:
      return "batch";
    case fsync_policy::always:
      return "always";
  }
  return "???";
}

bool from_string(std::string_view str, fsync_policy& x) noexcept {
  if (str == "none")
    x = fsync_policy::none;
  else if (str == "batch")
    x = fsync_policy::batch;
  else if (str == "always")
    x = fsync_policy::always;
  else
    return false;
  return true;
}

// -- the writer ---------------------------------------------------------------

namespace {

[[noreturn]] void fail(std::string_view what, const fs::path& path, int err) {
  throw io_error(
      fmt::format("{} {}: {}", what, path.string(), std::strerror(err)));
}

} // namespace

event_log_writer event_log_writer::open(const fs::path& path,
                                        log_position trusted) {
  event_log_writer result;
  result.path_ = path;
  auto dir = path.parent_path();
  bool created = false;
  if (!dir.empty()) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec)
      throw io_error(fmt::format("cannot create directory {}: {}", dir.string(),
                                 ec.message()));
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    created = fd >= 0;
  }
  if (fd < 0)
    fail("cannot open event log", path, errno);
  result.fd_ = fd;
  if (created) {
    fsync_directory(dir);
    return result;
  }
  // Validate every line after the trusted prefix and find the last seq; cut
  // a torn tail.
  auto buf = detail::load_padded(path, trusted.offset);
  simdjson::ondemand::parser parser;
  auto res = detail::scan_events(
      parser, buf.data(), buf.size(), buf.size() + simdjson::SIMDJSON_PADDING,
      path.string(), true, 0, static_cast<size_t>(trusted.lines),
      [](const event_view&) {});
  result.last_seq_ = std::max(trusted.seq, res.last_seq);
  result.bytes_ = trusted.offset + buf.size();
  if (res.torn_tail) {
    auto& r = result.repair_;
    r.repaired = true;
    r.truncated_bytes = buf.size() - res.valid_end;
    r.line = res.torn_line;
    r.reason = std::move(res.torn_reason);
    auto valid_end = trusted.offset + res.valid_end;
    if (::ftruncate(fd, static_cast<off_t>(valid_end)) != 0)
      fail("cannot truncate torn tail of", path, errno);
    if (::fdatasync(fd) != 0)
      fail("cannot fdatasync", path, errno);
    result.bytes_ = valid_end;
  }
  return result;
}

event_log_writer::event_log_writer(event_log_writer&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), bytes_(other.bytes_),
      last_seq_(other.last_seq_), repair_(std::move(other.repair_)),
      path_(std::move(other.path_)) {
  // nop
}

event_log_writer&
event_log_writer::operator=(event_log_writer&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    bytes_ = other.bytes_;
    last_seq_ = other.last_seq_;
    repair_ = std::move(other.repair_);
    path_ = std::move(other.path_);
  }
  return *this;
}

event_log_writer::~event_log_writer() {
  if (fd_ >= 0)
    ::close(fd_);
}

void event_log_writer::append(std::string_view bytes,
                              uint64_t last_seq_in_bytes) {
  if (auto err = write_all(fd_, bytes); err != 0) {
    // Leave no partial line behind: the next open would otherwise have to
    // repair it, and a later append would glue onto it.
    auto rc = ::ftruncate(fd_, static_cast<off_t>(bytes_));
    static_cast<void>(rc); // the write error is the one to report
    fail("cannot append to event log", path_, err);
  }
  bytes_ += bytes.size();
  if (last_seq_in_bytes != 0)
    last_seq_ = last_seq_in_bytes;
}

void event_log_writer::sync() {
  if (::fdatasync(fd_) != 0)
    fail("cannot fdatasync", path_, errno);
}

} // namespace crew
