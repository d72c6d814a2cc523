#include "tools/data/pack.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels/core/atomic_file.h"
#include "kernels/core/check.h"
#include "net/preprocess.h"
#include "tools/cityscapes/metrics.h"
#include "tools/data/parallel_for.h"

#if FARSEE_HAVE_LZ4
#include <lz4.h>
#endif
#if FARSEE_HAVE_ZSTD
#include <zstd.h>
#endif

namespace farsee::tools {
namespace fs = std::filesystem;
namespace {

constexpr char kMagic[8] = {'F', 'A', 'R', 'S', 'E', 'E', 'P', 'K'};
constexpr uint32_t kVersion = 1;
constexpr uint64_t kHeaderBytes = 64, kEntryBytes = 64, kAlign = 64;
constexpr int kZstdLevel = 3;  // zstd's default; its decoding speed hardly depends on the level

uint64_t align_up(uint64_t v) {
  return (v + kAlign - 1) / kAlign * kAlign;
}

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

namespace {

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

struct Header {
  uint32_t version = kVersion, entry_bytes = kEntryBytes;
  uint64_t count = 0, meta_bytes = 0, names_bytes = 0, data_offset = 0, file_bytes = 0, hash = 0;
  uint64_t index_at() const { return kHeaderBytes + meta_bytes + names_bytes; }
  uint64_t index_end() const { return index_at() + count * kEntryBytes; }
};

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

// ---- writing ---------------------------------------------------------------------------------

struct Encoded {
  PackReader::Entry entry;
  std::vector<uint8_t> bytes;  // image then label, as stored
};

// Sample `paths` decoded (as the loader decodes it), resized when asked, encoded, hashed.
Encoded encode_sample(const SamplePaths& paths, const PackOptions& o) {
  DecodedSample d = decode_sample(paths, kCityscapesClasses);
  Encoded e;
  e.entry.source_h = uint32_t(d.image.height);
  e.entry.source_w = uint32_t(d.image.width);
  const int h = o.height > 0 ? o.height : d.image.height, w = o.width > 0 ? o.width : d.image.width;
  if (h != d.image.height || w != d.image.width) {
    // The loader's bilinear resize (net/preprocess.h) rounded back to 8 bits; labels nearest.
    std::vector<float> unit(size_t(h) * w * 3);
    net::rgb8_to_unit(d.image.data.data(), d.image.height, d.image.width, unit.data(), h, w);
    Image image{w, h, 3, std::vector<uint8_t>(unit.size())};
    for (size_t i = 0; i < unit.size(); ++i) image.data[i] = uint8_t(std::lround(unit[i] * 255.f));
    Image label{w, h, 1, std::vector<uint8_t>(size_t(h) * w)};
    resize_labels_nearest(d.label.data.data(), d.label.height, d.label.width, label.data.data(), h,
                          w);
    d = DecodedSample{std::move(image), std::move(label)};
  }
  int used = 0;
  for (uint8_t v : d.label.data) used = v == kIgnoreId ? used : std::max(used, v + 1);
  const std::vector<uint8_t> image = encode(o.codec, d.image.data.data(), d.image.data.size());
  const std::vector<uint8_t> label = encode(o.codec, d.label.data.data(), d.label.data.size());
  e.bytes = image;
  e.bytes.insert(e.bytes.end(), label.begin(), label.end());
  e.entry.height = uint32_t(h);
  e.entry.width = uint32_t(w);
  e.entry.image_bytes = image.size();
  e.entry.label_bytes = label.size();
  e.entry.codec = uint8_t(o.codec);
  e.entry.classes_used = uint8_t(used);
  e.entry.hash = xxh64(e.bytes.data(), e.bytes.size());
  return e;
}

std::string meta_json(const PackOptions& o) {
  nlohmann::ordered_json j;
  j["format"] = "farsee-pack";
  j["version"] = kVersion;
  j["root"] = o.root;
  j["split"] = o.split;
  j["size"] = o.height > 0 ? std::to_string(o.height) + "x" + std::to_string(o.width) : "source";
  j["codec"] = pack_codec_name(o.codec);
  j["images"] = "RGB uint8 [h][w][3]; --size: bilinear (net/preprocess.h), rounded";
  j["labels"] = "trainId uint8 [h][w], 255 ignored; --size: nearest";
  j["ignore_label"] = kIgnoreId;
  nlohmann::ordered_json classes = nlohmann::ordered_json::array();
  for (const char* name : cityscapes_class_names()) classes.push_back(name);
  j["classes"] = classes;
  return j.dump();
}

// "image\nlabel" of each sample relative to the root, one after another; `fields` gets each
// one's (offset, bytes).
std::string names_blob(const std::vector<SamplePaths>& files, const std::string& root,
                       std::vector<std::pair<uint32_t, uint32_t>>& fields) {
  std::string blob;
  for (const SamplePaths& f : files) {
    const std::string name = fs::path(f.image).lexically_relative(root).string() + "\n" +
                             fs::path(f.label).lexically_relative(root).string();
    fields.emplace_back(uint32_t(blob.size()), uint32_t(name.size()));
    blob += name;
  }
  FARSEE_REQUIRE(blob.size() < (uint64_t(1) << 32), "pack: the file names exceed 4 GiB");
  return blob;
}

// Encodes the samples, `jobs` at a time in parallel, and appends them in order at `at` (a
// multiple of kAlign); returns their index entries.
std::vector<uint8_t> write_samples(AtomicFileWriter& file, uint64_t at,
                                   const std::vector<SamplePaths>& files, const PackOptions& o,
                                   const std::vector<std::pair<uint32_t, uint32_t>>& names,
                                   void (*progress)(int64_t, int64_t)) {
  const int64_t count = int64_t(files.size());
  const int chunk = std::max(1, o.jobs) * 2;  // samples in memory at once
  const std::vector<uint8_t> zeros(kAlign, 0);
  std::vector<uint8_t> index;
  std::vector<Encoded> encoded(static_cast<size_t>(chunk));
  for (int64_t first = 0; first < count; first += chunk) {
    const int n = int(std::min<int64_t>(chunk, count - first));
    parallel_for(n, o.jobs, [&](int k, int) {
      encoded[size_t(k)] = encode_sample(files[size_t(first + k)], o);
    });
    for (int k = 0; k < n; ++k) {  // in order, whatever thread encoded them
      Encoded& e = encoded[size_t(k)];
      e.entry.offset = at;
      std::tie(e.entry.name_offset, e.entry.name_bytes) = names[size_t(first + k)];
      const uint64_t padded = align_up(e.bytes.size());
      file.write({{e.bytes.data(), e.bytes.size()}, {zeros.data(), padded - e.bytes.size()}});
      at += padded;
      const std::vector<uint8_t> entry = entry_bytes(e.entry);
      index.insert(index.end(), entry.begin(), entry.end());
      e = Encoded{};
      if (progress) progress(first + k + 1, count);
    }
  }
  return index;
}

}  // namespace

PackCodec parse_pack_codec(const std::string& text, const char* flag) {
  for (PackCodec c : {PackCodec::kRaw, PackCodec::kLz4, PackCodec::kZstd}) {
    if (text != pack_codec_name(c)) continue;
    FARSEE_REQUIRE(pack_codec_available(c), flag << " " << text << ": " << missing_codec(c));
    return c;
  }
  FARSEE_REQUIRE(false, flag << ": '" << text << "' is not one of raw, lz4, zstd");
}

int64_t write_pack(const std::string& path, const PackOptions& o,
                   void (*progress)(int64_t, int64_t)) {
  FARSEE_REQUIRE(pack_codec_available(o.codec), "--codec: " << missing_codec(o.codec));
  const std::vector<SamplePaths> files = list_cityscapes(o.root, o.split);
  std::vector<std::pair<uint32_t, uint32_t>> name_fields;
  const std::string meta = meta_json(o), names = names_blob(files, o.root, name_fields);
  Header h;
  h.count = files.size();
  h.meta_bytes = meta.size();
  h.names_bytes = names.size();
  h.data_offset = align_up(h.index_end());
  AtomicFileWriter file(path, "pack");
  // Header and index are written last, over zeros, once the samples' offsets are known.
  const std::vector<uint8_t> zeros(std::max(h.data_offset - h.index_at(), kHeaderBytes), 0);
  file.write({{zeros.data(), size_t(kHeaderBytes)},
              {meta.data(), meta.size()},
              {names.data(), names.size()},
              {zeros.data(), size_t(h.data_offset - h.index_at())}});
  const std::vector<uint8_t> index =
      write_samples(file, h.data_offset, files, o, name_fields, progress);
  h.file_bytes = h.data_offset;
  for (size_t i = 0; i < files.size(); ++i) {
    const PackReader::Entry e = parse_entry(index.data() + i * kEntryBytes);
    h.file_bytes = align_up(e.offset + e.image_bytes + e.label_bytes);
  }
  file.write_at(h.index_at(), index.data(), index.size());
  std::vector<uint8_t> tail(meta.begin(), meta.end());
  tail.insert(tail.end(), names.begin(), names.end());
  tail.insert(tail.end(), index.begin(), index.end());
  h.hash = header_hash(h, tail.data());
  const std::vector<uint8_t> head = header_bytes(h, true);
  file.write_at(0, head.data(), head.size());
  file.commit();
  return int64_t(files.size());
}

// ---- reading ---------------------------------------------------------------------------------

bool is_pack_file(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  std::ifstream f(path, std::ios::binary);
  char magic[sizeof kMagic] = {};
  f.read(magic, sizeof magic);
  return f.gcount() == sizeof magic && std::memcmp(magic, kMagic, sizeof magic) == 0;
}

PackReader::PackReader(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  FARSEE_REQUIRE(fd >= 0, "cannot open pack '" << path << "': " << std::strerror(errno));
  struct stat st {};
  const bool stat_ok = ::fstat(fd, &st) == 0;
  map_bytes_ = stat_ok ? uint64_t(st.st_size) : 0;
  void* map = map_bytes_ > 0 ? ::mmap(nullptr, map_bytes_, PROT_READ, MAP_SHARED, fd, 0) : nullptr;
  const int map_errno = errno;
  ::close(fd);
  FARSEE_REQUIRE(stat_ok && map_bytes_ > 0, "'" << path << "' is empty: not a FarSee pack");
  FARSEE_REQUIRE(map != MAP_FAILED,
                 "cannot map pack '" << path << "': " << std::strerror(map_errno));
  map_ = static_cast<const uint8_t*>(map);
  try {
    open_checked();
  } catch (...) {
    ::munmap(const_cast<uint8_t*>(map_), map_bytes_);
    throw;
  }
}

PackReader::~PackReader() {
  ::munmap(const_cast<uint8_t*>(map_), map_bytes_);
}

void PackReader::open_checked() {
  FARSEE_REQUIRE(map_bytes_ >= sizeof kMagic && std::memcmp(map_, kMagic, sizeof kMagic) == 0,
                 "'" << path_
                     << "' is not a FarSee pack (it does not start with \"FARSEEPK\"; "
                        "farsee-pack writes packs)");
  FARSEE_REQUIRE(map_bytes_ >= kHeaderBytes, "pack '" << path_ << "' is truncated: " << map_bytes_
                                                      << " bytes, less than its " << kHeaderBytes
                                                      << "-byte header");
  const Header h = parse_header(map_);
  FARSEE_REQUIRE(h.version == kVersion, "pack '" << path_ << "' has format version " << h.version
                                                 << "; this build reads version " << kVersion
                                                 << " (repack it with this farsee-pack)");
  FARSEE_REQUIRE(h.entry_bytes == kEntryBytes && h.count > 0 && h.count < (uint64_t(1) << 32) &&
                     h.meta_bytes < (uint64_t(1) << 32) && h.names_bytes < (uint64_t(1) << 32),
                 "pack '" << path_ << "': its header is corrupted (entry size " << h.entry_bytes
                          << ", " << h.count << " samples)");
  FARSEE_REQUIRE(map_bytes_ >= h.index_end(),
                 "pack '" << path_ << "' is truncated inside its index: " << map_bytes_
                          << " bytes, the header and index need " << h.index_end()
                          << " (the whole file " << h.file_bytes << ")");
  FARSEE_REQUIRE(header_hash(h, map_ + kHeaderBytes) == h.hash,
                 "pack '" << path_ << "': its header or index is corrupted (checksum mismatch); "
                          << "repack it with farsee-pack");
  FARSEE_REQUIRE(h.data_offset >= h.index_end() && h.file_bytes >= h.data_offset,
                 "pack '" << path_ << "': its header is corrupted (data offset " << h.data_offset
                          << ", file " << h.file_bytes << " bytes)");
  try {
    const auto meta =
        nlohmann::json::parse(map_ + kHeaderBytes, map_ + kHeaderBytes + h.meta_bytes);
    info_.root = meta.at("root").get<std::string>();
    info_.split = meta.at("split").get<std::string>();
    info_.codec = meta.at("codec").get<std::string>();
    info_.classes = meta.at("classes").get<std::vector<std::string>>();
    const std::string size = meta.at("size").get<std::string>();
    if (size != "source") std::sscanf(size.c_str(), "%dx%d", &info_.height, &info_.width);
  } catch (const std::exception& e) {
    FARSEE_REQUIRE(false, "pack '" << path_ << "': its meta data is unreadable: " << e.what());
  }
  names_.assign(reinterpret_cast<const char*>(map_ + kHeaderBytes + h.meta_bytes), h.names_bytes);
  read_index(h.count, h.index_at(), h.data_offset, h.file_bytes);
}

void PackReader::read_index(uint64_t count, uint64_t index_at, uint64_t data_offset,
                            uint64_t file_bytes) {
  for (uint64_t i = 0; i < count; ++i) {
    entries_.push_back(parse_entry(map_ + index_at + i * kEntryBytes));
  }
  if (map_bytes_ != file_bytes) {
    for (size_t i = 0; i < entries_.size(); ++i) {
      const Entry& e = entries_[i];
      const uint64_t end = e.offset + e.image_bytes + e.label_bytes;  // the index is verified
      FARSEE_REQUIRE(end <= map_bytes_ && end >= e.offset,
                     "pack '" << path_ << "' is truncated: " << map_bytes_
                              << " bytes, its header says " << file_bytes << "; " << what(i)
                              << " ends at byte " << end << " (" << entries_.size() - i << " of "
                              << entries_.size() << " samples lost)");
    }
    FARSEE_REQUIRE(false, "pack '" << path_ << "' has " << map_bytes_ << " bytes, its header says "
                                   << file_bytes << " (truncated or appended to)");
  }
  for (size_t i = 0; i < entries_.size(); ++i) check_entry(i, data_offset);
}

// The index entry's sizes and bounds (the index checksum passed: this catches a writer's bug or
// a crafted file, not bit rot).
void PackReader::check_entry(size_t i, uint64_t data_offset) const {
  const Entry& e = entries_[i];
  const uint64_t pixels = uint64_t(e.height) * e.width;
  FARSEE_REQUIRE(uint64_t(e.name_offset) + e.name_bytes <= names_.size(),
                 "pack '" << path_ << "': sample " << i << " has a corrupted name field");
  const PackCodec codec = PackCodec(e.codec);
  FARSEE_REQUIRE(e.codec <= uint8_t(PackCodec::kZstd),
                 what(i) << " has an unknown codec " << int(e.codec));
  FARSEE_REQUIRE(pack_codec_available(codec), what(i)
                                                  << " is stored with " << pack_codec_name(codec)
                                                  << ", but " << missing_codec(codec));
  FARSEE_REQUIRE(pixels > 0 && int64_t(pixels) <= kDefaultMaxPixels,
                 what(i) << " is " << e.height << "x" << e.width << " (HxW): not a valid size");
  FARSEE_REQUIRE(
      codec != PackCodec::kRaw || (e.image_bytes == 3 * pixels && e.label_bytes == pixels),
      what(i) << ": " << e.image_bytes << " + " << e.label_bytes << " raw bytes for " << e.height
              << "x" << e.width);
  // In this order, so that no sum can wrap around (stored bytes <= 8 x 64 megapixels).
  FARSEE_REQUIRE(e.image_bytes <= 8 * pixels && e.label_bytes <= 8 * pixels &&
                     e.image_bytes + e.label_bytes <= map_bytes_ && e.offset >= data_offset &&
                     e.offset <= map_bytes_ - e.image_bytes - e.label_bytes,
                 what(i) << " lies outside the file (offset " << e.offset << ", "
                         << e.image_bytes + e.label_bytes << " bytes)");
}

SamplePaths PackReader::names(size_t i) const {
  const Entry& e = entries_.at(i);
  const std::string name = names_.substr(e.name_offset, e.name_bytes);
  const size_t nl = name.find('\n');
  return {name.substr(0, nl), nl == std::string::npos ? "" : name.substr(nl + 1)};
}

std::string PackReader::what(size_t i) const {
  return "pack '" + path_ + "': sample " + std::to_string(i) + " ('" + names(i).image + "')";
}

const uint8_t* PackReader::stored(size_t i) const {
  const Entry& e = entries_.at(i);
  const uint8_t* p = map_ + e.offset;
  const uint64_t hash = xxh64(p, e.image_bytes + e.label_bytes);
  FARSEE_REQUIRE(hash == e.hash, what(i) << " is corrupted: its bytes do not match their checksum"
                                         << " (repack it with farsee-pack)");
  return p;
}

void PackReader::check_classes(size_t i, int num_classes) const {
  const Entry& e = entries_[i];
  FARSEE_REQUIRE(e.classes_used <= num_classes, what(i) << ": label '" << names(i).label
                                                        << "' holds trainId " << e.classes_used - 1
                                                        << ", but the network has " << num_classes
                                                        << " classes");
}

// Every id of the decoded labels below the index's "classes used" (or 255): a crafted pack cannot
// feed the loss an id past the logits (one vectorised pass, ~0.2 ms at 1024x2048).
void PackReader::check_label_ids(size_t i, const Image& label) const {
  static_assert(kIgnoreId == 255, "255 + 1 wraps to 0: the ignore label counts as no class");
  uint8_t top = 0;
  const uint8_t* v = label.data.data();
  for (size_t k = 0; k < label.data.size(); ++k) {  // branch-free: vectorised
    const uint8_t c = uint8_t(v[k] + 1);
    top = c > top ? c : top;
  }
  FARSEE_REQUIRE(top <= entries_[i].classes_used,
                 what(i) << " is corrupted: its labels hold trainId " << top - 1
                         << ", its index says at most " << entries_[i].classes_used - 1);
}

DecodedSample PackReader::decode(size_t i, int num_classes) const {
  const uint8_t* p = stored(i);
  check_classes(i, num_classes);
  const Entry& e = entries_[i];
  const int h = int(e.height), w = int(e.width);
  DecodedSample d{Image{w, h, 3, std::vector<uint8_t>(size_t(h) * w * 3)},
                  Image{w, h, 1, std::vector<uint8_t>(size_t(h) * w)}};
  const PackCodec codec = PackCodec(e.codec);
  FARSEE_REQUIRE(
      decode_into(codec, p, e.image_bytes, d.image.data.data(), d.image.data.size()) &&
          decode_into(codec, p + e.image_bytes, e.label_bytes, d.label.data.data(),
                      d.label.data.size()),
      what(i) << " does not decode (" << pack_codec_name(codec) << ") to " << h << "x" << w);
  check_label_ids(i, d.label);
  return d;
}

Image PackReader::label(size_t i, int num_classes) const {
  const uint8_t* p = stored(i);
  check_classes(i, num_classes);
  const Entry& e = entries_[i];
  Image label{int(e.width), int(e.height), 1, std::vector<uint8_t>(size_t(e.height) * e.width)};
  FARSEE_REQUIRE(decode_into(PackCodec(e.codec), p + e.image_bytes, e.label_bytes,
                             label.data.data(), label.data.size()),
                 what(i) << ": its label does not decode to " << e.height << "x" << e.width);
  check_label_ids(i, label);
  return label;
}

namespace {

class PackSource : public SampleSource {
 public:
  explicit PackSource(const std::string& path) : pack_(path) {}
  const PackReader& pack() const { return pack_; }
  size_t size() const override { return pack_.size(); }
  DecodedSample decode(size_t i, int num_classes) const override {
    return pack_.decode(i, num_classes);
  }
  Image label(size_t i, int num_classes) const override { return pack_.label(i, num_classes); }
  SamplePaths paths(size_t i) const override {
    const SamplePaths n = pack_.names(i);
    const fs::path root(pack_.info().root);
    return {(root / n.image).string(), (root / n.label).string()};
  }
  std::string describe() const override { return "pack " + pack_.path(); }

 private:
  PackReader pack_;
};

}  // namespace

std::shared_ptr<const SampleSource> open_pack_source(const std::string& path,
                                                     const std::string& split) {
  auto source = std::make_shared<PackSource>(path);
  const PackInfo& info = source->pack().info();
  FARSEE_REQUIRE(info.split == split, "pack '" << path << "' holds split '" << info.split << "' of "
                                               << info.root << ", not '" << split << "' (--split "
                                               << info.split
                                               << ", or pack that split with farsee-pack)");
  return source;
}

}  // namespace farsee::tools
