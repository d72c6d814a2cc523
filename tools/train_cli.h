// farsee-train's command line as a library function, so tests run it in-process.
#pragma once

#include <string>
#include <vector>

namespace farsee::tools {

// Runs farsee-train with `args` (without the program name). Prints progress to stdout, errors
// "farsee-train: error: ..." to stderr; returns the exit status (0 ok, 1 error).
int train_main(const std::vector<std::string>& args);

}  // namespace farsee::tools
