#include "tools/image_io.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "kernels/core/check.h"

// stb's implementations live in this one translation unit (header-only libraries from libstb-dev;
// included as system headers so their own warnings stay quiet).
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

namespace farsee::tools {
namespace {

Image read_image(const std::string& path, int channels) {
  int w = 0, h = 0, file_channels = 0;
  stbi_uc* pixels = stbi_load(path.c_str(), &w, &h, &file_channels, channels);
  FARSEE_REQUIRE(pixels != nullptr,
                 "cannot read image '" << path << "': " << stbi_failure_reason());
  Image im;
  im.width = w;
  im.height = h;
  im.channels = channels;
  im.data.assign(pixels, pixels + size_t(w) * h * channels);
  stbi_image_free(pixels);
  return im;
}

void append_bytes(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(context);
  const auto* p = static_cast<const uint8_t*>(data);
  out->insert(out->end(), p, p + size);
}

}  // namespace

Image read_rgb(const std::string& path) {
  return read_image(path, 3);
}
Image read_grey(const std::string& path) {
  return read_image(path, 1);
}

void write_file_atomic(const std::string& path, const void* data, size_t bytes) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  FARSEE_REQUIRE(f != nullptr, "cannot write '" << path << "': " << std::strerror(errno));
  const bool written = std::fwrite(data, 1, bytes, f) == bytes;
  const int saved_errno = errno;
  const bool closed = std::fclose(f) == 0;
  if (!written || !closed) {
    std::remove(tmp.c_str());
    FARSEE_REQUIRE(false, "cannot write '" << path << "': " << std::strerror(saved_errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    FARSEE_REQUIRE(false, "cannot move '" << tmp << "' to '" << path << "': " << std::strerror(e));
  }
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
  const auto* bytes = reinterpret_cast<const uint8_t*>(data.data());
  out.insert(out.end(), bytes, bytes + data.size() * 4);  // x86/ARM hosts are little-endian
  write_file_atomic(path, out.data(), out.size());
}

std::pair<int, int> parse_size(const std::string& text, const char* what) {
  int h = 0, w = 0;
  char x = 0, extra = 0;
  const int got = std::sscanf(text.c_str(), "%d%c%d%c", &h, &x, &w, &extra);
  FARSEE_REQUIRE(got == 3 && (x == 'x' || x == 'X') && h > 0 && w > 0,
                 what << ": '" << text << "' is not a size HxW such as 512x1024");
  return {h, w};
}

}  // namespace farsee::tools
