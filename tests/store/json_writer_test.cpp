#include "store/json_writer.hpp"

#include <doctest/doctest.h>

using namespace crew;

TEST_CASE("json_writer: passes plain text through in quotes") {
  CHECK_EQ(json_string("hello world"), R"("hello world")");
  CHECK_EQ(json_string(""), R"("")");
}

TEST_CASE("json_writer: escapes quotes and backslashes") {
  CHECK_EQ(json_string(R"(say "hi" \ bye)"), R"("say \"hi\" \\ bye")");
}

TEST_CASE("json_writer: escapes control characters") {
  CHECK_EQ(json_string("a\nb\tc\rd\be\ff"), R"("a\nb\tc\rd\be\ff")");
  CHECK_EQ(json_string(std::string_view("\x01\x1f\0", 3)),
           R"("\u0001\u001f\u0000")");
}

TEST_CASE("json_writer: passes UTF-8 through unchanged") {
  CHECK_EQ(json_string("héllo — 世界 🚀"), "\"héllo — 世界 🚀\"");
  CHECK_EQ(json_string("\x7f"), "\"\x7f\"");
}

TEST_CASE("json_writer: appends to existing content") {
  std::string out = "x=";
  append_json_string(out, "a\"b");
  CHECK_EQ(out, R"(x="a\"b")");
}

TEST_CASE("json_writer: replaces ill-formed UTF-8 with U+FFFD") {
  // a worker's Latin-1, stray and cut bytes must not reach the log as they are
  CHECK_EQ(json_string("caf\xE9"), "\"caf\xEF\xBF\xBD\"");
  CHECK_EQ(json_string("\xFF\xFE"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");
  // a € cut in half at either end, between escapes
  CHECK_EQ(json_string("\x82\xAC\n\xE2\x82"),
           "\"\xEF\xBF\xBD\xEF\xBF\xBD\\n\xEF\xBF\xBD\"");
  // overlong '"' and a surrogate: replaced, not decoded
  CHECK_EQ(json_string("\xC0\xA2"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");
  CHECK_EQ(json_string("\xED\xA0\x80"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");
  // well-formed neighbours are kept
  CHECK_EQ(json_string("\xE2\x82\xAC\xE2\x82\xE2\x82\xAC"),
           "\"\xE2\x82\xAC\xEF\xBF\xBD\xE2\x82\xAC\"");
}
