// Fuzz harness: image files (tools/data/image_io.h) as farsee-infer, the training loader and
// farsee-eval (ground truth and predictions: the header check, then grey) read them. The cap is
// 1 megapixel so that a valid header cannot make every run decode 64 MP (at 4 MP the fuzzer ran
// at ~270 inputs/s).
#include "tests/fuzz/fuzz_target.h"
#include "tools/data/image_io.h"

namespace {

constexpr int64_t kFuzzMaxPixels = 1'000'000;

int fuzz_image(const uint8_t* data, size_t size) {
  using namespace farsee::tools;
  farsee::fuzz::run_parser([&] { image_info(data, size, "input"); });
  farsee::fuzz::run_parser([&] { decode_image(data, size, 3, kFuzzMaxPixels, "input"); });
  farsee::fuzz::run_parser([&] { decode_image(data, size, 1, kFuzzMaxPixels, "input"); });
  return 0;
}

}  // namespace

FARSEE_FUZZ_TARGET(fuzz_image);
