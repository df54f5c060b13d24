#include "store/utf8.hpp"

#include <string>

#include <doctest/doctest.h>

using namespace crew;

namespace {

constexpr std::string_view euro = "\xE2\x82\xAC"; // €, three bytes
constexpr std::string_view fffd = "\xEF\xBF\xBD";

std::string repeat(std::string_view s, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i)
    out += s;
  return out;
}

std::string bytes(std::initializer_list<unsigned char> xs) {
  std::string out;
  for (auto x : xs)
    out.push_back(static_cast<char>(x));
  return out;
}

} // namespace

TEST_CASE("utf8: well-formed text is valid") {
  CHECK(is_valid_utf8(""));
  CHECK(is_valid_utf8("plain ASCII, long enough for the 8-byte path"));
  CHECK(is_valid_utf8("héllo — 世界 🚀"));
  CHECK(is_valid_utf8(repeat(euro, 700)));
  CHECK(is_valid_utf8(bytes({0xF4, 0x8F, 0xBF, 0xBF}))); // U+10FFFF
  CHECK(is_valid_utf8(bytes({0xED, 0x9F, 0xBF})));       // U+D7FF
  CHECK(is_valid_utf8(std::string_view{"\0x", 2}));
}

TEST_CASE("utf8: finds the first ill-formed byte") {
  CHECK_EQ(find_invalid_utf8("abc\xFF"), 3u);
  CHECK_EQ(find_invalid_utf8(std::string(20, 'a') + "\x80"), 20u);
  CHECK_EQ(find_invalid_utf8("\xC3"), 0u);             // cut after the lead
  CHECK_EQ(find_invalid_utf8(bytes({0xC0, 0xAF})), 0u); // overlong '/'
  CHECK_EQ(find_invalid_utf8(bytes({0xE0, 0x80, 0xAF})), 0u); // overlong
  CHECK_EQ(find_invalid_utf8(bytes({0xED, 0xA0, 0x80})), 0u); // surrogate
  CHECK_EQ(find_invalid_utf8(bytes({0xF4, 0x90, 0x80, 0x80})), 0u); // > U+10FFFF
  CHECK_EQ(find_invalid_utf8(bytes({0xF5, 0x80, 0x80, 0x80})), 0u);
  CHECK_EQ(find_invalid_utf8(std::string{euro} + "x" + std::string{euro.substr(0, 2)}), 4u);
}

TEST_CASE("utf8: the length of a character or of an ill-formed subpart") {
  auto len = [](const std::string& s) {
    return utf8_char_length(s.data(), s.data() + s.size());
  };
  CHECK_EQ(len("a"), 1);
  CHECK_EQ(len("\xC3\xA9"), 2);
  CHECK_EQ(len(std::string{euro}), 3);
  CHECK_EQ(len("🚀"), 4);
  CHECK_EQ(len("\x80"), -1);
  CHECK_EQ(len("\xFF"), -1);
  CHECK_EQ(len("\xE2\x82"), -2);  // truncated: lead and one trailing byte
  CHECK_EQ(len("\xE2\x82x"), -2); // broken by an ASCII byte
  CHECK_EQ(len("\xF0\x9F\x9A"), -3);
  CHECK_EQ(len(bytes({0xE0, 0x80})), -1); // E0 80 can never be well-formed
}

TEST_CASE("utf8: ill-formed subparts become one U+FFFD each") {
  CHECK_EQ(valid_utf8("plain"), "plain");
  CHECK_EQ(valid_utf8("a\xFF" "b"), "a" + std::string{fffd} + "b");
  CHECK_EQ(valid_utf8("\xFF\xFE"), repeat(fffd, 2));
  // a cut € is one subpart; the following ASCII survives
  CHECK_EQ(valid_utf8("\xE2\x82x"), std::string{fffd} + "x");
  // Unicode's example (§3.9, U+FFFD substitution of maximal subparts)
  CHECK_EQ(valid_utf8(bytes({0x61, 0xF1, 0x80, 0x80, 0xE1, 0x80, 0xC2, 0x62,
                             0x80, 0x63, 0x80, 0xBF, 0x64})),
           "a" + repeat(fffd, 3) + "b" + std::string{fffd} + "c"
             + repeat(fffd, 2) + "d");
  CHECK_EQ(valid_utf8(bytes({0xED, 0xA0, 0x80})), repeat(fffd, 3));
  // Latin-1 "café"
  CHECK_EQ(valid_utf8("caf\xE9"), "caf" + std::string{fffd});
  CHECK(is_valid_utf8(valid_utf8(bytes({0xC0, 0x80, 0xF8, 0x88, 0x80}))));
  std::string out = "x";
  append_valid_utf8(out, "\x80y");
  CHECK_EQ(out, "x" + std::string{fffd} + "y");
}

TEST_CASE("utf8: a prefix cut never ends inside a character") {
  auto text = "ab" + std::string{euro} + "cd";
  CHECK_EQ(utf8_prefix(text, 100), text.size());
  CHECK_EQ(utf8_prefix(text, 2), 2u);
  CHECK_EQ(utf8_prefix(text, 3), 2u);
  CHECK_EQ(utf8_prefix(text, 4), 2u);
  CHECK_EQ(utf8_prefix(text, 5), 5u);
  CHECK_EQ(utf8_prefix(text, 0), 0u);
  auto euros = repeat(euro, 700);
  for (size_t n = 0; n < 40; ++n)
    CHECK(is_valid_utf8(std::string_view{euros}.substr(0, utf8_prefix(euros, n))));
  CHECK_EQ(utf8_prefix("🚀x", 3), 0u);
  // stray continuation bytes are cut where they stand
  CHECK_EQ(utf8_prefix("a\x80\x80\x80\x80\x80", 5), 5u);
}

TEST_CASE("utf8: a suffix cut never starts inside a character") {
  auto text = "ab" + std::string{euro} + "cd";
  CHECK_EQ(utf8_suffix_start(text, 100), 0u);
  CHECK_EQ(utf8_suffix_start(text, 2), 5u);
  CHECK_EQ(utf8_suffix_start(text, 3), 5u);
  CHECK_EQ(utf8_suffix_start(text, 4), 5u);
  CHECK_EQ(utf8_suffix_start(text, 5), 2u);
  CHECK_EQ(utf8_suffix_start(text, 0), text.size());
  // the reviewer's case: a 2 KiB tail of 700 € (2100 bytes)
  auto euros = repeat(euro, 700);
  auto start = utf8_suffix_start(euros, 2048);
  CHECK_EQ(start, 54u);
  CHECK(is_valid_utf8(std::string_view{euros}.substr(start)));
  for (size_t n = 0; n < 40; ++n)
    CHECK(is_valid_utf8(std::string_view{euros}.substr(utf8_suffix_start(euros, n))));
}
