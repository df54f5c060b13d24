#include "runtime/operations/detail/run_lock.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "messages/errors.hpp"
#include "runtime/workers/process.hpp"
#include "store/atomic_file.hpp"
#include "store/clock.hpp"

namespace fs = std::filesystem;

namespace crew::detail {

namespace {

/// Creates `path` with `body` atomically: written to a private temp file,
/// then hard-linked into place (fails with EEXIST if the lock exists), so no
/// reader ever sees an empty lock. Returns 0 or errno.
int create_with_content(const fs::path& path, const std::string& body) {
  auto tmp = path;
  tmp += fmt::format(".{}.tmp", ::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return errno;
  auto err = write_all(fd, body);
  ::close(fd);
  if (err == 0 && ::link(tmp.c_str(), path.c_str()) != 0)
    err = errno;
  ::unlink(tmp.c_str());
  return err;
}

} // namespace

lock_owner read_lock(const fs::path& path) {
  lock_owner out;
  std::error_code ec;
  if (!fs::exists(path, ec))
    return out;
  try {
    auto j = nlohmann::json::parse(read_file(path));
    out.pid = j.value("pid", int64_t{0});
    out.start = j.value("startTime", uint64_t{0});
    out.handed_over = j.value("handedOver", false);
  } catch (...) {
    // unreadable lock: treat as stale
  }
  return out;
}

bool owner_alive(const lock_owner& o) {
  if (o.pid <= 0 || !process_alive(static_cast<int>(o.pid)))
    return false;
  // A reused pid is not the owner: compare process start times.
  return o.start == 0
         || process_start_time(static_cast<int>(o.pid)) == o.start;
}

run_lock::~run_lock() {
  if (handed_over)
    return;
  std::error_code ec;
  fs::remove(path, ec);
}

std::string lock_body(int64_t pid, bool handed_over) {
  return fmt::format(R"({{"pid":{},"startTime":{},"createdAt":"{}"{}}})", pid,
                     process_start_time(static_cast<int>(pid)), iso_now(),
                     handed_over ? R"(,"handedOver":true)" : "");
}

std::shared_ptr<void> acquire_lock(const fs::path& path, std::string_view run_id) {
  for (int tries = 0; tries < 3; ++tries) {
    auto err = create_with_content(path, lock_body(::getpid()));
    if (err == 0) {
      auto lock = std::make_shared<run_lock>();
      lock->path = path;
      return lock;
    }
    if (err != EEXIST)
      throw io_error(fmt::format("{}: {}", path.string(), std::strerror(err)));
    auto owner = read_lock(path);
    if (owner.handed_over && owner.pid == ::getpid() && owner_alive(owner)) {
      // Handed over to this process by the one that created the run.
      write_file_atomic(path, lock_body(owner.pid));
      auto lock = std::make_shared<run_lock>();
      lock->path = path;
      return lock;
    }
    if (owner_alive(owner))
      throw input_error(fmt::format(
        "run '{}' is being executed by process {} (see {}); cancel it first",
        run_id, owner.pid, path.string()));
    // Stale: its owner is gone. Move it aside and make sure what we moved is
    // the stale lock we judged, not a fresh one another process just took.
    auto aside = path;
    aside += fmt::format(".stale.{}", ::getpid());
    if (::rename(path.c_str(), aside.c_str()) != 0)
      continue; // someone else moved it first: look again
    auto moved = read_lock(aside);
    if (moved.pid != owner.pid || moved.start != owner.start) {
      // A live lock: put it back (link fails only if yet another appeared).
      if (::link(aside.c_str(), path.c_str()) != 0) {
        ::unlink(aside.c_str());
        throw input_error(fmt::format(
          "run '{}' is being taken by another process; try again", run_id));
      }
      ::unlink(aside.c_str());
      continue;
    }
    ::unlink(aside.c_str());
  }
  throw io_error(fmt::format("{}: cannot take the run lock", path.string()));
}

} // namespace crew::detail
