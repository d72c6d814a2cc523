// Fuzz harness: a safetensors file (weights/safetensors.h) as the weight loader and the
// checkpoint reader open it: the header, its __metadata__, every tensor read as float.
#include "tests/fuzz/fuzz_target.h"
#include "weights/safetensors.h"

namespace {

int fuzz_safetensors(const uint8_t* data, size_t size) {
  const std::string path = farsee::fuzz::file_of(data, size);
  if (path.empty()) return 0;
  farsee::fuzz::run_parser([&] {
    const farsee::weights::SafetensorsFile file(path);
    for (const auto& [key, value] : file.metadata()) file.metadata_value(key);
    for (const auto& t : file.tensors()) {
      farsee::fuzz::run_parser([&] { file.read_floats(t.name); });
    }
    file.report_unexpected({"a"});
  });
  return 0;
}

}  // namespace

FARSEE_FUZZ_TARGET(fuzz_safetensors);
