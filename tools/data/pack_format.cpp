#include "tools/data/pack_format.h"

#include <cstring>

#include "kernels/core/check.h"

#if FARSEE_HAVE_LZ4
#include <lz4.h>
#endif
#if FARSEE_HAVE_ZSTD
#include <zstd.h>
#endif

namespace farsee::tools {
namespace {

// ---- XXH64 (the xxHash specification: 32-byte stripes in four lanes, then the tail) -----------

constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull, kP2 = 0xC2B2AE3D27D4EB4Full,
                   kP3 = 0x165667B19E3779F9ull, kP4 = 0x85EBCA77C2B2AE63ull,
                   kP5 = 0x27D4EB2F165667C5ull;

uint64_t rotl(uint64_t x, int r) {
  return (x << r) | (x >> (64 - r));
}
uint64_t load64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint32_t load32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
uint64_t round64(uint64_t acc, uint64_t input) {
  return rotl(acc + input * kP2, 31) * kP1;
}
uint64_t merge64(uint64_t acc, uint64_t lane) {
  return (acc ^ round64(0, lane)) * kP1 + kP4;
}

}  // namespace

uint64_t xxh64(const void* data, size_t bytes, uint64_t seed) {
  const auto* p = static_cast<const uint8_t*>(data);
  const uint8_t* const end = p + bytes;
  uint64_t h;
  if (bytes >= 32) {
    uint64_t v[4] = {seed + kP1 + kP2, seed + kP2, seed, seed - kP1};
    for (; end - p >= 32; p += 32) {
      for (int l = 0; l < 4; ++l) v[l] = round64(v[l], load64(p + 8 * l));
    }
    h = rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18);
    for (uint64_t lane : v) h = merge64(h, lane);
  } else {
    h = seed + kP5;
  }
  h += uint64_t(bytes);
  for (; end - p >= 8; p += 8) h = rotl(h ^ round64(0, load64(p)), 27) * kP1 + kP4;
  if (end - p >= 4) {
    h = rotl(h ^ (uint64_t(load32(p)) * kP1), 23) * kP2 + kP3;
    p += 4;
  }
  for (; p < end; ++p) h = rotl(h ^ (*p * kP5), 11) * kP1;
  h = (h ^ (h >> 33)) * kP2;
  h = (h ^ (h >> 29)) * kP3;
  return h ^ (h >> 32);
}

// ---- codecs ----------------------------------------------------------------------------------

const char* pack_codec_name(PackCodec codec) {
  switch (codec) {
    case PackCodec::kRaw:
      return "raw";
    case PackCodec::kLz4:
      return "lz4";
    case PackCodec::kZstd:
      return "zstd";
  }
  return "unknown";
}

bool pack_codec_available(PackCodec codec) {
  return codec == PackCodec::kRaw || (codec == PackCodec::kLz4 && FARSEE_HAVE_LZ4) ||
         (codec == PackCodec::kZstd && FARSEE_HAVE_ZSTD);
}

