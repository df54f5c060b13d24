#include "runtime/workers/detail/spawn_util.hpp"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <string_view>
#include <system_error>

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
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

void init_file_actions(posix_spawn_file_actions_t& actions, int in, int out,
                       int err, const char* chdir_to) {
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in, STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err, STDERR_FILENO);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 34)
  // Do not leak descriptors other code opened without O_CLOEXEC.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
#endif
#if CREW_SPAWN_CHDIR
  if (chdir_to != nullptr)
    posix_spawn_file_actions_addchdir_np(&actions, chdir_to);
#else
  (void)chdir_to;
#endif
}

void prepend_cd_wrapper(std::vector<std::string>& argv,
                        const std::string& dir) {
  argv.insert(argv.begin(),
              {"/bin/sh", "-c", R"(cd -- "$1" && shift && exec "$@")",
               "crew-worker", dir});
}

std::string checked_cwd(const std::string& cwd, std::string& error) {
  std::error_code ec;
  auto dir = std::filesystem::absolute(cwd, ec);
  struct stat st;
  int stat_err = ec ? ENOENT : 0;
  if (stat_err == 0 && ::stat(dir.c_str(), &st) != 0)
    stat_err = errno;
  else if (stat_err == 0 && !S_ISDIR(st.st_mode))
    stat_err = ENOTDIR;
  if (stat_err != 0) {
    error = "working directory '" + cwd + "': " + std::strerror(stat_err);
    return {};
  }
  return dir.string();
}

std::filesystem::path make_private_dir(std::string_view prefix,
                                       std::string& error) {
  std::error_code ec;
  auto base = std::filesystem::temp_directory_path(ec);
  if (ec)
    base = "/tmp";
  auto templ = (base / (std::string{prefix} + "XXXXXX")).string();
  if (::mkdtemp(templ.data()) == nullptr) {
    error = "cannot create a private temp directory in " + base.string() + ": "
            + std::strerror(errno);
    return {};
  }
  return templ;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& str : strings)
    out.push_back(str.data());
  out.push_back(nullptr);
  return out;
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

std::string shell_command(const std::vector<std::string>& argv) {
  std::string command;
  for (const auto& arg : argv) {
    if (!command.empty())
      command += ' ';
    command += shell_quote(arg);
  }
  return command;
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
