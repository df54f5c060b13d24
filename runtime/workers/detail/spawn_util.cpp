#include "runtime/workers/detail/spawn_util.hpp"

#include <cerrno>
#include <ctime>
#include <string_view>

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

extern char** environ;

namespace crew::detail {

sigpipe_guard::sigpipe_guard() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, &old_);
  was_blocked_ = sigismember(&old_, SIGPIPE) == 1;
}

sigpipe_guard::~sigpipe_guard() {
  if (!was_blocked_) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    timespec zero{0, 0};
    while (sigtimedwait(&set, nullptr, &zero) == SIGPIPE) {
      // nop: drop the SIGPIPEs raised by our writes
    }
  }
  pthread_sigmask(SIG_SETMASK, &old_, nullptr);
}

bool make_pipe(int (&fds)[2], int& err) {
  if (pipe2(fds, O_CLOEXEC) != 0) {
    err = errno;
    return false;
  }
  for (int& fd : fds) {
    if (fd < 3) {
      int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
      if (moved < 0) {
        err = errno;
        ::close(fds[0]);
        ::close(fds[1]);
        return false;
      }
      ::close(fd);
      fd = moved;
    }
  }
  return true;
}

void set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags >= 0)
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

bool build_env(const std::vector<std::string>& extra,
               std::vector<std::string>& out, std::string& error) {
  auto key_of = [](std::string_view kv) { return kv.substr(0, kv.find('=')); };
  for (const auto& kv : extra) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      error = "invalid environment entry '" + kv + "' (expected KEY=VALUE)";
      return false;
    }
  }
  auto overridden = [&](std::string_view entry) {
    for (const auto& kv : extra)
      if (key_of(kv) == key_of(entry))
        return true;
    return false;
  };
  for (char** e = environ; e != nullptr && *e != nullptr; ++e)
    if (!overridden(*e))
      out.emplace_back(*e);
  // Later duplicates in `extra` win: keep only the last entry per key.
  for (size_t i = 0; i < extra.size(); ++i) {
    bool later = false;
    for (size_t j = i + 1; j < extra.size() && !later; ++j)
      later = key_of(extra[j]) == key_of(extra[i]);
    if (!later)
      out.push_back(extra[i]);
  }
  return true;
}

std::string shell_quote(std::string_view arg) {
  bool plain = !arg.empty()
               && arg.find_first_not_of("abcdefghijklmnopqrstuvwxyz"
                                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789-_./:=,@+%")
                      == std::string_view::npos;
  if (plain)
    return std::string{arg};
  std::string out = "'";
  for (char c : arg) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

void init_spawn_attributes(posix_spawnattr_t& attr) {
  posix_spawnattr_init(&attr);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attr, &empty);
  sigset_t all;
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK
                                      | POSIX_SPAWN_SETSIGDEF);
}

} // namespace crew::detail
