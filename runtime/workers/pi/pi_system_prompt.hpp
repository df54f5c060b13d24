#pragma once

// Internal to workers/pi/: the system prompt files of spawned pi runs.

#include <string>

namespace crew {

/// Holds, for one `run_pi_attempt`, a private 0600 file with a system prompt
/// (in a private 0700 directory). The runs in flight with the same prompt
/// (the tasks of one agent) share one file; the last one to let go removes
/// it, and the directory goes with its last file. Thread-safe.
class system_prompt_lease {
public:
  system_prompt_lease() = default;
  system_prompt_lease(const system_prompt_lease&) = delete;
  system_prompt_lease& operator=(const system_prompt_lease&) = delete;

  /// Lets go of the file, if any.
  ~system_prompt_lease();

  /// Gets a file holding `content`; false with `error` set on failure.
  bool acquire(const std::string& content, std::string& error);

  /// The path of the file; empty before a successful `acquire`.
  const std::string& path() const noexcept { return path_; }

private:
  std::string content_;
  std::string path_;
};

} // namespace crew
