#include "tools/data/image_io.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <tuple>

#include "kernels/core/check.h"

// stb's implementations live in this one translation unit (header-only libraries from libstb-dev;
// included as system headers so their own warnings stay quiet).
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

namespace farsee::tools {
namespace {

Image read_image(const std::string& path, int channels, int64_t max_pixels) {
  // The header first: a small file may declare a huge image (a 388 KB PNG of 20000x20000 decodes
  // to 1.2 GB), so the size is checked before stb allocates anything.
  const ImageInfo info = read_image_info(path);
  const int64_t pixels_declared = int64_t(info.width) * info.height;
  FARSEE_REQUIRE(pixels_declared <= max_pixels,
                 "image '" << path << "' is " << format_pixels(info.height, info.width)
                           << ", above the limit of " << double(max_pixels) / 1e6
                           << " megapixels (decoding it needs "
                           << format_bytes(double(pixels_declared) * channels)
                           << "); raise the limit with --max-megapixels if this is intended");
  int w = 0, h = 0, file_channels = 0;
  stbi_uc* pixels = stbi_load(path.c_str(), &w, &h, &file_channels, channels);
  FARSEE_REQUIRE(pixels != nullptr, "cannot read image '" << path << "' ("
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
                              << format_bytes(double(w) * h * channels) << " for image '" << path
                              << "' (" << format_pixels(h, w) << ")");
  }
  stbi_image_free(pixels);
  return im;
}

void append_bytes(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(context);
  const auto* p = static_cast<const uint8_t*>(data);
  out->insert(out->end(), p, p + size);
}

}  // namespace

ImageInfo read_image_info(const std::string& path) {
  ImageInfo info;
  FILE* f = std::fopen(path.c_str(), "rb");
  FARSEE_REQUIRE(f != nullptr, "cannot read image '" << path << "': " << std::strerror(errno));
  const int ok = stbi_info_from_file(f, &info.width, &info.height, &info.channels);
  std::fclose(f);
  FARSEE_REQUIRE(ok != 0 && info.width > 0 && info.height > 0,
                 "cannot read image '" << path << "': " << stbi_failure_reason());
  return info;
}

Image read_rgb(const std::string& path, int64_t max_pixels) {
  return read_image(path, 3, max_pixels);
}
Image read_grey(const std::string& path, int64_t max_pixels) {
  return read_image(path, 1, max_pixels);
}

void write_png(const std::string& path, const Image& image) {
  FARSEE_REQUIRE(image.data.size() == size_t(image.width) * image.height * image.channels,
                 "write_png '" << path << "': image data does not match its size");
  std::vector<uint8_t> png;
  const int ok =
      stbi_write_png_to_func(append_bytes, &png, image.width, image.height, image.channels,
                             image.data.data(), image.width * image.channels);
  FARSEE_REQUIRE(ok != 0, "cannot encode PNG '" << path << "'");
  write_file_atomic(path, png.data(), png.size());
}

void write_npy(const std::string& path, const std::vector<int64_t>& shape,
               const std::vector<float>& data) {
  int64_t count = 1;
  std::ostringstream dims;
  for (size_t i = 0; i < shape.size(); ++i) {
    count *= shape[i];
    dims << shape[i] << (shape.size() == 1 || i + 1 < shape.size() ? "," : "");
    if (i + 1 < shape.size()) dims << " ";
  }
  FARSEE_REQUIRE(count == int64_t(data.size()),
                 "write_npy '" << path << "': " << data.size() << " values for the shape");
  // NPY 1.0: magic, version, little-endian header length, a Python dict literal padded with
  // spaces and ended by '\n' so that the data starts on a 64-byte boundary.
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims.str() + "), }";
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::vector<uint8_t> out;
  const char magic[] = "\x93NUMPY\x01\x00";
  out.insert(out.end(), magic, magic + 8);
  out.push_back(uint8_t(header.size() & 0xff));
  out.push_back(uint8_t(header.size() >> 8));
  out.insert(out.end(), header.begin(), header.end());
  static_assert(sizeof(float) == 4, "float32");
  // x86/ARM hosts are little-endian; the values go to the file straight from `data`.
  write_file_atomic(path, {{out.data(), out.size()}, {data.data(), data.size() * sizeof(float)}});
}

namespace {

// One side of a size: decimal digits only, 1..kMaxImageSide, no overflow whatever the length.
bool parse_side(const std::string& text, int* value) {
  if (text.empty() || text.size() > 9) return false;
  long v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v < 1 || v > kMaxImageSide) return false;
  *value = int(v);
  return true;
}

}  // namespace

std::pair<int, int> parse_size(const std::string& text, const char* what) {
  const size_t x = text.find_first_of("xX");
  FARSEE_REQUIRE(x != std::string::npos && text.find_first_of("xX", x + 1) == std::string::npos,
                 what << ": '" << text << "' is not a size HxW such as 512x1024");
  const std::string hs = text.substr(0, x), ws = text.substr(x + 1);
  int h = 0, w = 0;
  for (const auto& [side, name, value] :
       {std::tuple{&hs, "height", &h}, std::tuple{&ws, "width", &w}}) {
    const bool digits =
        !side->empty() && side->find_first_not_of("0123456789") == std::string::npos;
    FARSEE_REQUIRE(digits, what << ": '" << text << "' is not a size HxW such as 512x1024");
    FARSEE_REQUIRE(parse_side(*side, value), what << ": '" << text << "': " << name << " " << *side
                                                  << " is out of range (1 to " << kMaxImageSide
                                                  << ")");
  }
  return {h, w};
}

std::string format_bytes(double bytes) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(1);
  if (bytes >= 1e9) {
    s << bytes / 1e9 << " GB";
  } else if (bytes >= 1e6) {
    s << bytes / 1e6 << " MB";
  } else if (bytes >= 1e3) {
    s << bytes / 1e3 << " KB";
  } else {
    s.precision(0);
    s << bytes << " bytes";
  }
  return s.str();
}

std::string format_pixels(int64_t height, int64_t width) {
  const double mp = double(height) * double(width) / 1e6;
  std::ostringstream s;
  if (mp >= 10) {
    s.setf(std::ios::fixed);
    s.precision(1);
  } else {
    s.precision(3);
  }
  s << height << "x" << width << " (" << mp << " megapixels)";
  return s.str();
}

}  // namespace farsee::tools
