#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace crew {

/// Domain error codes. Values start at 1 (caf::error treats 0 as "none").
enum class errc : uint8_t {
  invalid_input = 1, ///< bad usage, resource, config or id: exit code 2
  not_found,         ///< unknown run/team/workflow/agent id: exit code 2
  corrupt_log,       ///< a damaged event log or snapshot
  io_failure,        ///< a failed read/write/fsync
  worker_failed,     ///< a worker attempt ended unsuccessfully
  cancelled,         ///< the run or attempt was cancelled
};

/// Returns the stable name of `x` (e.g. "invalid_input").
const char* to_string(errc x) noexcept;

/// An error the user caused: bad input, an unknown id, a damaged file. Its
/// message names what is wrong and where (file, line, key, id). The CLI maps
/// it to exit code 2 (corrupt_log included: a damaged file is bad input).
class input_error : public std::runtime_error {
public:
  input_error(errc code, const std::string& what)
    : std::runtime_error(what), code_(code) {
    // nop
  }

  explicit input_error(const std::string& what)
    : input_error(errc::invalid_input, what) {
    // nop
  }

  errc code() const noexcept {
    return code_;
  }

private:
  errc code_;
};

/// A failure of the environment (I/O, spawn): exit code 1.
class io_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

} // namespace crew
