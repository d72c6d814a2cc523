// Fuzz harness: a farsee-train checkpoint (net/checkpoint.h: read_checkpoint), i.e. a safetensors
// file whose __metadata__ holds the checkpoint JSON (format, step, the trainer's info) and the
// network's config, then every tensor the config implies, checked by name and shape.
#include "net/checkpoint.h"
#include "tests/fuzz/fuzz_target.h"

namespace {

int fuzz_checkpoint(const uint8_t* data, size_t size) {
  const std::string path = farsee::fuzz::file_of(data, size);
  if (!path.empty()) farsee::fuzz::run_parser([&] { farsee::tools::read_checkpoint(path); });
  return 0;
}

}  // namespace

FARSEE_FUZZ_TARGET(fuzz_checkpoint);
