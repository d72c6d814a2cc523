// A packed dataset (farsee-pack; DESIGN.md section 10.1): one file holding a split's decoded
// images (RGB uint8) and trainId label maps, so the loader copies bytes instead of decoding PNGs.
// Read by memory mapping with random access; every sample carries a checksum that is verified
// when it is read, the header and index are checked when the file is opened.
//
// Layout (integers little-endian):
//   header   64 bytes: "FARSEEPK", u32 version (1), u32 index entry bytes (64), u64 samples,
//            u64 meta bytes, u64 names bytes, u64 data offset, u64 file bytes, u64 checksum of
//            the header's first 56 bytes and of meta, names and index (XXH64, below)
//   meta     JSON: the source (root, split as given to farsee-pack), the stored size ("source"
//            or HxW), the codec, the class table (the 19 Cityscapes trainId names), the formats
//   names    per sample "<image path>\n<label path>", relative to the root
//   index    per sample 64 bytes: u64 offset, u64 image bytes, u64 label bytes (stored, the label
//            right after the image), u64 XXH64 of those stored bytes, u32 height, u32 width (as
//            stored), u32 source height, u32 source width (the PNG's), u32 name offset, u32 name
//            bytes, u8 codec, u8 classes used (1 + the largest trainId other than 255), 6 zeros
//   samples  from the data offset, each at a multiple of 64, zero padding between them
// The index precedes the samples, so a truncated pack still names the first sample it lost.
//
// Codec (measured at 1024x2048 on 8-sample proxies of camera images, bench/RESULTS.md "Packed
// dataset"; a loaded 2-core host, so rates per CPU second of the decoding thread, median and
// range of the runs): images and labels are compressed separately. LZ4 (default): ~600 images/s
// per core (360-810), images stored ~1.00x (camera noise defeats it), labels ~47x smaller: 6.33 MB
// a sample against raw's 8.39 MB. zstd (level 3): images 1.05-1.22x, labels ~200x, but ~145
// images/s per core (131-166), below the 200 the loader needs. raw: ~580 (488-666), always
// available; LZ4 and zstd only when found at build time.
// Determinism: the same input and options give the same bytes (no timestamps; samples in
// list_cityscapes order whatever the number of encoding threads). Written atomically.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tools/data/dataset.h"

namespace farsee::tools {

enum class PackCodec : uint8_t { kRaw = 0, kLz4 = 1, kZstd = 2 };
// "raw", "lz4", "zstd" (throws naming `flag` otherwise, or when this build lacks the codec).
PackCodec parse_pack_codec(const std::string& text, const char* flag);
const char* pack_codec_name(PackCodec codec);
bool pack_codec_available(PackCodec codec);

// XXH64 (xxHash's 64-bit hash, written from its specification): the samples' checksum.
uint64_t xxh64(const void* data, size_t bytes, uint64_t seed = 0);

struct PackOptions {
  std::string root, split;
  int height = 0, width = 0;  // --size: stored size (image bilinear, labels nearest); 0: as is
  PackCodec codec = PackCodec::kLz4;
  int jobs = 1;  // encoding threads; the file does not depend on it
};
// Packs root/split (list_cityscapes, decode_sample) into `path`, atomically. Returns the number
// of samples. `progress`, if given, is called after each sample written (count done, total).
int64_t write_pack(const std::string& path, const PackOptions& options,
                   void (*progress)(int64_t done, int64_t total) = nullptr);

// Whether `path` is a regular file starting with the pack magic.
bool is_pack_file(const std::string& path);

// The source of a pack as its meta records it.
struct PackInfo {
  std::string root, split, codec;
  int height = 0, width = 0;  // 0: the source sizes
  std::vector<std::string> classes;
};

// An open pack. Opening maps the file and checks the header, the index checksum and every
// sample's bounds (a truncated pack names the first sample it lost); decoding checks that
// sample's checksum. Errors name the pack, the sample index and its image file. Thread-safe reads.
class PackReader {
 public:
  explicit PackReader(const std::string& path);
  ~PackReader();
  PackReader(const PackReader&) = delete;
  PackReader& operator=(const PackReader&) = delete;
  size_t size() const { return entries_.size(); }
  const std::string& path() const { return path_; }
  const PackInfo& info() const { return info_; }
  // The sample's files relative to the root, as packed.
  SamplePaths names(size_t i) const;
  // Sample i as decode_sample gave it when packed (or resized by --size). Throws naming the
  // sample when its checksum fails or a trainId is >= num_classes.
  DecodedSample decode(size_t i, int num_classes) const;
  // Its label map only (the checksum still covers the whole sample).
  Image label(size_t i, int num_classes) const;

  struct Entry {
    uint64_t offset = 0, image_bytes = 0, label_bytes = 0, hash = 0;
    uint32_t height = 0, width = 0, source_h = 0, source_w = 0, name_offset = 0, name_bytes = 0;
    uint8_t codec = 0, classes_used = 0;
  };

 private:
  void open_checked();
  void read_index(uint64_t count, uint64_t index_at, uint64_t data_offset, uint64_t file_bytes);
  void check_entry(size_t i, uint64_t data_offset) const;
  // The stored bytes of sample i, checksum verified.
  const uint8_t* stored(size_t i) const;
  std::string what(size_t i) const;  // "pack 'P': sample i ('image')"
  void check_classes(size_t i, int num_classes) const;
  void check_label_ids(size_t i, const Image& label) const;
  std::string path_;
  const uint8_t* map_ = nullptr;
  uint64_t map_bytes_ = 0;
  std::string names_;
  std::vector<Entry> entries_;
  PackInfo info_;
};

// The sample source of a pack (dataset.h's SampleSource): `split` must be the pack's.
std::shared_ptr<const SampleSource> open_pack_source(const std::string& path,
                                                     const std::string& split);

}  // namespace farsee::tools
