// Image and array files for the FarSee programs: PNG/JPG in (stb_image), PNG and .npy out, every
// output written atomically (a temporary file in the same directory, then rename), so a reader
// never sees a half-written file. Errors throw farsee::Error naming the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace farsee::tools {

struct Image {
  int width = 0, height = 0;
  int channels = 0;           // 1 (grey) or 3 (RGB)
  std::vector<uint8_t> data;  // [height][width][channels]
};

// Reads PNG, JPG, BMP, ... as RGB (grey and alpha are converted).
Image read_rgb(const std::string& path);
// Reads an 8-bit image keeping one channel (label maps).
Image read_grey(const std::string& path);

void write_png(const std::string& path, const Image& image);
// `shape` in C order; writes little-endian float32 ('<f4').
void write_npy(const std::string& path, const std::vector<int64_t>& shape,
               const std::vector<float>& data);
void write_file_atomic(const std::string& path, const void* data, size_t bytes);

// "512x1024" -> {512, 1024}; throws naming `what` when malformed or not positive.
std::pair<int, int> parse_size(const std::string& text, const char* what);

}  // namespace farsee::tools
