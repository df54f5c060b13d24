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
