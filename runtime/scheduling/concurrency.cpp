#include "runtime/scheduling/concurrency.hpp"

#include <fmt/format.h>

namespace crew {

uint32_t default_concurrency(std::string_view name) noexcept {
  if (name == "parallel-research")
    return 4;
  if (name == "research" || name == "implementation" || name == "review"
      || name == "default")
    return 2;
  return 1;
}

concurrency_decision resolve_concurrency(const concurrency_inputs& in) {
  concurrency_decision out;
  std::string_view source;
  if (in.limit_max > 0) {
    out.requested = in.limit_max;
    source = "limit";
  } else if (in.team_max > 0) {
    out.requested = in.team_max;
    source = "team";
  } else if (in.workflow_max > 0) {
    out.requested = in.workflow_max;
    source = "workflow";
  } else {
    out.requested = default_concurrency(in.workflow_name);
    source = "workflow";
  }
  out.reason = fmt::format("{}:{}", source, out.requested);
  out.max_concurrent = out.requested;
  if (out.requested > concurrency_hard_cap) {
    if (in.allow_unbounded) {
      out.reason += fmt::format(";unbounded:{}", concurrency_hard_cap);
    } else {
      out.max_concurrent = concurrency_hard_cap;
      out.reason += fmt::format(";capped:{}", concurrency_hard_cap);
    }
  }
  return out;
}

} // namespace crew
