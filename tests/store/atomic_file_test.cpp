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
