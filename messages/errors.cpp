#include "messages/errors.hpp"

namespace crew {

const char* to_string(errc x) noexcept {
  switch (x) {
    case errc::invalid_input:
      return "invalid_input";
    case errc::not_found:
      return "not_found";
    case errc::corrupt_log:
      return "corrupt_log";
    case errc::io_failure:
      return "io_failure";
    case errc::worker_failed:
      return "worker_failed";
    case errc::cancelled:
      return "cancelled";
  }
  return "unknown";
}

} // namespace crew
