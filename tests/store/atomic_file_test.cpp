#include "store/atomic_file.hpp"

#include <doctest/doctest.h>

#include "messages/errors.hpp"
#include "tests/support/temp_dir.hpp"

using namespace crew;
namespace fs = std::filesystem;

namespace {

size_t count_entries(const fs::path& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator{dir})
    ++n;
  return n;
}

} // namespace

TEST_CASE("atomic_file: writes, replaces and leaves no temp files") {
  test::temp_dir tmp;
  auto file = tmp.path / "sub" / "dir" / "manifest.json";
  write_file_atomic(file, "first\n");
  CHECK_EQ(read_file(file), "first\n");
  write_file_atomic(file, "second", false);
  CHECK_EQ(read_file(file), "second");
  write_file_atomic(file, "");
  CHECK_EQ(read_file(file), "");
  CHECK_EQ(count_entries(file.parent_path()), 1u);
}

TEST_CASE("atomic_file: reading a missing file names it") {
  test::temp_dir tmp;
  auto file = tmp.path / "nope.json";
  try {
    read_file(file);
    FAIL("no exception");
  } catch (const input_error& e) {
    CHECK_EQ(e.code(), errc::not_found);
    CHECK(std::string{e.what()}.find("nope.json") != std::string::npos);
  }
}

TEST_CASE("atomic_file: a failed write throws io_error and removes the temp") {
  test::temp_dir tmp;
  // the target is a non-empty directory: rename must fail
  auto target = tmp.path / "dir";
  fs::create_directories(target / "x");
  try {
    write_file_atomic(target, "content");
    FAIL("no exception");
  } catch (const io_error& e) {
    CHECK(std::string{e.what()}.find("dir") != std::string::npos);
  }
  CHECK_EQ(count_entries(tmp.path), 1u);
}

TEST_CASE("atomic_file: a swapped write replaces the file and keeps the "
          "previous content in the spare, whatever the sizes") {
  test::temp_dir dir;
  auto path = dir.path / "state" / "tasks.json";
  write_file_swap(path, "first, rather long content\n"); // creates the dirs
  CHECK_EQ(read_file(path), "first, rather long content\n");
  CHECK_FALSE(fs::exists(spare_path(path))); // renamed onto the file
  write_file_swap(path, "second\n");
  CHECK_EQ(read_file(path), "second\n");
  CHECK_EQ(read_file(spare_path(path)), "first, rather long content\n");
  write_file_swap_with(path, [](const content_sink& sink) {
    sink("thi");
    sink("rd\n");
  });
  CHECK_EQ(read_file(path), "third\n"); // cut to size, not "third\nlong…"
  CHECK_EQ(read_file(spare_path(path)), "second\n");
  CHECK_EQ(spare_path(path).filename(), ".tasks.json.spare");
  // only the file and its spare: no temporaries left behind
  CHECK_EQ(std::distance(fs::directory_iterator{path.parent_path()},
                         fs::directory_iterator{}),
           2);
}
