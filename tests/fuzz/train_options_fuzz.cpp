// Fuzz harness: farsee-train's options (tools/train/options.h: parse_options) from the bytes as
// its --config JSON file, and as the checkpoint of --resume (whose stored options are read
// from the safetensors __metadata__ "checkpoint" JSON).
#include "tests/fuzz/fuzz_target.h"
#include "tools/train/options.h"

namespace {

int fuzz_train_options(const uint8_t* data, size_t size) {
  const std::string path = farsee::fuzz::file_of(data, size);
  if (path.empty()) return 0;
  using farsee::tools::parse_options;
  farsee::fuzz::run_parser([&] { parse_options({"--config", path, "--data", "d"}); });
  farsee::fuzz::run_parser([&] { parse_options({"--resume", path, "--data", "d"}); });
  return 0;
}

}  // namespace

FARSEE_FUZZ_TARGET(fuzz_train_options);
