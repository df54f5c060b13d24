#pragma once

// Internal to store/: the line walker shared by the event log reader and the
// writer's open-time validation. Includes simdjson; never include it from a
// public header.

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>

#include <fmt/format.h>
#include <simdjson.h>

#include "messages/errors.hpp"
#include "store/replay.hpp"

namespace crew::detail {

/// Reads the file from byte `offset` to its end into a simdjson-padded
/// buffer. Throws `input_error(errc::not_found)` for a missing file,
/// `io_error` otherwise.
simdjson::padded_string load_padded(const std::filesystem::path& path,
                                    uint64_t offset = 0);

/// Parses one event line `[p, p + n)` whose buffer is readable up to
/// `p + cap` (cap >= n + SIMDJSON_PADDING). Fills `ev` (but not `ev.line`).
simdjson::error_code parse_event_line(simdjson::ondemand::parser& parser,
                                      const char* p, size_t n, size_t cap,
                                      event_view& ev);

/// The outcome of a scan.
struct scan_result {
  uint64_t events = 0;   ///< callbacks made
  uint64_t last_seq = 0; ///< highest seq of all valid lines
  uint64_t lines = 0;    ///< complete valid event lines
  bool torn_tail = false;
  size_t torn_line = 0;
  std::string torn_reason;
  size_t valid_end = 0; ///< byte offset after the last valid line
};

inline bool is_blank(const char* first, const char* last) noexcept {
  for (; first != last; ++first)
    if (*first != ' ' && *first != '\t' && *first != '\r')
      return false;
  return true;
}

inline bool is_blank_tail(const char* first, const char* last) noexcept {
  for (; first != last; ++first)
    if (*first != ' ' && *first != '\t' && *first != '\r' && *first != '\n')
      return false;
  return true;
}

/// Walks the lines of `buf[0, len)` (readable up to `cap` bytes), calling
/// `fn(const event_view&)` for every valid event with `seq > since_seq`.
/// `line_base` lines precede the buffer in the file (for line numbers).
/// Throws `corrupt_log` for a damaged middle line, and for a torn tail
/// unless `tolerate_torn_tail`.
template <class F>
scan_result scan_events(simdjson::ondemand::parser& parser, const char* buf,
                        size_t len, size_t cap, const std::string& path_text,
                        bool tolerate_torn_tail, uint64_t since_seq,
                        size_t line_base, F&& fn) {
  scan_result res;
  event_view ev;
  size_t pos = 0;
  size_t line = line_base;
  while (pos < len) {
    ++line;
    const char* first = buf + pos;
    auto* nl = static_cast<const char*>(std::memchr(first, '\n', len - pos));
    const char* last = nl ? nl : buf + len;
    size_t next = nl ? static_cast<size_t>(nl - buf) + 1 : len;
    if (is_blank(first, last)) {
      pos = next;
      if (nl)
        res.valid_end = next;
      continue;
    }
    auto torn = [&](std::string reason) {
      if (!tolerate_torn_tail)
        throw input_error(errc::corrupt_log,
                          fmt::format("{}:{}: torn final line ({})", path_text,
                                      line, reason));
      res.torn_tail = true;
      res.torn_line = line;
      res.torn_reason = std::move(reason);
    };
    if (!nl) {
      torn("no trailing newline");
      break;
    }
    auto n = static_cast<size_t>(last - first);
    auto err = parse_event_line(parser, first, n, cap - pos, ev);
    if (err) {
      if (is_blank_tail(buf + next, buf + len)) {
        torn(fmt::format("unparsable last line: {}",
                         simdjson::error_message(err)));
        break;
      }
      throw input_error(errc::corrupt_log,
                        fmt::format("{}:{}: unparsable event ({})", path_text,
                                    line, simdjson::error_message(err)));
    }
    ++res.lines;
    if (ev.seq > res.last_seq)
      res.last_seq = ev.seq;
    res.valid_end = next;
    pos = next;
    if (ev.seq > since_seq || (since_seq == 0)) {
      ev.line = line;
      ++res.events;
      fn(static_cast<const event_view&>(ev));
    }
  }
  return res;
}

} // namespace crew::detail
