#pragma once

#include <cstdio>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <utility>

namespace crew::test {

/// Runs `command` through /bin/sh (stderr merged); returns the exit status
/// (-1 if it did not exit normally) and the output.
inline std::pair<int, std::string> shell(const std::string& command) {
  std::string output;
  auto pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr)
    throw std::runtime_error("popen failed: " + command);
  char buf[512];
  while (auto n = fread(buf, 1, sizeof(buf), pipe))
    output.append(buf, n);
  auto status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

} // namespace crew::test
