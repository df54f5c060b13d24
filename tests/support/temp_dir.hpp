#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace crew::test {

/// A fresh directory under the system temp dir, removed on destruction.
struct temp_dir {
  std::filesystem::path path;

  explicit temp_dir(const char* prefix = "crew-test") {
    auto tmpl = (std::filesystem::temp_directory_path()
                 / (std::string{prefix} + "-XXXXXX"))
                  .string();
    path = ::mkdtemp(tmpl.data());
  }

  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }

  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
};

/// Reads a whole file into a string ("" if missing).
inline std::string slurp(const std::filesystem::path& path) {
  std::ifstream in{path, std::ios::binary};
  return {std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
}

/// Appends `bytes` to the file at `path`.
inline void append_to(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out{path, std::ios::binary | std::ios::app};
  out << bytes;
}

} // namespace crew::test
