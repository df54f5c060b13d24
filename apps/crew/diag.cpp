#include "diag.hpp"

#include <iostream>

#include <nlohmann/json.hpp>

#include "runtime/operations/diagnostics.hpp"
#include "runtime/operations/project.hpp"
#include "store/paths.hpp"

extern char** environ;

namespace crew::cli {

int cmd_diag(const std::string& cwd, const std::string& run_id, bool json) {
  require_valid_run_id(run_id); // before touching anything
  auto root = crew_root_for(cwd);
  auto path = write_diagnostic(root, run_id, environ);
  if (json)
    std::cout << nlohmann::json{{"path", path.string()}}.dump() << std::endl;
  else
    std::cout << path.string() << std::endl;
  return 0;
}

} // namespace crew::cli
