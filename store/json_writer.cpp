#include "store/json_writer.hpp"

#include <array>
#include <cstdint>

namespace crew {

namespace {

// 1 for bytes that need an escape sequence, 0 for bytes copied as they are.
constexpr std::array<uint8_t, 256> needs_escape = [] {
  std::array<uint8_t, 256> t{};
  for (int i = 0; i < 0x20; ++i)
    t[i] = 1;
  t['"'] = 1;
  t['\\'] = 1;
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
    if (needs_escape[static_cast<unsigned char>(*i)]) {
      out.append(run, static_cast<size_t>(i - run));
      append_escape(out, static_cast<unsigned char>(*i));
      run = i + 1;
    }
  }
  out.append(run, static_cast<size_t>(last - run));
  out.push_back('"');
}

} // namespace crew
