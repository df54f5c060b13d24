#pragma once

#include <string>
#include <string_view>

namespace crew {

/// Appends `s` to `out` as a quoted JSON string. Escapes `"`, `\` and the
/// control characters below 0x20 (`\b \f \n \r \t` by name, the rest as
/// `\u00XX`); well-formed UTF-8 passes through unchanged, and each ill-formed
/// subpart (a stray byte, a cut or overlong sequence, a surrogate) becomes
/// U+FFFD, so the output is always valid UTF-8 whatever `s` holds (worker
/// output, for one). Runs of bytes that need no escaping are appended in bulk,
/// so the common case costs one scan and one copy.
void append_json_string(std::string& out, std::string_view s);

/// Returns `s` as a quoted, escaped JSON string.
inline std::string json_string(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

} // namespace crew
