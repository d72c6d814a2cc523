// Runs a shell command (a program under test) and captures its exit status and output, for the
// tests that run the programs as child processes.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace farsee::test {

struct ProgramResult {
  int exit_code;       // -1 when the command could not run or did not exit normally
  std::string output;  // stdout and stderr
};

inline ProgramResult run_program(const std::string& command) {
  ProgramResult r{-1, ""};
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace farsee::test
