// farsee-pack's side of a pack (tools/data/pack.h): samples decoded, optionally resized, encoded
// in parallel and written in sorted path order through AtomicFileWriter; header and index last.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "kernels/core/atomic_file.h"
#include "kernels/core/check.h"
#include "net/preprocess.h"
#include "tools/cityscapes/metrics.h"
#include "tools/data/pack.h"
#include "tools/data/pack_format.h"
#include "tools/data/parallel_for.h"

namespace farsee::tools {
namespace fs = std::filesystem;
using namespace pack_format;
namespace {

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

}  // namespace farsee::tools
