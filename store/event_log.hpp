#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace crew {

// -- the line format ----------------------------------------------------------

/// The fields of one event record (inventory §1.12). All views must stay valid
/// for the duration of `append_event_line`.
struct event_fields {
  std::string_view type; ///< e.g. `task.completed`
  std::string_view run_id;
  std::string_view task_id;   ///< omitted from the line when empty
  std::string_view message;   ///< omitted from the line when empty
  std::string_view data_json; ///< raw JSON object text, omitted when empty
  uint64_t seq = 0;
  std::chrono::system_clock::time_point time;
  /// Correlation (metadata.traceId/spanId/parentSpanId as hex); written
  /// when `trace_hi | trace_lo` is non-zero, parent when non-zero.
  uint64_t trace_hi = 0;
  uint64_t trace_lo = 0;
  uint64_t span_id = 0;
  uint64_t parent_span_id = 0;
};

/// Appends one event line, terminated by `\n`, to `out`, in pi-crew's key
/// order: `{"time":…,"type":…,"runId":…,"taskId":…,"message":…,"data":…,
/// "metadata":{"seq":N,"provenance":"team_runner","traceId":…,"spanId":…,
/// "parentSpanId":…}}`. The hot path: it
/// allocates nothing beyond growing `out`. `data_json` must be valid JSON; it
/// is copied verbatim, but for ill-formed UTF-8, which becomes U+FFFD, so the
/// line is valid UTF-8 whatever the strings held.
void append_event_line(std::string& out, const event_fields& ev);

// -- durability policy --------------------------------------------------------

/// When the owner of an event log calls `event_log_writer::sync`.
enum class fsync_policy : uint8_t {
  none = 1, ///< never; the OS flushes eventually
  batch,    ///< once per group of appended events (group commit)
  always,   ///< after every event
};

/// Returns `none`, `batch` or `always`.
const char* to_string(fsync_policy x) noexcept;

/// Parses a policy name; returns false on an unknown name.
bool from_string(std::string_view str, fsync_policy& x) noexcept;

// -- the writer ---------------------------------------------------------------

/// What `event_log_writer::open` did to a damaged tail of the log.
struct repair_info {
  bool repaired = false;
  uint64_t truncated_bytes = 0; ///< bytes cut from the end of the file
  size_t line = 0;              ///< 1-based number of the torn line
  std::string reason;           ///< e.g. "no trailing newline"
};

/// A prefix of a log that a replay has already validated: `open` checks only
/// the bytes after it.
struct log_position {
  uint64_t offset = 0; ///< bytes of the prefix (ends with a complete line)
  uint64_t seq = 0;    ///< the last seq in the prefix
  uint64_t lines = 0;  ///< lines in the prefix (for line numbers in errors)
};

/// The single appender of one `events.jsonl`. Owns the file descriptor
/// (opened with O_APPEND); move-only. Appends are plain `write` calls;
/// durability is the caller's choice through `sync` (see `fsync_policy`).
class event_log_writer {
public:
  /// Opens (creating it and its parent directories if missing) the log at
  /// `path`, validates every line and finds the last seq. A torn or
  /// unparsable *final* line is cut off (the file is truncated to the end of
  /// the last complete valid line) and described by `repair()`. A damaged
  /// line followed by more lines throws
  /// `input_error(errc::corrupt_log, "<path>:<line>: unparsable event (…)")`.
  /// With a `trusted` prefix, only what follows it is read and checked.
  static event_log_writer open(const std::filesystem::path& path,
                               log_position trusted = {});

  event_log_writer(event_log_writer&& other) noexcept;
  event_log_writer& operator=(event_log_writer&& other) noexcept;
  event_log_writer(const event_log_writer&) = delete;
  event_log_writer& operator=(const event_log_writer&) = delete;
  ~event_log_writer();

  /// The highest seq in the log (0 for an empty log), updated by `append`
  /// when the caller passes the seq of its last event.
  uint64_t last_seq() const noexcept { return last_seq_; }

  /// What `open` repaired, if anything.
  const repair_info& repair() const noexcept { return repair_; }

  /// Appends `bytes` (whole `\n`-terminated lines) with one write loop,
  /// retrying on EINTR and partial writes. `last_seq_in_bytes`, if not 0,
  /// becomes `last_seq()`. On failure (ENOSPC, EIO, …) truncates the file
  /// back to its size before the call, so no half-written line remains, and
  /// throws `io_error` naming the path.
  void append(std::string_view bytes, uint64_t last_seq_in_bytes = 0);

  /// Makes everything appended so far durable (fdatasync). Throws `io_error`.
  void sync();

  /// The size of the log in bytes (all complete lines).
  uint64_t bytes() const noexcept { return bytes_; }

  /// The path of the log.
  const std::filesystem::path& path() const noexcept { return path_; }

private:
  event_log_writer() = default;

  int fd_ = -1;
  uint64_t bytes_ = 0;
  uint64_t last_seq_ = 0;
  repair_info repair_;
  std::filesystem::path path_;
};

} // namespace crew
