// Image and array files for the FarSee programs: PNG/JPG in (stb_image), PNG and .npy out, every
// output written atomically and durably (kernels/core/atomic_file.h: a temporary file in the same
// directory, fsync, rename, fsync of the directory), so a reader never sees a half-written file.
// Errors throw farsee::Error naming the file. Hostile input is refused before it costs memory:
// image headers are checked against a pixel limit before decoding, sizes are parsed with range
// checks, and large allocations fail with what they were for.
#pragma once

#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "kernels/core/atomic_file.h"
#include "kernels/core/check.h"

namespace farsee::tools {

struct Image {
  int width = 0, height = 0;
  int channels = 0;           // 1 (grey) or 3 (RGB)
  std::vector<uint8_t> data;  // [height][width][channels]
};

// Images larger than this many pixels are refused before decoding unless the caller raises the
// limit (farsee-infer --max-megapixels): 64 megapixels, e.g. 8192x8192.
constexpr int64_t kDefaultMaxPixels = 64'000'000;

// The header of an image file (stbi_info: no pixel is decoded). Throws naming the file when it is
// not a readable image.
struct ImageInfo {
  int width = 0, height = 0;
  int channels = 0;  // in the file
};
ImageInfo read_image_info(const std::string& path);

// Reads PNG, JPG, BMP, ... as RGB (grey and alpha are converted). The header is read first: an
// image of more than `max_pixels` pixels is refused, naming its size, before any pixel is
// decoded or allocated.
Image read_rgb(const std::string& path, int64_t max_pixels = kDefaultMaxPixels);
// Reads an 8-bit image keeping one channel (label maps).
Image read_grey(const std::string& path, int64_t max_pixels = kDefaultMaxPixels);

void write_png(const std::string& path, const Image& image);
// `shape` in C order; writes little-endian float32 ('<f4'), streaming `data` to the file (no copy).
void write_npy(const std::string& path, const std::vector<int64_t>& shape,
               const std::vector<float>& data);
// The atomic writer of every FarSee file (kernels/core/atomic_file.h), here for the programs.
using farsee::ByteRange;
using farsee::write_file_atomic;

// Largest height or width parse_size accepts.
constexpr int kMaxImageSide = 65536;

// "512x1024" -> {512, 1024}; throws naming `what` and the text when malformed, when a side is not
// in 1..kMaxImageSide (no silent integer overflow: "99999999999x64" is refused as such).
std::pair<int, int> parse_size(const std::string& text, const char* what);

// "24.6 GB", "160.0 MB", "512 bytes": a byte count for messages.
std::string format_bytes(double bytes);
// "20000x20000 (400.0 megapixels)"
std::string format_pixels(int64_t height, int64_t width);

// A host vector of `count` values; an allocation that cannot succeed throws farsee::Error naming
// `what` and the size in bytes (never a bare std::bad_alloc).
template <typename T>
std::vector<T> allocate(size_t count, const std::string& what) {
  try {
    return std::vector<T>(count);
  } catch (const std::bad_alloc&) {
  } catch (const std::length_error&) {
  }
  FARSEE_REQUIRE(false, "out of memory: cannot allocate " << format_bytes(double(count) * sizeof(T))
                                                          << " for " << what);
}

}  // namespace farsee::tools
