// Image and array files for the FarSee programs: PNG and JPEG in (libpng and libjpeg-turbo, made
// for hostile input; stb_image only where they are absent at build time: DESIGN.md section 8.1),
// PNG (stb_image_write) and .npy out, every
// output written atomically and durably (kernels/core/atomic_file.h: a temporary file in the same
// directory, fsync, rename, fsync of the directory), so a reader never sees a half-written file.
// Errors throw farsee::Error naming the file. Hostile input is refused before it costs memory:
// image headers are checked against a pixel limit before decoding, sizes are parsed with range
// checks, and large allocations fail with what they were for.
#pragma once

#include <cstddef>
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

// The header of an image file (no pixel is decoded). Throws naming the file when it is not a
// readable PNG or JPEG.
struct ImageInfo {
  int width = 0, height = 0;
  int channels = 0;   // in the file (a PNG palette counts 3, or 4 with transparency)
  int bit_depth = 8;  // bits per sample as stored (PNG: 1, 2, 4, 8 or 16; JPEG: 8)
};
ImageInfo read_image_info(const std::string& path);
// The same from the file's bytes; `name` names the file in errors.
ImageInfo image_info(const uint8_t* bytes, size_t size, const std::string& name);

// Reads a PNG or JPEG as RGB (grey and alpha are converted). The header is read first: an image
// of more than `max_pixels` pixels is refused, naming its size, before any pixel is decoded or
// allocated. BMP and other formats are refused with a message saying to convert to PNG.
Image read_rgb(const std::string& path, int64_t max_pixels = kDefaultMaxPixels);
// Reads an 8-bit image keeping one channel (label maps).
Image read_grey(const std::string& path, int64_t max_pixels = kDefaultMaxPixels);
// Decodes a PNG or JPEG held in memory to `channels` (1 or 3) channels, as read_rgb/read_grey do;
// `name` names the file in errors. The fuzzers' entry (tests/fuzz/).
Image decode_image(const uint8_t* bytes, size_t size, int channels, int64_t max_pixels,
                   const std::string& name);

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
