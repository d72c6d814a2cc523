// JPEG decoding with libjpeg-turbo's libjpeg API (DESIGN.md section 8.1), from the file's bytes
// in memory, with libjpeg's default decoder settings (islow IDCT, fancy upsampling: what Pillow
// uses, so the pixels equal PIL's decode). The header is checked against the pixel cap before
// decompression starts; only grey, YCbCr and RGB files are accepted, so libjpeg's own buffers
// (the whole-image coefficients of a progressive file included) stay bounded by the cap, and a
// progressive file may hold at most kMaxScans scans (libjpeg-turbo's advice against scan floods).
// libjpeg reports errors by longjmp: the functions that call into it hold no C++ object with a
// destructor, and the C++ caller turns a failure into farsee::Error naming the file.
#include "kernels/core/check.h"
#include "tools/data/image_io_decode.h"

#if FARSEE_HAVE_LIBJPEG

#include <jpeglib.h>

#include <csetjmp>
#include <cstdio>  // jpeglib.h needs FILE and size_t first
#include <cstring>

namespace farsee::tools::detail {
namespace {

constexpr int kMaxScans = 500;

// The error manager first, so libjpeg's `err` pointer is also this struct's (plain C data).
struct JpegErrors {
  jpeg_error_mgr mgr;
  char message[JMSG_LENGTH_MAX] = {};
  std::jmp_buf jump;
};

void on_error_exit(j_common_ptr cinfo) {
  auto* errors = reinterpret_cast<JpegErrors*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, errors->message);
  std::longjmp(errors->jump, 1);
}
// Warnings (corrupt entropy data, a missing EOI) are what every viewer tolerates: not errors.
void on_message(j_common_ptr, int) {}

void on_progress(j_common_ptr cinfo) {
  auto* d = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (d->input_scan_number > kMaxScans) {
    auto* errors = reinterpret_cast<JpegErrors*>(cinfo->err);
    std::snprintf(errors->message, sizeof errors->message, "more than %d scans", kMaxScans);
    std::longjmp(errors->jump, 1);
  }
}

// One libjpeg decompressor over `bytes`, destroyed however the decode ends.
struct JpegReader {
  jpeg_decompress_struct cinfo;
  JpegErrors errors;
  jpeg_progress_mgr progress;
  bool created = false;
  ~JpegReader() {
    if (created) jpeg_destroy_decompress(&cinfo);
  }
};

// Creates the decompressor and reads the header. False on an error (reader->errors.message).
bool read_header(JpegReader* r, const uint8_t* bytes, size_t size) {
  r->cinfo.err = jpeg_std_error(&r->errors.mgr);
  r->errors.mgr.error_exit = on_error_exit;
  r->errors.mgr.emit_message = on_message;
  if (setjmp(r->errors.jump) != 0) return false;
  jpeg_create_decompress(&r->cinfo);
  r->created = true;
  r->progress.progress_monitor = on_progress;
  r->cinfo.progress = &r->progress;
  jpeg_mem_src(&r->cinfo, bytes, static_cast<unsigned long>(size));
  jpeg_read_header(&r->cinfo, TRUE);
  return true;
}

// Decompresses into `out` (height rows of width * channels bytes). False on an error.
bool read_rows(JpegReader* r, uint8_t* out, size_t row_bytes) {
  if (setjmp(r->errors.jump) != 0) return false;
  jpeg_start_decompress(&r->cinfo);
  if (r->cinfo.output_components * size_t(r->cinfo.output_width) != row_bytes) {
    std::snprintf(r->errors.message, sizeof r->errors.message, "unexpected output size");
    return false;
  }
  while (r->cinfo.output_scanline < r->cinfo.output_height) {
    JSAMPROW row = out + size_t(r->cinfo.output_scanline) * row_bytes;
    jpeg_read_scanlines(&r->cinfo, &row, 1);
  }
  return true;
}

// The header, with the output colour space chosen (grey stays grey, the rest becomes RGB).
void open_jpeg(JpegReader* r, const uint8_t* bytes, size_t size, const std::string& name) {
  FARSEE_REQUIRE(size <= size_t(~0ul), "cannot read image '" << name << "': too large");
  FARSEE_REQUIRE(read_header(r, bytes, size),
                 "cannot read image '" << name << "' (JPEG): " << r->errors.message);
  const J_COLOR_SPACE space = r->cinfo.jpeg_color_space;
  const int components = r->cinfo.num_components;
  const bool grey = space == JCS_GRAYSCALE && components == 1;
  const bool colour = (space == JCS_YCbCr || space == JCS_RGB) && components == 3;
  FARSEE_REQUIRE(grey || colour, "cannot read image '"
                                     << name << "' (JPEG): colour space " << int(space) << " with "
                                     << components
                                     << " components (CMYK and others) is not supported; "
                                        "convert to PNG");
  r->cinfo.out_color_space = grey ? JCS_GRAYSCALE : JCS_RGB;
}

}  // namespace

bool have_libjpeg() {
  return true;
}

ImageInfo jpeg_info(const uint8_t* bytes, size_t size, const std::string& name) {
  JpegReader reader;
  open_jpeg(&reader, bytes, size, name);
  ImageInfo info;
  info.width = int(reader.cinfo.image_width);
  info.height = int(reader.cinfo.image_height);
  info.channels = reader.cinfo.out_color_space == JCS_GRAYSCALE ? 1 : 3;
  info.bit_depth = 8;
  return info;
}

Decoded jpeg_decode(const uint8_t* bytes, size_t size, int64_t max_pixels,
                    const std::string& name) {
  JpegReader reader;
  open_jpeg(&reader, bytes, size, name);
  const int channels = reader.cinfo.out_color_space == JCS_GRAYSCALE ? 1 : 3;
  check_pixel_cap(name, reader.cinfo.image_width, reader.cinfo.image_height, channels, max_pixels);
  Decoded d;
  d.width = int(reader.cinfo.image_width);
  d.height = int(reader.cinfo.image_height);
  d.channels = channels;
  const size_t row_bytes = size_t(d.width) * size_t(channels);
  d.data = allocate<uint8_t>(row_bytes * size_t(d.height), "image '" + name + "'");
  FARSEE_REQUIRE(read_rows(&reader, d.data.data(), row_bytes),
                 "cannot read image '" << name << "' (JPEG, " << format_pixels(d.height, d.width)
                                       << "): " << reader.errors.message);
  return d;
}

}  // namespace farsee::tools::detail

#else  // no libjpeg-turbo: JPEGs go to stb_image (a configure-time warning said so)

namespace farsee::tools::detail {
bool have_libjpeg() {
  return false;
}
ImageInfo jpeg_info(const uint8_t* bytes, size_t size, const std::string& name) {
  return stb_info(bytes, size, name);
}
Decoded jpeg_decode(const uint8_t*, size_t, int64_t, const std::string& name) {
  FARSEE_REQUIRE(false, "cannot read image '" << name << "': built without libjpeg-turbo");
}
}  // namespace farsee::tools::detail

#endif
