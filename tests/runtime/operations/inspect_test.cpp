// load_run (runtime/operations/inspect.hpp).

#include "runtime/operations/inspect.hpp"

#include <string>

#include <doctest/doctest.h>

#include "messages/errors.hpp"
#include "tests/runtime/operations/operations_fixture.hpp"

using namespace crew;
using crew::test::project;
using crew::test::catch_input_error;

TEST_CASE("service: load_run rejects path-like and unknown ids") {
  project p;
  auto e = catch_input_error([&] { load_run(p.crew_root, "../x"); });
  CHECK_EQ(e.code(), errc::invalid_input);
  e = catch_input_error([&] { load_run(p.crew_root, "/etc"); });
  CHECK_EQ(e.code(), errc::invalid_input);
  e = catch_input_error(
    [&] { load_run(p.crew_root, "team_20990101000000_deadbeef"); });
  CHECK_EQ(e.code(), errc::not_found);
  CHECK_NE(std::string{e.what()}.find("team_20990101000000_deadbeef"),
           std::string::npos);
}
