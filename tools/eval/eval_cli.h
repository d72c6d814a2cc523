// farsee-eval's command line as a library function, so tests run it in-process.
#pragma once

#include <string>
#include <vector>

namespace farsee::tools {

// Runs farsee-eval with `args` (without the program name). Prints the report to stdout, errors
// "farsee-eval: error: ..." to stderr; returns the exit status (0 ok, 1 error).
int eval_main(const std::vector<std::string>& args);

}  // namespace farsee::tools
