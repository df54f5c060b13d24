#include "store/atomic_file.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <stdio.h> // renameat2
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "messages/errors.hpp"

namespace crew {

namespace fs = std::filesystem;

namespace {

std::atomic<uint64_t> tmp_counter{0};

[[noreturn]] void fail(std::string_view what, const fs::path& path, int err) {
  throw io_error(
      fmt::format("{} {}: {}", what, path.string(), std::strerror(err)));
}

// Closes the fd on scope exit unless released.
struct fd_guard {
  int fd;
  ~fd_guard() {
    if (fd >= 0)
      ::close(fd);
  }
};

} // namespace

void fsync_directory(const fs::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(),
                  O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    fail("cannot open directory", dir, errno);
  fd_guard guard{fd};
  if (::fsync(fd) != 0 && errno != EINVAL)
    fail("cannot fsync directory", dir, errno);
}

int write_all(int fd, std::string_view bytes) noexcept {
  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    auto n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  return 0;
}

void write_file_atomic_with(const fs::path& path, const content_producer& produce,
                            bool durable) {
  auto dir = path.parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec)
      throw io_error(fmt::format("cannot create directory {}: {}", dir.string(),
                                 ec.message()));
  }
  auto tmp = path;
  tmp += fmt::format(".{}.{}.tmp", ::getpid(), tmp_counter.fetch_add(1));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    fail("cannot create", tmp, errno);
  auto abort_with = [&](std::string_view what, int err) {
    if (fd >= 0) {
      ::close(fd);
      fd = -1;
    }
    ::unlink(tmp.c_str());
    fail(what, path, err);
  };
  try {
    produce([&](std::string_view content) {
      if (auto err = write_all(fd, content); err != 0)
        abort_with("cannot write", err);
    });
  } catch (...) {
    if (fd >= 0)
      ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (durable && ::fsync(fd) != 0)
    abort_with("cannot fsync", errno);
  if (::close(fd) != 0) {
    fd = -1;
    abort_with("cannot close", errno);
  }
  fd = -1;
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    abort_with("cannot rename temporary file onto", errno);
  if (durable)
    fsync_directory(dir);
}

void write_file_atomic(const fs::path& path, std::string_view content,
                       bool durable) {
  write_file_atomic_with(
    path, [&](const content_sink& sink) { sink(content); }, durable);
}

fs::path spare_path(const fs::path& path) {
  return path.parent_path() / ("." + path.filename().string() + ".spare");
}

void write_file_swap_with(const fs::path& path, const content_producer& produce,
                          bool durable) {
  auto dir = path.parent_path();
  auto spare = spare_path(path);
  // Overwritten in place, then cut to size: no O_TRUNC, whose truncation to
  // zero makes ext4 flush the file on close.
  int fd = ::open(spare.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0 && errno == ENOENT && !dir.empty()) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    fd = ::open(spare.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  }
  if (fd < 0)
    fail("cannot open", spare, errno);
  fd_guard guard{fd};
  off_t size = 0;
  produce([&](std::string_view content) {
    if (auto err = write_all(fd, content); err != 0)
      fail("cannot write", spare, err);
    size += static_cast<off_t>(content.size());
  });
  if (::ftruncate(fd, size) != 0)
    fail("cannot truncate", spare, errno);
  if (durable && ::fsync(fd) != 0)
    fail("cannot fsync", spare, errno);
  guard.fd = -1;
  if (::close(fd) != 0)
    fail("cannot close", spare, errno);
  if (::renameat2(AT_FDCWD, spare.c_str(), AT_FDCWD, path.c_str(),
                  RENAME_EXCHANGE)
      != 0) {
    // No file to exchange with yet (ENOENT), or a file system without the
    // exchange (EINVAL): a plain atomic replace.
    if (errno != ENOENT && errno != EINVAL && errno != ENOSYS)
      fail("cannot exchange with", path, errno);
    if (::rename(spare.c_str(), path.c_str()) != 0)
      fail("cannot rename onto", path, errno);
  }
  if (durable)
    fsync_directory(dir);
}

void write_file_swap(const fs::path& path, std::string_view content,
                     bool durable) {
  write_file_swap_with(
    path, [&](const content_sink& sink) { sink(content); }, durable);
}

std::string read_file(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      throw input_error(errc::not_found,
                        fmt::format("{}: no such file", path.string()));
    fail("cannot open", path, errno);
  }
  fd_guard guard{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0)
    fail("cannot stat", path, errno);
  std::string result;
  result.resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  for (;;) {
    if (got == result.size())
      result.resize(got + 4096 + got / 2); // the file grew since fstat
    auto n = ::read(fd, result.data() + got, result.size() - got);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      fail("cannot read", path, errno);
    }
    if (n == 0)
      break;
    got += static_cast<size_t>(n);
  }
  result.resize(got);
  return result;
}

void append_file(const fs::path& path, std::string_view bytes, bool durable) {
  auto dir = path.parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    fs::create_directories(dir, ec);
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0)
    fail("cannot open", path, errno);
  auto err = write_all(fd, bytes);
  if (err == 0 && durable && ::fdatasync(fd) != 0)
    err = errno;
  ::close(fd);
  if (err != 0)
    fail("cannot append to", path, err);
}

} // namespace crew
