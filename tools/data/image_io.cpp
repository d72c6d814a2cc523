#include "tools/data/image_io.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <tuple>
#include <utility>

#include "kernels/core/check.h"
#include "tools/data/image_io_decode.h"

// stb_image_write encodes our PNGs (implemented in image_io_stb.cpp).
#include <stb/stb_image_write.h>

namespace farsee::tools {
namespace detail {

ImageFormat sniff_format(const uint8_t* bytes, size_t size) {
  static const uint8_t png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (size >= 8 && std::memcmp(bytes, png, 8) == 0) return ImageFormat::kPng;
  if (size >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8 && bytes[2] == 0xff) {
    return ImageFormat::kJpeg;
  }
  if (size >= 2 && bytes[0] == 'B' && bytes[1] == 'M') return ImageFormat::kBmp;
  return ImageFormat::kUnknown;
}

void check_pixel_cap(const std::string& name, int64_t width, int64_t height, int channels,
                     int64_t max_pixels) {
  FARSEE_REQUIRE(width > 0 && height > 0, "cannot read image '"
                                              << name << "': its header gives a size of " << height
                                              << "x" << width);
  const int64_t pixels_declared = width * height;
  FARSEE_REQUIRE(pixels_declared <= max_pixels,
                 "image '" << name << "' is " << format_pixels(height, width)
                           << ", above the limit of " << double(max_pixels) / 1e6
                           << " megapixels (decoding it needs "
                           << format_bytes(double(pixels_declared) * channels)
                           << "); raise the limit with --max-megapixels if this is intended");
}

Image to_channels(Decoded&& d, int channels) {
  Image im;
  im.width = d.width;
  im.height = d.height;
  im.channels = channels;
  const size_t pixels = size_t(d.width) * size_t(d.height);
  if (d.channels == channels) {
    im.data = std::move(d.data);
    return im;
  }
  im.data = allocate<uint8_t>(pixels * size_t(channels), "the converted image");
  const uint8_t* in = d.data.data();
  uint8_t* out = im.data.data();
  for (size_t i = 0; i < pixels; ++i, in += d.channels, out += channels) {
    if (channels == 3) {
      const bool grey = d.channels < 3;
      out[0] = in[0];
      out[1] = grey ? in[0] : in[1];
      out[2] = grey ? in[0] : in[2];
    } else {
      // stbi__compute_y: the weights and rounding of the grey every FarSee release computed.
      out[0] = d.channels < 3 ? in[0] : uint8_t((in[0] * 77 + in[1] * 150 + in[2] * 29) >> 8);
    }
  }
  return im;
}

}  // namespace detail

namespace {

// The whole file: every later allocation is bounded by its size or by the pixel cap.
std::vector<uint8_t> read_file_bytes(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  FARSEE_REQUIRE(f != nullptr, "cannot read image '" << path << "': " << std::strerror(errno));
  std::vector<uint8_t> bytes;
  uint8_t chunk[65536];
  size_t n = 0;
  while ((n = std::fread(chunk, 1, sizeof chunk, f)) > 0) {
    bytes.insert(bytes.end(), chunk, chunk + n);
  }
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  FARSEE_REQUIRE(!failed, "cannot read image '" << path << "': read error");
  return bytes;
}

// The format of `bytes`, or an error naming the file for what FarSee does not decode.
detail::ImageFormat supported_format(const uint8_t* bytes, size_t size, const std::string& name) {
  const detail::ImageFormat format = detail::sniff_format(bytes, size);
  FARSEE_REQUIRE(format != detail::ImageFormat::kBmp,
                 "cannot read image '" << name << "': BMP not supported, convert to PNG");
  FARSEE_REQUIRE(format != detail::ImageFormat::kUnknown,
                 "cannot read image '" << name << "': not a PNG or JPEG file (" << size
                                       << " bytes; other formats: convert to PNG)");
  return format;
}

Image read_image(const std::string& path, int channels, int64_t max_pixels) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  return decode_image(bytes.data(), bytes.size(), channels, max_pixels, path);
}

void append_bytes(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(context);
  const auto* p = static_cast<const uint8_t*>(data);
  out->insert(out->end(), p, p + size);
}

}  // namespace

ImageInfo image_info(const uint8_t* bytes, size_t size, const std::string& name) {
  const detail::ImageFormat format = supported_format(bytes, size, name);
  if (format == detail::ImageFormat::kPng && detail::have_libpng()) {
    return detail::png_info(bytes, size, name);
  }
  if (format == detail::ImageFormat::kJpeg && detail::have_libjpeg()) {
    return detail::jpeg_info(bytes, size, name);
  }
  return detail::stb_info(bytes, size, name);
}

ImageInfo read_image_info(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  return image_info(bytes.data(), bytes.size(), path);
}

Image decode_image(const uint8_t* bytes, size_t size, int channels, int64_t max_pixels,
                   const std::string& name) {
  FARSEE_REQUIRE(channels == 1 || channels == 3,
                 "decode_image '" << name << "': channels must be 1 or 3, not " << channels);
  const detail::ImageFormat format = supported_format(bytes, size, name);
  if (format == detail::ImageFormat::kPng && detail::have_libpng()) {
    return detail::to_channels(detail::png_decode(bytes, size, max_pixels, name), channels);
  }
  if (format == detail::ImageFormat::kJpeg && detail::have_libjpeg()) {
    return detail::to_channels(detail::jpeg_decode(bytes, size, max_pixels, name), channels);
  }
  return detail::stb_decode(bytes, size, channels, max_pixels, name);
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
