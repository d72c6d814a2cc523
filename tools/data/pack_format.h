// The byte layout of a pack (tools/data/pack.h), shared by its writer (pack_writer.cpp) and its
// reader (pack_reader.cpp) and nothing else: little-endian fields, the 64-byte header and index
// entries, the header's checksum, and the per-sample codecs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tools/data/pack.h"

namespace farsee::tools::pack_format {

constexpr char kMagic[8] = {'F', 'A', 'R', 'S', 'E', 'E', 'P', 'K'};
constexpr uint32_t kVersion = 1;
constexpr uint64_t kHeaderBytes = 64, kEntryBytes = 64, kAlign = 64;
constexpr int kZstdLevel = 3;  // zstd's default; its decoding speed hardly depends on the level

// The checksums of header, index and samples are checked, except in a fuzzing build (the usual
// convention, as for libpng's CRC), so that mutated inputs reach the checks behind them.
#if defined(FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION)
constexpr bool kVerifyChecksums = false;
#else
constexpr bool kVerifyChecksums = true;
#endif

inline uint64_t align_up(uint64_t v) {
  return (v + kAlign - 1) / kAlign * kAlign;
}

// "this build has no lz4 (install liblz4-dev ...)": the message for a codec left out of the build.
std::string missing_codec(PackCodec codec);
std::vector<uint8_t> encode(PackCodec codec, const uint8_t* src, size_t n);
// Decodes `n` stored bytes into exactly `out_n` bytes; false when they do not decode to that.
bool decode_into(PackCodec codec, const uint8_t* src, size_t n, uint8_t* out, size_t out_n);

void put(std::vector<uint8_t>& out, uint64_t v, int bytes);
uint64_t get(const uint8_t* p, int bytes);

std::vector<uint8_t> entry_bytes(const PackReader::Entry& e);
PackReader::Entry parse_entry(const uint8_t* p);

struct Header {
  uint32_t version = kVersion, entry_bytes = kEntryBytes;
  uint64_t count = 0, meta_bytes = 0, names_bytes = 0, data_offset = 0, file_bytes = 0, hash = 0;
  uint64_t index_at() const { return kHeaderBytes + meta_bytes + names_bytes; }
  uint64_t index_end() const { return index_at() + count * kEntryBytes; }
};
// The header's bytes without the checksum (56) or with it (64).
std::vector<uint8_t> header_bytes(const Header& h, bool with_hash);
Header parse_header(const uint8_t* p);
// The checksum of the header (without it) and of meta, names and index.
uint64_t header_hash(const Header& h, const uint8_t* tail);

}  // namespace farsee::tools::pack_format
