#pragma once

#include <cstddef>
#include <string>
#include <string_view>

// Text that reaches crew's files (events, plan, snapshots) must be UTF-8:
// simdjson rejects a line with one bad byte, and an event log with an
// unreadable line is a run no command can read. Worker output is neither
// trusted nor cut politely, so every tail is cut on character boundaries here
// and every string is repaired before it is written.

namespace crew {

/// U+FFFD REPLACEMENT CHARACTER in UTF-8.
inline constexpr std::string_view utf8_replacement = "\xEF\xBF\xBD";

/// At `p` (with `p < end`): the length of the well-formed UTF-8 character
/// that starts there (1 to 4, Unicode Table 3-7: no overlong forms, no
/// surrogates, nothing above U+10FFFF) as a positive number, or the length of
/// the maximal ill-formed subpart there (1 to 3) as a negative one. Each
/// ill-formed subpart becomes one U+FFFD, as the Unicode standard recommends.
int utf8_char_length(const char* p, const char* end) noexcept;

/// The offset of the first byte of `s` that is not part of a well-formed
/// UTF-8 character, or `npos`. ASCII is checked eight bytes at a time.
size_t find_invalid_utf8(std::string_view s) noexcept;

/// Whether `s` is well-formed UTF-8.
inline bool is_valid_utf8(std::string_view s) noexcept {
  return find_invalid_utf8(s) == std::string_view::npos;
}

/// Appends `s` to `out`, each ill-formed subpart replaced by U+FFFD.
void append_valid_utf8(std::string& out, std::string_view s);

/// `s` with each ill-formed subpart replaced by U+FFFD; `s` itself (one copy,
/// one scan) when it is well-formed already.
std::string valid_utf8(std::string_view s);

/// The length of the longest prefix of `s` of at most `n` bytes that does not
/// end inside a character (for a head: `s.substr(0, utf8_prefix(s, n))`).
size_t utf8_prefix(std::string_view s, size_t n) noexcept;

/// The start of the longest suffix of `s` of at most `n` bytes that does not
/// begin inside a character (for a tail: `s.substr(utf8_suffix_start(s, n))`).
size_t utf8_suffix_start(std::string_view s, size_t n) noexcept;

} // namespace crew
