// farsee_consumer WEIGHTS IMAGE.ppm LABELS.pgm: a user's program against an installed FarSee.
// Makes a deterministic 96x160 test image, writes it as IMAGE.ppm (for farsee-infer to segment
// the same pixels), segments it through farsee/farsee.h with the weights' own settings and writes
// the labels as LABELS.pgm (binary PGM). Also checks that a bad call is a farsee::Error.
#include <farsee/farsee.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

constexpr int kHeight = 96, kWidth = 160;

// Sky above, a grey road below, a dark block in the middle: something to segment.
std::vector<uint8_t> make_image() {
  std::vector<uint8_t> rgb(size_t(kHeight) * kWidth * 3);
  for (int y = 0; y < kHeight; ++y) {
    for (int x = 0; x < kWidth; ++x) {
      uint8_t* p = &rgb[(size_t(y) * kWidth + x) * 3];
      const bool block = x > 60 && x < 100 && y > 30 && y < 70;
      const uint8_t v = uint8_t((x * 7 + y * 3) % 16);
      p[0] = block ? 40 + v : (y < 40 ? 110 + v : 120 + v);
      p[1] = block ? 40 + v : (y < 40 ? 160 + v : 120 + v);
      p[2] = block ? 50 + v : (y < 40 ? 220 + v : 125 + v);
    }
  }
  return rgb;
}

// Binary PPM (P6): the simplest RGB file; install_test.sh turns it into the PNG farsee-infer reads
// (the consumer needs no image library).
void write_ppm(const char* path, const std::vector<uint8_t>& rgb) {
  std::ofstream f(path, std::ios::binary);
  f << "P6\n" << kWidth << " " << kHeight << "\n255\n";
  f.write(reinterpret_cast<const char*>(rgb.data()), std::streamsize(rgb.size()));
  if (!f) throw std::runtime_error(std::string("cannot write ") + path);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: farsee_consumer WEIGHTS IMAGE.ppm LABELS.pgm\n";
    return 2;
  }
  try {
    const std::vector<uint8_t> rgb = make_image();
    write_ppm(argv[2], rgb);
    farsee::SegmenterOptions options;
    options.weights = argv[1];
    farsee::Segmenter segmenter(options);
    const farsee::LabelMap labels = segmenter.segment(rgb.data(), kHeight, kWidth);
    std::ofstream pgm(argv[3], std::ios::binary);
    pgm << "P5\n" << labels.width << " " << labels.height << "\n255\n";
    pgm.write(reinterpret_cast<const char*>(labels.data.data()),
              std::streamsize(labels.data.size()));
    bool refused = false;
    try {
      segmenter.segment(nullptr, 1, 1);
    } catch (const farsee::Error& e) {
      refused = std::string(e.what()).find("image pointer is null") != std::string::npos;
    }
    if (!refused) throw std::runtime_error("a null image was not refused with a farsee::Error");
    std::cout << "farsee_consumer: FarSee " << farsee::version() << ", preset "
              << segmenter.preset() << ", input " << segmenter.input_height() << "x"
              << segmenter.input_width() << ", executor " << segmenter.executor() << ", "
              << labels.height << "x" << labels.width << " labels\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "farsee_consumer: error: " << e.what() << "\n";
    return 1;
  }
}
