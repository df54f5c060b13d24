#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace crew {

/// Whether `c` is ASCII white space: space, `\t`, `\n`, `\r`, `\f` or `\v`.
inline bool is_ascii_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
         || c == '\v';
}

/// A JSON text after `close_json`, with what it changed.
struct closed_json {
  /// The text with what was left open closed; it may still not parse.
  std::string text;
  /// What was changed, one sentence per kind of change ("closed a truncated
  /// string", "removed 2 trailing comma(s)", ...); empty if nothing was.
  std::vector<std::string> notes;
};

/// Closes what a truncated or sloppy JSON text left open. It tracks strings
/// and the expected token of each open object/array, so that it can close a
/// cut-off string, drop a dangling `,`, complete a dangling key or value with
/// `null`, drop stray closers and append the missing `}`/`]`.
closed_json close_json(std::string_view raw);

} // namespace crew
