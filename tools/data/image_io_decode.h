// The image decoders behind tools/data/image_io.h (DESIGN.md section 8.1, untrusted input): PNG
// with libpng, JPEG with libjpeg-turbo, both from the file's bytes in memory; stb_image only where
// a library is absent at build time (and in the tests, as the decoder the others must match).
// Every decoder reads the header, refuses more than `max_pixels` pixels before it allocates
// anything for pixels, and throws farsee::Error naming `name` (the file).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tools/data/image_io.h"

namespace farsee::tools::detail {

enum class ImageFormat { kPng, kJpeg, kBmp, kUnknown };
ImageFormat sniff_format(const uint8_t* bytes, size_t size);

// An image as stored, 8 bits per sample: 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA.
struct Decoded {
  int width = 0, height = 0;
  int channels = 0;
  std::vector<uint8_t> data;  // [height][width][channels]
};

// Throws unless width x height is within max_pixels (the message names the file, the size and
// the bytes `channels` samples per pixel would take).
void check_pixel_cap(const std::string& name, int64_t width, int64_t height, int channels,
                     int64_t max_pixels);

// stb_image's conversions (what the programs always got): grey = (77 R + 150 G + 29 B) >> 8,
// grey to RGB by replication, alpha dropped (not blended).
Image to_channels(Decoded&& decoded, int channels);

// Whether the library was found at build time (FARSEE_HAVE_LIBPNG / FARSEE_HAVE_LIBJPEG).
bool have_libpng();
bool have_libjpeg();

// libpng (image_io_png.cpp). Info: channels as stb_image counts them (a palette is 3, or 4 with
// transparency), bit_depth as stored.
ImageInfo png_info(const uint8_t* bytes, size_t size, const std::string& name);
Decoded png_decode(const uint8_t* bytes, size_t size, int64_t max_pixels, const std::string& name);

// libjpeg-turbo (image_io_jpeg.cpp): grey, YCbCr and RGB JPEGs; CMYK and other colour spaces are
// refused.
ImageInfo jpeg_info(const uint8_t* bytes, size_t size, const std::string& name);
Decoded jpeg_decode(const uint8_t* bytes, size_t size, int64_t max_pixels, const std::string& name);

// stb_image (image_io_stb.cpp): the fallback, and the old decoder the tests compare with.
ImageInfo stb_info(const uint8_t* bytes, size_t size, const std::string& name);
Image stb_decode(const uint8_t* bytes, size_t size, int channels, int64_t max_pixels,
                 const std::string& name);

}  // namespace farsee::tools::detail
