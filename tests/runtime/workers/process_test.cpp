#include "runtime/workers/process.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>

#include <unistd.h>

#include <doctest/doctest.h>

using namespace crew;
namespace fs = std::filesystem;

namespace {

/// A fresh temporary directory, removed at scope exit.
struct temp_dir {
  fs::path path;
  temp_dir() {
    static int counter = 0;
    path = fs::temp_directory_path()
           / ("crew-process-test-" + std::to_string(::getpid()) + "-"
              + std::to_string(++counter));
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const {
    return (path / name).string();
  }
};

std::string slurp(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  return {std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
}

/// Waits up to `limit` for `pid` to disappear (reaping by init takes a moment).
bool gone_within(int pid, std::chrono::milliseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (process_alive(pid)) {
    if (std::chrono::steady_clock::now() >= until)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
  return true;
}

int first_int(const std::string& text) {
  return std::stoi(text);
}

} // namespace

TEST_CASE("run_process captures stdout and echoes stdin through cat") {
  temp_dir dir;
  process_spec spec;
  spec.command_line = "cat";
  spec.stdin_data = "hello worker\n";
  spec.stdout_path = dir.file("out.txt");
  spec.stderr_path = dir.file("err.txt");
  auto res = run_process(spec);
  CHECK(res.success());
  CHECK(res.spawned);
  CHECK_EQ(res.exit_code, 0);
  CHECK_EQ(res.signal, 0);
  CHECK(res.error.empty());
  CHECK_EQ(slurp(spec.stdout_path), "hello worker\n");
  CHECK_EQ(res.stdout_bytes, 13u);
  CHECK(fs::exists(spec.stderr_path));
  CHECK_EQ(res.stderr_bytes, 0u);
}

TEST_CASE("run_process reports a non-zero exit code as failure") {
  process_spec spec;
  spec.command_line = "echo oops >&2; exit 3";
  auto res = run_process(spec);
  CHECK(res.spawned);
  CHECK_FALSE(res.success());
  CHECK_EQ(res.exit_code, 3);
  CHECK_EQ(res.error, "exit code 3");
  CHECK_EQ(res.stderr_tail, "oops\n");
  CHECK_EQ(res.stderr_bytes, 5u);
}

TEST_CASE("run_process keeps only the last 2 KiB of stderr in the tail") {
  temp_dir dir;
  process_spec spec;
  spec.command_line = "head -c 10000 /dev/zero | tr '\\0' a >&2; echo END >&2";
  spec.stderr_path = dir.file("err.txt");
  auto res = run_process(spec);
  CHECK(res.success());
  CHECK_EQ(res.stderr_bytes, 10004u);
  CHECK_EQ(res.stderr_tail.size(), 2048u);
  CHECK(res.stderr_tail.ends_with("aaaEND\n"));
  CHECK_EQ(slurp(spec.stderr_path).size(), 10004u);
}

TEST_CASE("run_process cuts the stderr tail on a character boundary and "
          "replaces ill-formed UTF-8") {
  // M7: 700 × € (2100 bytes) cut at 2048 bytes started inside a character.
  process_spec spec;
  spec.command_line = "for i in $(seq 700); do printf '\\342\\202\\254' >&2; done; exit 1";
  auto res = run_process(spec);
  CHECK_EQ(res.stderr_bytes, 2100u);
  std::string euros;
  for (int i = 0; i < 682; ++i)
    euros += "\xE2\x82\xAC";
  CHECK_EQ(res.stderr_tail, euros); // 2046 bytes: whole characters only
  spec.command_line = "printf 'caf\\351 \\377\\n' >&2; exit 1";
  CHECK_EQ(run_process(spec).stderr_tail, "caf\xEF\xBF\xBD \xEF\xBF\xBD\n");
}

TEST_CASE("run_process treats death by signal as failure") {
  process_spec spec;
  spec.command_line = "kill -9 $$";
  auto res = run_process(spec);
  CHECK(res.spawned);
  CHECK_FALSE(res.success());
  CHECK_EQ(res.signal, 9);
  CHECK_EQ(res.exit_code, -1);
  CHECK_EQ(res.error, "killed by signal 9 (SIGKILL)");
}

TEST_CASE("run_process timeout kills the whole process group") {
  temp_dir dir;
  process_spec spec;
  spec.command_line = "sh -c 'sleep 30 & echo $!; sleep 30'";
  spec.stdout_path = dir.file("out.txt");
  spec.timeout_ms = 300;
  int leader = 0;
  process_callbacks cbs;
  cbs.on_spawn = [&](int pid) { leader = pid; };
  auto t0 = std::chrono::steady_clock::now();
  auto res = run_process(spec, cbs);
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(res.spawned);
  CHECK(res.timed_out);
  CHECK_FALSE(res.success());
  CHECK_EQ(res.error, "timed out after 300 ms");
  CHECK(took < std::chrono::milliseconds{1500});
  CHECK(took >= std::chrono::milliseconds{300});
  auto grandchild = first_int(slurp(spec.stdout_path));
  CHECK(grandchild > 0);
  CHECK(gone_within(grandchild, std::chrono::milliseconds{1000}));
  CHECK(gone_within(leader, std::chrono::milliseconds{1000}));
}

TEST_CASE("run_process escalates to SIGKILL after the grace period") {
  temp_dir dir;
  process_spec spec;
  // Ignored signals stay ignored across exec, so sleep ignores SIGTERM too.
  spec.command_line = "trap '' TERM; sleep 30 & echo $!; sleep 30";
  spec.stdout_path = dir.file("out.txt");
  spec.timeout_ms = 200;
  spec.kill_grace_ms = 200;
  auto t0 = std::chrono::steady_clock::now();
  auto res = run_process(spec);
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(res.timed_out);
  CHECK_EQ(res.signal, SIGKILL);
  CHECK(took >= std::chrono::milliseconds{400});
  CHECK(took < std::chrono::milliseconds{1500});
  auto grandchild = first_int(slurp(spec.stdout_path));
  CHECK(gone_within(grandchild, std::chrono::milliseconds{1000}));
}

TEST_CASE("run_process cancel flag kills the whole process group") {
  temp_dir dir;
  process_spec spec;
  spec.command_line = "sleep 30 & echo $!; sleep 30";
  spec.stdout_path = dir.file("out.txt");
  std::atomic<bool> cancel{false};
  process_callbacks cbs;
  cbs.cancel = &cancel;
  std::thread canceller{[&] {
    std::this_thread::sleep_for(std::chrono::milliseconds{200});
    cancel = true;
  }};
  auto t0 = std::chrono::steady_clock::now();
  auto res = run_process(spec, cbs);
  auto took = std::chrono::steady_clock::now() - t0;
  canceller.join();
  CHECK(res.cancelled);
  CHECK_FALSE(res.timed_out);
  CHECK_FALSE(res.success());
  CHECK_EQ(res.error, "cancelled");
  CHECK(took < std::chrono::milliseconds{1500});
  auto grandchild = first_int(slurp(spec.stdout_path));
  CHECK(gone_within(grandchild, std::chrono::milliseconds{1000}));
}

TEST_CASE("run_process passes env and cwd to the child") {
  temp_dir dir;
  fs::create_directories(dir.path / "work dir");
  process_spec spec;
  spec.command_line = "pwd; echo \"$CREW_TASK_ID/$HOME_OVERRIDE_TEST\"";
  spec.cwd = (dir.path / "work dir").string();
  spec.env = {"CREW_TASK_ID=01_build", "HOME_OVERRIDE_TEST=a",
              "HOME_OVERRIDE_TEST=b=c"};
  spec.stdout_path = dir.file("out.txt");
  auto res = run_process(spec);
  REQUIRE(res.success());
  auto expected_cwd = fs::canonical(dir.path / "work dir").string();
  CHECK_EQ(slurp(spec.stdout_path), expected_cwd + "\n01_build/b=c\n");
}

TEST_CASE("run_process inherits the parent environment") {
  temp_dir dir;
  ::setenv("CREW_PROCESS_TEST_PARENT", "inherited", 1);
  process_spec spec;
  spec.command_line = "echo $CREW_PROCESS_TEST_PARENT";
  spec.stdout_path = dir.file("out.txt");
  auto res = run_process(spec);
  ::unsetenv("CREW_PROCESS_TEST_PARENT");
  REQUIRE(res.success());
  CHECK_EQ(slurp(spec.stdout_path), "inherited\n");
}

TEST_CASE("run_process reports a missing cwd as a spawn failure") {
  process_spec spec;
  spec.command_line = "true";
  spec.cwd = "/nonexistent/crew/dir";
  auto res = run_process(spec);
  CHECK_FALSE(res.spawned);
  CHECK_FALSE(res.success());
  CHECK(res.error.starts_with("spawn failed: working directory"));
  CHECK(res.error.find("No such file") != std::string::npos);
}

TEST_CASE("run_process rejects malformed env entries and bad output paths") {
  process_spec spec;
  spec.command_line = "true";
  spec.env = {"NOEQUALS"};
  auto res = run_process(spec);
  CHECK_FALSE(res.spawned);
  CHECK(res.error.find("NOEQUALS") != std::string::npos);
  spec.env.clear();
  spec.stdout_path = "/nonexistent/crew/out.txt";
  res = run_process(spec);
  CHECK_FALSE(res.spawned);
  CHECK(res.error.starts_with("spawn failed: cannot open output file"));
}

TEST_CASE("run_process moves large stdin and stdout without deadlock") {
  temp_dir dir;
  std::string input(1 << 20, 'x');
  for (size_t i = 0; i < input.size(); i += 97)
    input[i] = '\n';
  process_spec spec;
  spec.command_line = "cat; head -c 5242880 /dev/zero";
  spec.stdin_data = input;
  spec.stdout_path = dir.file("out.txt");
  spec.timeout_ms = 10000;
  auto res = run_process(spec);
  REQUIRE(res.success());
  CHECK_EQ(res.stdout_bytes, input.size() + 5242880u);
  auto out = slurp(spec.stdout_path);
  REQUIRE_EQ(out.size(), input.size() + 5242880u);
  CHECK(out.compare(0, input.size(), input) == 0);
}

TEST_CASE("run_process survives a child that does not read its stdin") {
  process_spec spec;
  spec.command_line = "exec 0<&-; exit 0";
  spec.stdin_data = std::string(1 << 20, 'y');
  auto res = run_process(spec);
  CHECK(res.success());
}

TEST_CASE("run_process reports the pid and heartbeats on output") {
  process_spec spec;
  spec.command_line = "echo $$; for i in 1 2 3 4 5 6; do echo tick; "
                      "sleep 0.1; done";
  int spawned_pid = 0;
  int beats = 0;
  process_callbacks cbs;
  cbs.on_spawn = [&](int pid) { spawned_pid = pid; };
  cbs.on_output = [&] { ++beats; };
  auto res = run_process(spec, cbs);
  CHECK(res.success());
  CHECK(spawned_pid > 0);
  // Output flows for ~600 ms: at least two beats, at most one per 250 ms.
  CHECK(beats >= 2);
  CHECK(beats <= 4);
}

TEST_CASE("run_process stops draining pipes held open by a grandchild") {
  temp_dir dir;
  process_spec spec;
  spec.command_line = "sleep 5 & echo $! > \"$PIDFILE\"; exit 0";
  spec.env = {"PIDFILE=" + dir.file("pid")};
  auto t0 = std::chrono::steady_clock::now();
  auto res = run_process(spec);
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(res.success());
  CHECK(took < std::chrono::milliseconds{1800});
  CHECK(took >= std::chrono::milliseconds{900});
  auto straggler = first_int(slurp(dir.file("pid")));
  CHECK(process_alive(straggler));
  ::kill(straggler, SIGKILL);
}

TEST_CASE("process_alive, process_start_time and kill_process_group") {
  CHECK(process_alive(::getpid()));
  CHECK_FALSE(process_alive(0));
  CHECK_FALSE(process_alive(-5));
  CHECK(process_start_time(::getpid()) > 0);
  CHECK_EQ(process_start_time(0), 0u);
  // A pid far above pid_max is never in use.
  CHECK_FALSE(process_alive(999999999));
  CHECK_EQ(process_start_time(999999999), 0u);
  kill_process_group(999999999, SIGTERM); // no group: silently ignored
  CHECK_EQ(signal_name(SIGTERM), "SIGTERM");
  CHECK_EQ(signal_name(64), "SIG64");
}

TEST_CASE("run_process runs an argv directly without a shell") {
  temp_dir dir;
  process_spec spec;
  // A leading '-' and shell metacharacters reach the program verbatim.
  spec.argv = {"printf", "%s|%s|%s\\n", "-n", "--mode", "$HOME; echo x"};
  spec.command_line = "echo ignored";
  spec.stdout_path = dir.file("out.txt");
  auto res = run_process(spec);
  REQUIRE(res.success());
  CHECK_EQ(slurp(spec.stdout_path), "-n|--mode|$HOME; echo x\n");
}

TEST_CASE("run_process argv honours cwd, env and stdin") {
  temp_dir dir;
  fs::create_directories(dir.path / "work dir");
  fs::create_directories(dir.path / "bin");
  {
    std::ofstream script{dir.path / "bin" / "tool"};
    script << "#!/bin/sh\npwd\necho \"$CREW_ARGV_TEST:$1\"\ncat\n";
  }
  fs::permissions(dir.path / "bin" / "tool", fs::perms::owner_all);
  process_spec spec;
  spec.argv = {(dir.path / "bin" / "tool").string(), "@file"};
  spec.cwd = (dir.path / "work dir").string();
  spec.env = {"CREW_ARGV_TEST=yes"};
  spec.stdin_data = "-prompt on stdin\n";
  spec.stdout_path = dir.file("out.txt");
  auto res = run_process(spec);
  REQUIRE(res.success());
  auto expected_cwd = fs::canonical(dir.path / "work dir").string();
  CHECK_EQ(slurp(spec.stdout_path),
           expected_cwd + "\nyes:@file\n-prompt on stdin\n");
}

TEST_CASE("run_process reports a missing argv program as a spawn failure") {
  process_spec spec;
  spec.argv = {"/nonexistent/crew/program", "--flag"};
  auto res = run_process(spec);
  CHECK_FALSE(res.spawned);
  CHECK_FALSE(res.success());
  CHECK(res.error.starts_with("spawn failed: '/nonexistent/crew/program'"));
  spec.argv = {"crew-no-such-program-on-path"};
  res = run_process(spec);
  CHECK_FALSE(res.spawned);
  CHECK(res.error.find("No such file") != std::string::npos);
}

TEST_CASE("run_process streams stdout chunks in order as they arrive") {
  temp_dir dir;
  process_spec spec;
  spec.command_line = "for i in 1 2 3 4; do echo line$i; echo err$i >&2; "
                      "sleep 0.1; done; printf tail";
  spec.stdout_path = dir.file("out.txt");
  std::vector<std::string> chunks;
  std::vector<std::chrono::steady_clock::time_point> stamps;
  process_callbacks cbs;
  cbs.on_stdout = [&](std::string_view chunk) {
    chunks.emplace_back(chunk);
    stamps.push_back(std::chrono::steady_clock::now());
  };
  auto res = run_process(spec, cbs);
  REQUIRE(res.success());
  std::string joined;
  for (const auto& chunk : chunks)
    joined += chunk;
  const std::string expected = "line1\nline2\nline3\nline4\ntail";
  CHECK_EQ(joined, expected);
  CHECK_EQ(slurp(spec.stdout_path), expected);
  CHECK_EQ(res.stdout_bytes, expected.size());
  // The lines are 100 ms apart, so they arrive as separate chunks while the
  // process still runs, and stderr never reaches the stdout callback.
  REQUIRE(chunks.size() >= 4);
  CHECK(stamps.back() - stamps.front() >= std::chrono::milliseconds{200});
  CHECK(joined.find("err") == std::string::npos);
}

TEST_CASE("run_process response watchdog kills a silent process group") {
  temp_dir dir;
  process_spec spec;
  spec.command_line = "sleep 30 & echo $!; sleep 30";
  spec.stdout_path = dir.file("out.txt");
  spec.idle_timeout_ms = 300;
  spec.timeout_ms = 20000;
  auto t0 = std::chrono::steady_clock::now();
  auto res = run_process(spec);
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(res.spawned);
  CHECK(res.idle_timed_out);
  CHECK_FALSE(res.timed_out);
  CHECK_FALSE(res.success());
  CHECK_EQ(res.error, "no output for 300 ms (response watchdog)");
  CHECK(took >= std::chrono::milliseconds{300});
  CHECK(took < std::chrono::milliseconds{1500});
  auto grandchild = first_int(slurp(spec.stdout_path));
  CHECK(gone_within(grandchild, std::chrono::milliseconds{1000}));
}

TEST_CASE("run_process response watchdog spares a process that keeps "
          "printing") {
  process_spec spec;
  // ~1 s in total, never more than 100 ms quiet; stderr counts as output.
  spec.command_line = "for i in 1 2 3 4 5; do echo out; sleep 0.1; "
                      "echo err >&2; sleep 0.1; done";
  spec.idle_timeout_ms = 600;
  auto res = run_process(spec);
  CHECK(res.success());
  CHECK_FALSE(res.idle_timed_out);
  CHECK(res.duration_ms >= 900);
}

TEST_CASE("run_process final drain ends a process that lingers after its "
          "answer") {
  temp_dir dir;
  process_spec spec;
  // The answer, a grandchild holding the pipes, then no exit.
  spec.command_line = "echo ANSWER; sleep 30 & echo $!; sleep 30";
  spec.stdout_path = dir.file("out.txt");
  spec.final_drain_ms = 300;
  spec.idle_timeout_ms = 20000;
  spec.kill_grace_ms = 300;
  std::string seen;
  process_callbacks cb;
  cb.on_stdout = [&](std::string_view chunk) { seen += chunk; };
  int asked = 0;
  cb.answered = [&] {
    ++asked;
    return seen.find("ANSWER\n") != std::string::npos;
  };
  auto t0 = std::chrono::steady_clock::now();
  auto res = run_process(spec, cb);
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(res.drained);
  CHECK_FALSE(res.idle_timed_out);
  CHECK(res.success());
  CHECK_EQ(res.error, "");
  CHECK_EQ(res.signal, SIGTERM);
  CHECK(took >= std::chrono::milliseconds{300});
  CHECK(took < std::chrono::milliseconds{1500});
  CHECK(asked >= 1);
  auto pid_line = slurp(spec.stdout_path).substr(7); // after "ANSWER\n"
  CHECK(gone_within(first_int(pid_line), std::chrono::milliseconds{1000}));
}

TEST_CASE("run_process final drain spares a process that exits in time") {
  process_spec spec;
  spec.command_line = "echo ANSWER; sleep 0.2; exit 3";
  spec.final_drain_ms = 2000;
  process_callbacks cb;
  cb.answered = [] { return true; };
  auto t0 = std::chrono::steady_clock::now();
  auto res = run_process(spec, cb);
  auto took = std::chrono::steady_clock::now() - t0;
  // Its own exit status counts, failure included.
  CHECK_FALSE(res.drained);
  CHECK_EQ(res.exit_code, 3);
  CHECK_FALSE(res.success());
  CHECK(took < std::chrono::milliseconds{1500});
}

TEST_CASE("run_process final drain waits for the answer") {
  process_spec spec;
  // Output keeps flowing, but the callback never reports an answer: only the
  // response watchdog ends it.
  spec.command_line = "echo working; sleep 30";
  spec.final_drain_ms = 100;
  spec.idle_timeout_ms = 500;
  spec.kill_grace_ms = 200;
  process_callbacks cb;
  cb.answered = [] { return false; };
  auto t0 = std::chrono::steady_clock::now();
  auto res = run_process(spec, cb);
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK_FALSE(res.drained);
  CHECK(res.idle_timed_out);
  CHECK_FALSE(res.success());
  CHECK(took >= std::chrono::milliseconds{500});
}

TEST_CASE("run_process streams stderr to its callback without a file") {
  process_spec spec;
  spec.command_line = "echo out; echo err1 >&2; sleep 0.1; echo err2 >&2";
  std::string out, err;
  process_callbacks cb;
  cb.on_stdout = [&](std::string_view chunk) { out += chunk; };
  cb.on_stderr = [&](std::string_view chunk) { err += chunk; };
  auto res = run_process(spec, cb);
  CHECK(res.success());
  CHECK_EQ(out, "out\n");
  CHECK_EQ(err, "err1\nerr2\n");
  CHECK_EQ(res.stderr_tail, "err1\nerr2\n");
}

TEST_CASE("run_process notices the exit of a leader whose pipes stay open") {
  // The grandchild keeps stdout open; the leader's exit still ends the run
  // within the 1 s drain limit, and the exit is noticed promptly.
  process_spec spec;
  spec.command_line = "sleep 5 & exit 4";
  auto t0 = std::chrono::steady_clock::now();
  auto res = run_process(spec);
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK_EQ(res.exit_code, 4);
  CHECK(took < std::chrono::milliseconds{2000});
}