namespace pack_format {

std::string missing_codec(PackCodec codec) {
  return std::string("this build has no ") + pack_codec_name(codec) + " (install " +
         (codec == PackCodec::kLz4 ? "liblz4-dev" : "libzstd-dev") +
         ": tools/scripts/install_deps.sh, and rebuild)";
}

std::vector<uint8_t> encode(PackCodec codec, const uint8_t* src, size_t n) {
  std::vector<uint8_t> out;
  if (codec == PackCodec::kRaw) return std::vector<uint8_t>(src, src + n);
#if FARSEE_HAVE_LZ4
  if (codec == PackCodec::kLz4) {
    out.resize(size_t(LZ4_compressBound(int(n))));
    const int m =
        LZ4_compress_default(reinterpret_cast<const char*>(src),
                             reinterpret_cast<char*>(out.data()), int(n), int(out.size()));
    FARSEE_REQUIRE(m > 0, "LZ4 compression of " << n << " bytes failed");
    out.resize(size_t(m));
  }
#endif
#if FARSEE_HAVE_ZSTD
  if (codec == PackCodec::kZstd) {
    out.resize(ZSTD_compressBound(n));
    const size_t m = ZSTD_compress(out.data(), out.size(), src, n, kZstdLevel);
    FARSEE_REQUIRE(!ZSTD_isError(m), "zstd compression failed: " << ZSTD_getErrorName(m));
    out.resize(m);
  }
#endif
  FARSEE_REQUIRE(pack_codec_available(codec), missing_codec(codec));
  return out;
}

// Decodes `n` stored bytes into exactly `out_n` bytes; false when they do not decode to that.
bool decode_into(PackCodec codec, const uint8_t* src, size_t n, uint8_t* out, size_t out_n) {
  if (codec == PackCodec::kRaw) {
    if (n != out_n) return false;
    std::memcpy(out, src, n);
    return true;
  }
#if FARSEE_HAVE_LZ4
  if (codec == PackCodec::kLz4) {
    return LZ4_decompress_safe(reinterpret_cast<const char*>(src), reinterpret_cast<char*>(out),
                               int(n), int(out_n)) == int64_t(out_n);
  }
#endif
#if FARSEE_HAVE_ZSTD
  if (codec == PackCodec::kZstd) return ZSTD_decompress(out, out_n, src, n) == out_n;
#endif
  FARSEE_REQUIRE(false, missing_codec(codec));
}

// ---- little-endian fields --------------------------------------------------------------------

void put(std::vector<uint8_t>& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(uint8_t(v >> (8 * i)));
}
uint64_t get(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::vector<uint8_t> entry_bytes(const PackReader::Entry& e) {
  std::vector<uint8_t> out;
  for (uint64_t v : {e.offset, e.image_bytes, e.label_bytes, e.hash}) put(out, v, 8);
  for (uint32_t v : {e.height, e.width, e.source_h, e.source_w, e.name_offset, e.name_bytes}) {
    put(out, v, 4);
  }
  put(out, e.codec, 1);
  put(out, e.classes_used, 1);
  put(out, 0, 6);
  return out;
}

PackReader::Entry parse_entry(const uint8_t* p) {
  PackReader::Entry e;
  e.offset = get(p, 8);
  e.image_bytes = get(p + 8, 8);
  e.label_bytes = get(p + 16, 8);
  e.hash = get(p + 24, 8);
  uint32_t* fields[] = {&e.height,   &e.width,       &e.source_h,
                        &e.source_w, &e.name_offset, &e.name_bytes};
  for (int k = 0; k < 6; ++k) *fields[k] = uint32_t(get(p + 32 + 4 * k, 4));
  e.codec = p[56];
  e.classes_used = p[57];
  return e;
}

// The header's bytes without the checksum (56) or with it (64).
std::vector<uint8_t> header_bytes(const Header& h, bool with_hash) {
  std::vector<uint8_t> out(kMagic, kMagic + 8);
  put(out, h.version, 4);
  put(out, h.entry_bytes, 4);
  for (uint64_t v : {h.count, h.meta_bytes, h.names_bytes, h.data_offset, h.file_bytes}) {
    put(out, v, 8);
  }
  if (with_hash) put(out, h.hash, 8);
  return out;
}

Header parse_header(const uint8_t* p) {
  Header h;
  h.version = uint32_t(get(p + 8, 4));
  h.entry_bytes = uint32_t(get(p + 12, 4));
  uint64_t* fields[] = {&h.count,       &h.meta_bytes, &h.names_bytes,
                        &h.data_offset, &h.file_bytes, &h.hash};
  for (int k = 0; k < 6; ++k) *fields[k] = get(p + 16 + 8 * k, 8);
  return h;
}

// The checksum of the header (without it) and of meta, names and index.
uint64_t header_hash(const Header& h, const uint8_t* tail) {
  const std::vector<uint8_t> head = header_bytes(h, false);
  return xxh64(tail, h.index_end() - kHeaderBytes, xxh64(head.data(), head.size()));
}

}  // namespace pack_format
}  // namespace farsee::tools
