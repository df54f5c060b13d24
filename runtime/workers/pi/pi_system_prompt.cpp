#include "runtime/workers/pi/pi_system_prompt.hpp"

#include "runtime/workers/detail/spawn_util.hpp"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <string_view>
#include <system_error>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/atomic_file.hpp" // write_all

namespace crew {

namespace {

namespace fs = std::filesystem;

/// Writes `content` to a new 0600 file; false with `error` set on failure.
bool write_private(const std::string& file, std::string_view content,
                   std::string& error) {
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = "cannot write " + file + ": " + std::strerror(errno);
    return false;
  }
  ::fchmod(fd, 0600); // O_CREAT's mode is already 0600 minus the umask
  int err = write_all(fd, content);
  ::close(fd);
  if (err != 0) {
    error = "cannot write " + file + ": " + std::strerror(err);
    return false;
  }
  return true;
}

/// The system prompt files of the pi runs in flight, shared by the runs
/// with the same prompt (the tasks of one agent): a private directory
/// (mkdtemp, 0700) with one 0600 file per distinct prompt. The last run
/// using a prompt removes its file, and the directory goes with the last
/// file, so nothing stays behind between runs; overlapping tasks write,
/// and remove, the file once instead of once each. Thread-safe.
class system_prompt_files {
public:
  static system_prompt_files& instance() {
    static system_prompt_files files;
    return files;
  }

  system_prompt_files(const system_prompt_files&) = delete;
  system_prompt_files& operator=(const system_prompt_files&) = delete;

  ~system_prompt_files() {
    if (!dir_.empty()) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }

  /// The path of a file holding `content`, kept until the matching
  /// `release`; empty with `error` set on failure.
  std::string acquire(const std::string& content, std::string& error) {
    std::lock_guard<std::mutex> guard{mutex_};
    if (auto i = files_.find(content); i != files_.end()) {
      ++i->second.refs;
      return i->second.path;
    }
    if (dir_.empty()
        && (dir_ = detail::make_private_dir("crew-pi-", error)).empty())
      return {};
    auto file = (dir_ / ("system-prompt-" + std::to_string(++next_) + ".md"))
                    .string();
    if (!write_private(file, content, error)) {
      remove_dir_if_unused();
      return {};
    }
    files_.emplace(content, entry{file, 1});
    return file;
  }

  void release(const std::string& content) {
    std::lock_guard<std::mutex> guard{mutex_};
    auto i = files_.find(content);
    if (i == files_.end() || --i->second.refs > 0)
      return;
    std::error_code ec;
    fs::remove(i->second.path, ec);
    files_.erase(i);
    remove_dir_if_unused();
  }

private:
  struct entry {
    std::string path;
    size_t refs = 0;
  };

  system_prompt_files() = default;

  void remove_dir_if_unused() {
    if (files_.empty() && !dir_.empty()) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
      dir_.clear();
    }
  }

  std::mutex mutex_;
  fs::path dir_;
  std::map<std::string, entry> files_; ///< by content
  uint64_t next_ = 0;
};

} // namespace

system_prompt_lease::~system_prompt_lease() {
  if (!path_.empty())
    system_prompt_files::instance().release(content_);
}

bool system_prompt_lease::acquire(const std::string& content,
                                  std::string& error) {
  path_ = system_prompt_files::instance().acquire(content, error);
  if (!path_.empty())
    content_ = content;
  return !path_.empty();
}

} // namespace crew
