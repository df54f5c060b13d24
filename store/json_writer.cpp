#include "store/json_writer.hpp"

#include <array>
#include <cstdint>

#include "store/utf8.hpp"

namespace crew {

namespace {

// What a byte needs: nothing (copied as it is), an escape sequence, or a
// UTF-8 check (every byte above 0x7F).
enum : uint8_t { plain = 0, escape = 1, non_ascii = 2 };

constexpr std::array<uint8_t, 256> byte_class = [] {
  std::array<uint8_t, 256> t{};
  for (int i = 0; i < 0x20; ++i)
    t[i] = escape;
  t['"'] = escape;
  t['\\'] = escape;
  for (int i = 0x80; i < 0x100; ++i)
    t[i] = non_ascii;
  return t;
}();

void append_escape(std::string& out, unsigned char c) {
  static constexpr char hex[] = "0123456789abcdef";
  switch (c) {
    case '"':
      out.append("\\\"", 2);
      break;
    case '\\':
      out.append("\\\\", 2);
      break;
    case '\b':
      out.append("\\b", 2);
      break;
    case '\f':
      out.append("\\f", 2);
      break;
    case '\n':
      out.append("\\n", 2);
      break;
    case '\r':
      out.append("\\r", 2);
      break;
    case '\t':
      out.append("\\t", 2);
      break;
    default: {
      char buf[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
      out.append(buf, 6);
    }
  }
}

} // namespace

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  const char* first = s.data();
  const char* last = first + s.size();
  const char* run = first;
  for (const char* i = first; i != last; ++i) {
    auto c = static_cast<unsigned char>(*i);
    if (byte_class[c] == plain)
      continue;
    if (byte_class[c] == escape) {
      out.append(run, static_cast<size_t>(i - run));
      append_escape(out, c);
      run = i + 1;
      continue;
    }
    auto n = utf8_char_length(i, last);
    if (n < 0) { // ill-formed: one U+FFFD for the maximal subpart
      out.append(run, static_cast<size_t>(i - run));
      out.append(utf8_replacement);
      n = -n;
      run = i + n;
    }
    i += n - 1;
  }
  out.append(run, static_cast<size_t>(last - run));
  out.push_back('"');
}

} // namespace crew
