#include "store/utf8.hpp"

#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace crew {

namespace {

bool is_continuation(char c) noexcept {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

/// The first byte at or after `p` that is not ASCII (or `end`), eight bytes
/// at a time.
const char* skip_ascii(const char* p, const char* end) noexcept {
  while (end - p >= 8) {
    uint64_t word;
    std::memcpy(&word, p, sizeof(word));
    if ((word & 0x8080808080808080ull) != 0)
      break;
    p += 8;
  }
  while (p != end && static_cast<unsigned char>(*p) < 0x80)
    ++p;
  return p;
}

/// What may follow a lead byte (Unicode Table 3-7): how many trailing bytes,
/// and the range of the first of them (narrower after E0, ED, F0 and F4: no
/// overlong forms, no surrogates, nothing above U+10FFFF). `trail` is 0 for
/// ASCII and for the bytes that never start a character (80..C1, F5..FF).
struct lead_byte {
  uint8_t trail = 0;
  uint8_t lo = 0x80;
  uint8_t hi = 0xBF;
};

constexpr std::array<lead_byte, 256> lead_bytes = [] {
  std::array<lead_byte, 256> t{};
  // {first, last, trail, lo, hi}
  constexpr uint8_t ranges[][5] = {
    {0xC2, 0xDF, 1, 0x80, 0xBF}, {0xE0, 0xE0, 2, 0xA0, 0xBF},
    {0xE1, 0xEC, 2, 0x80, 0xBF}, {0xED, 0xED, 2, 0x80, 0x9F},
    {0xEE, 0xEF, 2, 0x80, 0xBF}, {0xF0, 0xF0, 3, 0x90, 0xBF},
    {0xF1, 0xF3, 3, 0x80, 0xBF}, {0xF4, 0xF4, 3, 0x80, 0x8F},
  };
  for (auto& r : ranges)
    for (int b = r[0]; b <= r[1]; ++b)
      t[static_cast<size_t>(b)] = {r[2], r[3], r[4]};
  return t;
}();

} // namespace

int utf8_char_length(const char* p, const char* end) noexcept {
  auto lead = lead_bytes[static_cast<unsigned char>(*p)];
  if (lead.trail == 0)
    return static_cast<unsigned char>(*p) < 0x80 ? 1 : -1;
  auto lo = lead.lo;
  auto hi = lead.hi;
  for (int k = 1; k <= lead.trail; ++k) {
    if (k >= end - p)
      return -k; // truncated
    auto b = static_cast<unsigned char>(p[k]);
    if (b < lo || b > hi)
      return -k;
    lo = 0x80;
    hi = 0xBF;
  }
  return lead.trail + 1;
}

size_t find_invalid_utf8(std::string_view s) noexcept {
  const char* first = s.data();
  const char* last = first + s.size();
  const char* p = skip_ascii(first, last);
  while (p != last) {
    auto n = utf8_char_length(p, last);
    if (n < 0)
      return static_cast<size_t>(p - first);
    p = skip_ascii(p + n, last);
  }
  return std::string_view::npos;
}

void append_valid_utf8(std::string& out, std::string_view s) {
  for (;;) {
    auto bad = find_invalid_utf8(s);
    if (bad == std::string_view::npos) {
      out.append(s);
      return;
    }
    out.append(s.data(), bad);
    out.append(utf8_replacement);
    auto n = utf8_char_length(s.data() + bad, s.data() + s.size());
    s.remove_prefix(bad + static_cast<size_t>(-n));
  }
}

std::string valid_utf8(std::string_view s) {
  if (is_valid_utf8(s))
    return std::string{s};
  std::string out;
  out.reserve(s.size() + 8);
  append_valid_utf8(out, s);
  return out;
}

size_t utf8_prefix(std::string_view s, size_t n) noexcept {
  if (n >= s.size())
    return s.size();
  // s[n] is the first byte cut off: step back over the continuation bytes
  // before it (at most three) to the start of its character.
  auto start = n;
  for (int k = 0; k < 3 && start > 0 && is_continuation(s[start]); ++k)
    --start;
  if (start == n)
    return n;
  // Cut before that character if it reaches past n; stray continuation
  // bytes (ill-formed anyway) are cut where they stand.
  auto len = utf8_char_length(s.data() + start, s.data() + s.size());
  return start + static_cast<size_t>(std::abs(len)) > n ? start : n;
}

size_t utf8_suffix_start(std::string_view s, size_t n) noexcept {
  if (n >= s.size())
    return 0;
  // Skip the rest of a character cut at its start (at most three bytes).
  auto pos = s.size() - n;
  for (int k = 0; k < 3 && pos < s.size() && is_continuation(s[pos]); ++k)
    ++pos;
  return pos;
}

} // namespace crew
