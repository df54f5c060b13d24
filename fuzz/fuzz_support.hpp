#pragma once

// Shared by the libFuzzer harnesses in fuzz/ (see docs/testing.md).
//
// The rule every harness enforces: the code under test may reject an input
// only with the error types its header documents (crew::input_error, and
// where documented crew::io_error). Any other exception escaping it is a
// bug and aborts the process, which libFuzzer reports as a crash and saves
// as `crash-<sha1>`. ASan and UBSan (built with -fno-sanitize-recover)
// abort on memory errors and undefined behaviour the same way.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

#include <unistd.h>

#include "messages/errors.hpp"

namespace crew::fuzz {

/// Aborts with a message naming `what` (and the exception, if any).
[[noreturn]] inline void crash(std::string_view what, const char* detail = "") {
  std::fprintf(stderr, "\n==crew-fuzz== %.*s %s\n", static_cast<int>(what.size()),
               what.data(), detail);
  std::fflush(stderr);
  std::abort();
}

/// Asserts a property of the code under test.
inline void check(bool ok, std::string_view what) {
  if (!ok)
    crash("property violated:", std::string{what}.c_str());
}

/// Runs `fn`; returns false if it threw `input_error` (an accepted way to
/// reject input), true if it returned. `io_ok` also accepts `io_error`.
/// Any other exception aborts.
template <class F>
bool guarded(F&& fn, bool io_ok = false) {
  try {
    fn();
    return true;
  } catch (const input_error& e) {
    if (std::string_view{e.what()}.empty())
      crash("input_error without a message");
    return false;
  } catch (const io_error& e) {
    if (io_ok)
      return false;
    crash("unexpected io_error:", e.what());
  } catch (const std::exception& e) {
    auto text = std::string{typeid(e).name()} + ": " + e.what();
    crash("unexpected exception", text.c_str());
  } catch (...) {
    crash("unexpected non-std exception");
  }
}

/// A private scratch directory for the process, removed at exit.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    std::filesystem::path base = "/dev/shm";
    std::error_code ec;
    if (!std::filesystem::is_directory(base, ec))
      base = std::filesystem::temp_directory_path();
    auto tmpl = (base / "crew-fuzz-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr)
      crash("cannot create a scratch directory");
    std::filesystem::path path = tmpl;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return path;
  }();
  return dir;
}

/// Writes `bytes` to `path` (truncating it).
inline void write_file(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out)
    crash("cannot write", path.c_str());
}

/// Splits `data` at every line `%%` (the separator the seed files use for
/// inputs made of several documents), returning at most `max_parts` parts
/// (the last one keeps the rest).
inline std::vector<std::string_view> split_parts(std::string_view data,
                                                 size_t max_parts) {
  constexpr std::string_view sep = "\n%%\n";
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < max_parts) {
    auto pos = data.find(sep);
    if (pos == std::string_view::npos)
      break;
    parts.push_back(data.substr(0, pos));
    data.remove_prefix(pos + sep.size());
  }
  parts.push_back(data);
  return parts;
}

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

} // namespace crew::fuzz
