#pragma once

// Shared by the tests of runtime/operations/: a temp project, input_error
// capture and a plain engine that drives a created run to its end.

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "messages/errors.hpp"
#include "runtime/operations/project.hpp"
#include "runtime/scheduling/run_engine.hpp"
#include "runtime/scheduling/run_setup.hpp"
#include "tests/support/temp_dir.hpp"

namespace crew::test {

/// A temp project (with `.crew/`) and an empty user config root.
struct project {
  temp_dir dir{"crew-operations"};
  std::filesystem::path crew_root;

  project() {
    crew_root = dir.path / ".crew";
    std::filesystem::create_directories(crew_root);
    // keep the user's own config and resources out of the tests
    ::setenv("PI_TEAMS_HOME", (dir.path / "home").c_str(), 1);
  }

  project_context ctx() const {
    return load_project(dir.path, {});
  }

  /// Every path under the project, for "nothing was written" checks.
  std::vector<std::string> tree() const {
    std::vector<std::string> out;
    for (auto& e : std::filesystem::recursive_directory_iterator(dir.path))
      out.push_back(e.path().string());
    return out;
  }
};

template <class F>
input_error catch_input_error(F&& f) {
  try {
    f();
  } catch (const input_error& e) {
    return e;
  }
  FAIL("no input_error thrown");
  return input_error{"unreachable"};
}

/// Appends an engine's pending events to the run's log.
inline void flush_to(const run_setup& setup, run_engine& eng) {
  append_to(setup.paths.events(), eng.take_events());
  eng.on_durable(eng.last_seq());
}

/// Runs a created run to its end with a plain engine; `fail_first` makes the
/// first task fail. Returns the final run status.
inline run_status run_to_end(const run_setup& setup, bool fail_first) {
  run_engine eng{setup.manifest.run_id, setup.plan, 1, setup.engine};
  eng.start("Executing team workflow.", false);
  for (int guard = 0; guard < 10000 && !eng.finished(); ++guard) {
    std::vector<uint32_t> out;
    eng.next_dispatch(out);
    for (auto i : out) {
      attempt_result r;
      r.index = i;
      r.attempt = eng.tasks()[i].attempt;
      r.ok = !(fail_first && i == 0);
      r.exit_code = r.ok ? 0 : 1;
      r.error = r.ok ? "" : "boom";
      eng.on_result(r);
    }
    flush_to(setup, eng);
  }
  REQUIRE(eng.finished());
  return eng.status();
}

} // namespace crew::test
