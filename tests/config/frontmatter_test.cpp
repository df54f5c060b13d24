#include "config/frontmatter.hpp"

#include <doctest/doctest.h>

using namespace crew;

TEST_CASE("frontmatter: reads key/value lines and the body after the block") {
  auto fm = parse_frontmatter("---\nname: explorer\nmodel: m1\n---\nHello\nworld\n");
  CHECK(fm.present);
  CHECK_EQ(frontmatter_get(fm, "name"), "explorer");
  CHECK_EQ(frontmatter_get(fm, "model"), "m1");
  CHECK_EQ(fm.body, "Hello\nworld\n");
  CHECK_EQ(fm.body_line, 5u);
  CHECK_EQ(frontmatter_line(fm, "model"), 3u);
}

TEST_CASE("frontmatter: CRLF files parse like LF files") {
  auto fm = parse_frontmatter("---\r\nname: x\r\ntools: a, b\r\n---\r\nbody\r\nline2\r\n");
  CHECK(fm.present);
  CHECK_EQ(frontmatter_get(fm, "name"), "x");
  CHECK_EQ(frontmatter_get(fm, "tools"), "a, b");
  CHECK_EQ(fm.body, "body\nline2\n");
}

TEST_CASE("frontmatter: content without an opening delimiter is all body") {
  auto fm = parse_frontmatter("name: x\n---\nbody\n");
  CHECK_FALSE(fm.present);
  CHECK(fm.fields.empty());
  CHECK_EQ(fm.body, "name: x\n---\nbody\n");
  CHECK_EQ(fm.body_line, 1u);
}

TEST_CASE("frontmatter: an unclosed block is not frontmatter") {
  auto fm = parse_frontmatter("---\nname: x\nbody without closing\n");
  CHECK_FALSE(fm.present);
  CHECK_EQ(frontmatter_get(fm, "name"), "");
}

TEST_CASE("frontmatter: skips comments, blank lines and lines without a colon") {
  auto fm = parse_frontmatter("---\n# name: hidden\n\n  # indented comment\nnot a field\nname: shown\n---\n");
  REQUIRE_EQ(fm.fields.size(), 1u);
  CHECK_EQ(frontmatter_get(fm, "name"), "shown");
  CHECK_EQ(fm.body, "");
}

TEST_CASE("frontmatter: a value keeps everything after the first colon") {
  auto fm = parse_frontmatter("---\ncommand: echo a:b | sed 's/:/-/'\nurl:  http://x:8080/p  \n---\n");
  CHECK_EQ(frontmatter_get(fm, "command"), "echo a:b | sed 's/:/-/'");
  CHECK_EQ(frontmatter_get(fm, "url"), "http://x:8080/p");
}

TEST_CASE("frontmatter: a repeated key takes the later value") {
  auto fm = parse_frontmatter("---\nmodel: a\nmodel: b\n---\n");
  CHECK_EQ(frontmatter_get(fm, "model"), "b");
  CHECK(frontmatter_has(fm, "model"));
  CHECK_FALSE(frontmatter_has(fm, "tools"));
}

TEST_CASE("frontmatter: an empty value is present but empty") {
  auto fm = parse_frontmatter("---\nextensions:\n---\n");
  CHECK(frontmatter_has(fm, "extensions"));
  CHECK_EQ(frontmatter_get(fm, "extensions"), "");
}

TEST_CASE("frontmatter: split_csv trims, drops empties and de-duplicates in order") {
  CHECK_EQ(split_csv(" read, grep ,, find,read ,ls,"),
           std::vector<std::string>{"read", "grep", "find", "ls"});
  CHECK(split_csv("").empty());
  CHECK(split_csv(" , ,").empty());
  CHECK_EQ(split_csv("one"), std::vector<std::string>{"one"});
}
