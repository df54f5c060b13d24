#include "runtime/operations/detail/orphans.hpp"

#include <cstdint>
#include <exception>
#include <filesystem>
#include <string>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "store/atomic_file.hpp"

namespace fs = std::filesystem;

namespace crew::detail {

void drop_stale_requests(const run_paths& paths) {
  std::error_code ec;
  auto me = static_cast<int64_t>(::getpid());
  if (fs::exists(paths.cancel_request(), ec)) {
    int64_t owner = 0;
    try {
      owner = nlohmann::json::parse(read_file(paths.cancel_request()))
                .value("owner", int64_t{0});
    } catch (const std::exception&) {
      // unreadable: stale
    }
    if (owner != me)
      fs::remove(paths.cancel_request(), ec);
  }
  if (fs::exists(paths.deadletter_request(), ec)) {
    std::string text;
    try {
      text = read_file(paths.deadletter_request());
    } catch (const std::exception&) {
      // nop
    }
    if (text.find(fmt::format("\t{}\n", me)) == std::string::npos)
      fs::remove(paths.deadletter_request(), ec);
  }
}

} // namespace crew::detail
