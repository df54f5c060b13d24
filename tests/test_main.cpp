// The doctest main of every test binary, with one guard: a run that was asked
// for particular test cases (`--test-case=…`, as every ctest entry is) and
// selected none of them fails. ctest splits test names at `;`, so without
// this guard a case whose name holds one ran zero cases and "passed".

#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <string_view>

namespace {

int selected_cases = -1; ///< test cases that passed the filters; -1: no run

struct selection_guard : doctest::IReporter {
  explicit selection_guard(const doctest::ContextOptions&) {
    // nop
  }
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats& stats) override {
    selected_cases = static_cast<int>(stats.numTestCasesPassingFilters);
  }
  void test_case_start(const doctest::TestCaseData&) override {}
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

REGISTER_LISTENER("selection_guard", 1, selection_guard);

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

} // namespace

int main(int argc, char** argv) {
  bool filtered = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (starts_with(arg, "--test-case=") || starts_with(arg, "-tc=")
        || starts_with(arg, "--dt-test-case=") || starts_with(arg, "--dt-tc="))
      filtered = true;
  }
  doctest::Context context(argc, argv);
  int rc = context.run();
  if (context.shouldExit())
    return rc; // a query (--list-test-cases, --help, …): nothing was to run
  if (filtered && selected_cases == 0) {
    std::fprintf(stderr,
                 "test_main: the --test-case filter selected no test case "
                 "(a name holding ';' is split by ctest; rename the case)\n");
    return rc == 0 ? 1 : rc;
  }
  return rc;
}
