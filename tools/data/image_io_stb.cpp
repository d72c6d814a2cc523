// stb_image and stb_image_write (header-only, from libstb-dev): their implementations live in
// this one translation unit. stb_image decodes only where libpng or libjpeg-turbo was not found
// at build time (it is not meant for untrusted input: DESIGN.md section 8.1), and in the tests as
// the decoder whose output the libraries must reproduce bit for bit.
#include <climits>

#include "kernels/core/check.h"
#include "tools/data/image_io_decode.h"

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

namespace farsee::tools::detail {

ImageInfo stb_info(const uint8_t* bytes, size_t size, const std::string& name) {
  FARSEE_REQUIRE(size <= size_t(INT_MAX), "cannot read image '" << name << "': over 2 GB");
  ImageInfo info;
  const int ok = stbi_info_from_memory(bytes, int(size), &info.width, &info.height, &info.channels);
  FARSEE_REQUIRE(ok != 0 && info.width > 0 && info.height > 0,
                 "cannot read image '" << name << "': " << stbi_failure_reason());
  info.bit_depth = stbi_is_16_bit_from_memory(bytes, int(size)) ? 16 : 8;
  return info;
}

Image stb_decode(const uint8_t* bytes, size_t size, int channels, int64_t max_pixels,
                 const std::string& name) {
  // The header first: a small file may declare a huge image (a 388 KB PNG of 20000x20000 decodes
  // to 1.2 GB), so the size is checked before stb allocates anything.
  const ImageInfo info = stb_info(bytes, size, name);
  check_pixel_cap(name, info.width, info.height, channels, max_pixels);
  int w = 0, h = 0, file_channels = 0;
  stbi_uc* pixels = stbi_load_from_memory(bytes, int(size), &w, &h, &file_channels, channels);
  FARSEE_REQUIRE(pixels != nullptr, "cannot read image '" << name << "' ("
                                                          << format_pixels(info.height, info.width)
                                                          << "): " << stbi_failure_reason());
  Image im;
  im.width = w;
  im.height = h;
  im.channels = channels;
  try {
    im.data.assign(pixels, pixels + size_t(w) * h * channels);
  } catch (const std::bad_alloc&) {
    stbi_image_free(pixels);
    FARSEE_REQUIRE(false, "out of memory: cannot allocate "
                              << format_bytes(double(w) * h * channels) << " for image '" << name
                              << "' (" << format_pixels(h, w) << ")");
  }
  stbi_image_free(pixels);
  return im;
}

}  // namespace farsee::tools::detail
