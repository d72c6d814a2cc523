// Fuzz harness: a pack (tools/data/pack.h: PackReader) as farsee-train and farsee-eval map it: the
// header, the meta JSON, the names, the index, then the first samples decoded (raw, LZ4, zstd) with
// their label ids checked. The fuzz build does not enforce the checksums
// (FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, tools/data/pack_format.h), so mutations reach the
// index checks and the codecs instead of stopping at a checksum mismatch.
#include "tests/fuzz/fuzz_target.h"
#include "tools/data/pack.h"

namespace {

constexpr size_t kSamplesDecoded = 8;  // enough to reach every entry of the seeds
constexpr int kClasses = 19;

int fuzz_pack(const uint8_t* data, size_t size) {
  const std::string path = farsee::fuzz::file_of(data, size);
  if (path.empty()) return 0;
  farsee::fuzz::run_parser([&] {
    const farsee::tools::PackReader pack(path);
    for (size_t i = 0; i < pack.size() && i < kSamplesDecoded; ++i) {
      farsee::fuzz::run_parser([&] {
        pack.names(i);
        pack.decode(i, kClasses);
      });
    }
  });
  return 0;
}

}  // namespace

FARSEE_FUZZ_TARGET(fuzz_pack);
