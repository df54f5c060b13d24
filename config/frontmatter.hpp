#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace crew {

/// The result of splitting a resource file into its frontmatter and body
/// (inventory §3.1).
struct frontmatter {
  /// True iff the content opened with `---` and a closing `---` line was found.
  bool present = false;
  /// `key: value` lines in file order (keys and values trimmed, raw strings).
  std::vector<std::pair<std::string, std::string>> fields;
  /// 1-based line of each entry of `fields` in the file.
  std::vector<size_t> field_lines;
  /// Everything after the closing delimiter (CRLF normalized, not trimmed).
  std::string body;
  /// 1-based line in the file where the body starts.
  size_t body_line = 1;
};

/// Parses pi-crew's minimalist frontmatter: only if the content starts with
/// `---\n`; the block ends at the first `\n---\n` after position 4; each
/// non-blank line not starting with `#` is split at its first `:`. Lines
/// without a colon are ignored. CRLF line endings are normalized to LF.
frontmatter parse_frontmatter(std::string_view content);

/// Returns the value of `key` (the last occurrence wins, as in pi-crew's
/// object built from lines) or an empty view if absent.
std::string_view frontmatter_get(const frontmatter& fm, std::string_view key);

/// Returns whether `key` occurs in the frontmatter (even with an empty value).
bool frontmatter_has(const frontmatter& fm, std::string_view key);

/// Returns the 1-based file line of the last occurrence of `key`, or 0.
size_t frontmatter_line(const frontmatter& fm, std::string_view key);

/// Splits a CSV field: split on `,`, trim, drop empties, de-duplicate keeping
/// the first occurrence's position.
std::vector<std::string> split_csv(std::string_view str);

/// Returns `str` without leading and trailing whitespace.
std::string_view trim(std::string_view str) noexcept;

} // namespace crew
