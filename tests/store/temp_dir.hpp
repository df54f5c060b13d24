#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace crew::test {

/// A fresh directory under the system temp dir, removed on destruction.
struct temp_dir {
  std::filesystem::path path;

  temp_dir() {
    auto tmpl = (std::filesystem::temp_directory_path() / "crew-store-XXXXXX")
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

} // namespace crew::test
