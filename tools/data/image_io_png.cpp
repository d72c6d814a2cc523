// PNG decoding with libpng (DESIGN.md section 8.1): the file's bytes are read from memory, the
// header is checked against the pixel cap before the pixel buffer is allocated, and every other
// allocation libpng makes is bounded (rows by the width limit, ancillary chunks by
// png_set_chunk_malloc_max; IDAT is streamed, so a chunk claiming gigabytes costs nothing).
// libpng reports errors by longjmp: the functions that call into it hold no C++ object with a
// destructor, and the C++ caller turns a failure into farsee::Error naming the file.
// Output: 8 bits per sample (16-bit samples keep their high byte, as stb_image did), 1-4 channels
// as stored (a palette becomes RGB, RGBA with tRNS; 1/2/4-bit grey is scaled to 8 bits).
#include "kernels/core/check.h"
#include "tools/data/image_io_decode.h"

#if FARSEE_HAVE_LIBPNG

#include <png.h>

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>

namespace farsee::tools::detail {
namespace {

// Largest ancillary chunk (iCCP, zTXt, ...) libpng may allocate for: far above real profiles.
constexpr png_alloc_size_t kMaxChunkBytes = 4u << 20;

// The state libpng's callbacks see (plain C data: it outlives every longjmp).
struct PngSource {
  const uint8_t* bytes = nullptr;
  size_t size = 0, pos = 0;
  char message[256] = {};
  std::jmp_buf jump;
};

struct PngHeader {
  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0;
  bool has_trns = false;
  int channels = 0;  // after the transforms
  size_t rowbytes = 0;
};

void on_error(png_structp png, png_const_charp message) {
  auto* source = static_cast<PngSource*>(png_get_error_ptr(png));
  std::snprintf(source->message, sizeof source->message, "%s", message);
  std::longjmp(source->jump, 1);
}
void on_warning(png_structp, png_const_charp) {}

void on_read(png_structp png, png_bytep out, size_t count) {
  auto* source = static_cast<PngSource*>(png_get_io_ptr(png));
  if (count > source->size - source->pos) png_error(png, "the file ends early (truncated)");
  std::memcpy(out, source->bytes + source->pos, count);
  source->pos += count;
}

// Reads the chunks up to the first IDAT and sets the 8-bit transforms. False on a libpng error
// (the message is in source->message).
bool read_header(png_structp png, png_infop info, PngSource* source, PngHeader* header) {
  if (setjmp(source->jump) != 0) return false;
  png_read_info(png, info);
  header->width = png_get_image_width(png, info);
  header->height = png_get_image_height(png, info);
  header->bit_depth = png_get_bit_depth(png, info);
  header->color_type = png_get_color_type(png, info);
  header->has_trns = png_get_valid(png, info, PNG_INFO_tRNS) != 0;
  if (header->color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (header->color_type == PNG_COLOR_TYPE_GRAY && header->bit_depth < 8) {
    png_set_expand_gray_1_2_4_to_8(png);
  }
  png_set_strip_16(png);
  png_set_interlace_handling(png);
  return true;
}

// Applies the transforms (allocates one row, bounded by the width limit). False on an error.
bool update_info(png_structp png, png_infop info, PngSource* source, PngHeader* header) {
  if (setjmp(source->jump) != 0) return false;
  png_read_update_info(png, info);
  header->channels = png_get_channels(png, info);
  header->rowbytes = png_get_rowbytes(png, info);
  return true;
}

bool read_rows(png_structp png, PngSource* source, png_bytepp rows) {
  if (setjmp(source->jump) != 0) return false;
  png_read_image(png, rows);
  return true;
}

// One libpng reader over `bytes`, destroyed however the decode ends (the constructor does not
// throw; header_of checks that libpng started).
struct PngReader {
  PngSource source;
  png_structp png = nullptr;
  png_infop info = nullptr;
  PngReader(const uint8_t* bytes, size_t size, int64_t max_side) {
    source.bytes = bytes;
    source.size = size;
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &source, on_error, on_warning);
    if (png == nullptr) return;
    info = png_create_info_struct(png);
    png_set_read_fn(png, &source, on_read);
    // Each side within the cap: libpng's row buffers are then bounded by it too.
    const auto side = png_uint_32(std::min<int64_t>(max_side, PNG_UINT_31_MAX));
    png_set_user_limits(png, side, side);
    png_set_chunk_malloc_max(png, kMaxChunkBytes);
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    // The fuzz build only (tests/fuzz): mutated files would nearly all stop at a checksum.
    png_set_crc_action(png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
    png_set_option(png, PNG_IGNORE_ADLER32, PNG_OPTION_ON);
#endif
  }
  ~PngReader() {
    png_destroy_read_struct(&png, info != nullptr ? &info : nullptr, nullptr);
  }
  PngReader(const PngReader&) = delete;
  PngReader& operator=(const PngReader&) = delete;
};

PngHeader header_of(PngReader& reader, const std::string& name) {
  FARSEE_REQUIRE(reader.png != nullptr && reader.info != nullptr,
                 "cannot read image '" << name << "': libpng could not start");
  PngHeader header;
  FARSEE_REQUIRE(read_header(reader.png, reader.info, &reader.source, &header),
                 "cannot read image '" << name << "' (PNG): " << reader.source.message);
  return header;
}

}  // namespace

bool have_libpng() {
  return true;
}

ImageInfo png_info(const uint8_t* bytes, size_t size, const std::string& name) {
  PngReader reader(bytes, size, PNG_UINT_31_MAX);
  const PngHeader header = header_of(reader, name);
  ImageInfo info;
  info.width = int(std::min<png_uint_32>(header.width, PNG_UINT_31_MAX));
  info.height = int(std::min<png_uint_32>(header.height, PNG_UINT_31_MAX));
  info.bit_depth = header.bit_depth;
  // Channels as stb_image counted them (FarSee's label-map check relies on a palette being 3).
  const int type = header.color_type;
  if (type == PNG_COLOR_TYPE_PALETTE) {
    info.channels = header.has_trns ? 4 : 3;
  } else {
    info.channels =
        ((type & PNG_COLOR_MASK_COLOR) ? 3 : 1) + ((type & PNG_COLOR_MASK_ALPHA) ? 1 : 0);
  }
  return info;
}

Decoded png_decode(const uint8_t* bytes, size_t size, int64_t max_pixels, const std::string& name) {
  PngReader reader(bytes, size, max_pixels);
  const PngHeader header = header_of(reader, name);
  // The cap before anything the size of the image exists (4 channels: the most libpng returns).
  check_pixel_cap(name, header.width, header.height, 4, max_pixels);
  PngHeader out = header;
  FARSEE_REQUIRE(update_info(reader.png, reader.info, &reader.source, &out),
                 "cannot read image '" << name << "' (PNG): " << reader.source.message);
  FARSEE_REQUIRE(out.channels >= 1 && out.channels <= 4 &&
                     out.rowbytes == size_t(out.width) * size_t(out.channels),
                 "cannot read image '" << name << "' (PNG): unexpected row layout (" << out.channels
                                       << " channels, " << out.rowbytes << " bytes a row)");
  Decoded d;
  d.width = int(out.width);
  d.height = int(out.height);
  d.channels = out.channels;
  d.data = allocate<uint8_t>(out.rowbytes * out.height, "image '" + name + "'");
  std::vector<png_bytep> rows = allocate<png_bytep>(out.height, "image '" + name + "' rows");
  for (png_uint_32 y = 0; y < out.height; ++y) rows[y] = d.data.data() + y * out.rowbytes;
  FARSEE_REQUIRE(read_rows(reader.png, &reader.source, rows.data()),
                 "cannot read image '" << name << "' (PNG, " << format_pixels(d.height, d.width)
                                       << "): " << reader.source.message);
  return d;
}

}  // namespace farsee::tools::detail

#else  // no libpng: PNGs go to stb_image (a configure-time warning said so)

namespace farsee::tools::detail {
bool have_libpng() {
  return false;
}
ImageInfo png_info(const uint8_t* bytes, size_t size, const std::string& name) {
  return stb_info(bytes, size, name);
}
Decoded png_decode(const uint8_t*, size_t, int64_t, const std::string& name) {
  FARSEE_REQUIRE(false, "cannot read image '" << name << "': built without libpng");
}
}  // namespace farsee::tools::detail

#endif
