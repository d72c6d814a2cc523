// farsee-train's command line as a library function, so tests run it in-process.
#pragma once

#include <string>
#include <vector>

namespace farsee::tools {

// Runs farsee-train with `args` (without the program name; the flags: tools/train/options.h).
// Prints progress to stdout, errors "farsee-train: error: ..." to stderr; returns the exit status
// (0 ok, 1 error, 130 / 143 after SIGINT / SIGTERM, with a checkpoint written). Installs
// SIGINT/SIGTERM handlers while it runs (the previous ones are restored).
int train_main(const std::vector<std::string>& args);

}  // namespace farsee::tools
