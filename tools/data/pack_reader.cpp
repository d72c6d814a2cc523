// The reading side of a pack (tools/data/pack.h): mapped, header and index checked at open, each
// sample's checksum when it is read; the SampleSource the dataset and farsee-eval use.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels/core/check.h"
#include "tools/data/pack.h"
#include "tools/data/pack_format.h"

namespace farsee::tools {
namespace fs = std::filesystem;
using namespace pack_format;

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
  FARSEE_REQUIRE(!kVerifyChecksums || header_hash(h, map_ + kHeaderBytes) == h.hash,
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
  FARSEE_REQUIRE(!kVerifyChecksums || xxh64(p, e.image_bytes + e.label_bytes) == e.hash,
                 what(i) << " is corrupted: its bytes do not match their checksum"
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
