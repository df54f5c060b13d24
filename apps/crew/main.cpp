// crew: the command line front-end. Thin: parse, call the runtime API, print.
// This file wires the command line; each group of commands lives in a file
// of its own (runs, inspection, reliability, serve, observability, loadtest,
// doctor), what they share in common.{hpp,cpp}.

#include <iostream>

#include <CLI/CLI.hpp>

#include "common.hpp"
#include "doctor.hpp"
#include "inspection.hpp"
#include "loadtest.hpp"
#include "observability.hpp"
#include "reliability.hpp"
#include "runs.hpp"
#include "serve.hpp"
#include "messages/errors.hpp"

int main(int argc, char** argv) {
  namespace cli = crew::cli;
  cli::ignore_sigpipe();
  CLI::App app{"crew: run teams of worker agents through durable DAG workflows"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "crew 0.1.0");

  // In this order: it is the order of `crew --help`.
  cli::command_table commands;
  cli::add_run_command(app, commands);
  cli::add_plan_command(app, commands);
  cli::add_validate_command(app, commands);
  cli::add_list_command(app, commands);
  cli::add_status_command(app, commands);
  cli::add_events_command(app, commands);
  cli::add_cleanup_command(app, commands);
  cli::add_cancel_command(app, commands);
  cli::add_resume_command(app, commands);
  cli::add_serve_command(app, commands);
  cli::add_metrics_command(app, commands);
  cli::add_diag_command(app, commands);
  cli::add_doctor_command(app, commands);
  cli::add_verify_command(app, commands);
  cli::add_recover_command(app, commands);
  cli::add_deadletter_command(app, commands);
  cli::add_loadtest_command(app, commands);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    auto rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  try {
    return commands.run_parsed();
  } catch (const crew::input_error& e) {
    std::cerr << "crew: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "crew: " << e.what() << "\n";
    return 1;
  }
}
