#include "tools/dataset.h"

#include <algorithm>
#include <filesystem>
#include <numeric>

#include "kernels/core/check.h"
#include "kernels/reference/resize.h"
#include "net/farsee_net.h"
#include "tools/image_io.h"

namespace farsee::tools {
namespace fs = std::filesystem;
namespace {

constexpr const char* kImageSuffix = "_leftImg8bit.png";
constexpr const char* kLabelSuffix = "_gtFine_labelIds.png";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// splitmix64 (as net/parameters.cpp): fully specified, the same everywhere.
uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

// cityscapes_train_ids(): tools/metrics.cpp.

std::vector<SamplePaths> list_cityscapes(const std::string& root, const std::string& split) {
  const fs::path images = fs::path(root) / "leftImg8bit" / split;
  std::error_code ec;
  FARSEE_REQUIRE(fs::is_directory(images, ec),
                 "--data: '" << images.string()
                             << "' is not a directory (expected the Cityscapes layout "
                                "leftImg8bit/<split>/<city>/*_leftImg8bit.png)");
  std::vector<SamplePaths> out;
  for (const auto& city : fs::directory_iterator(images)) {
    if (!city.is_directory()) continue;
    for (const auto& f : fs::directory_iterator(city.path())) {
      const std::string name = f.path().filename().string();
      if (!f.is_regular_file() || !ends_with(name, kImageSuffix)) continue;
      const std::string stem = name.substr(0, name.size() - std::string(kImageSuffix).size());
      const fs::path label =
          fs::path(root) / "gtFine" / split / city.path().filename() / (stem + kLabelSuffix);
      out.push_back({f.path().string(), label.string()});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const SamplePaths& a, const SamplePaths& b) { return a.image < b.image; });
  FARSEE_REQUIRE(!out.empty(),
                 "--data: no *" << kImageSuffix << " under '" << images.string() << "/<city>/'");
  for (const auto& s : out) {
    FARSEE_REQUIRE(fs::is_regular_file(s.label, ec),
                   "missing label file '" << s.label << "' for image '" << s.image << "'");
  }
  return out;
}

void load_sample(const SamplePaths& paths, const DatasetOptions& o, bool flip, float* input,
                 uint8_t* labels) {
  const Image image = read_rgb(paths.image);
  const Image label = read_grey(paths.label);
  FARSEE_REQUIRE(image.width == label.width && image.height == label.height,
                 "image '" << paths.image << "' is " << image.height << "x" << image.width
                           << " but its label file '" << paths.label << "' is " << label.height
                           << "x" << label.width << " (HxW)");
  const int h = image.height, w = image.width, oh = o.input_h, ow = o.input_w;
  std::vector<float> rgb(image.data.size());
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = float(image.data[i]) / 255.f;
  if (h == oh && w == ow) {
    std::copy(rgb.begin(), rgb.end(), input);
  } else {
    reference::resize_bilinear_fwd(
        /*align_corners=*/false, make_view(rgb.data(), DType::F32, Shape4{1, h, w, 3}),
        make_view(input, DType::F32, Shape4{1, oh, ow, 3}));
  }
  net::normalise_rgb(input, int64_t(oh) * ow);
  const auto& table = cityscapes_train_ids();
  for (int y = 0; y < oh; ++y) {
    const int sy = int(int64_t(y) * h / oh);
    for (int x = 0; x < ow; ++x) {
      const int sx = int(int64_t(x) * w / ow);
      const uint8_t t = table[label.data[size_t(sy) * w + sx]];
      FARSEE_REQUIRE(t == 255 || t < o.num_classes,
                     "label file '" << paths.label << "' holds trainId " << int(t)
                                    << ", but the network has " << o.num_classes << " classes");
      labels[size_t(y) * ow + x] = t;
    }
  }
  if (flip) {
    for (int y = 0; y < oh; ++y) {
      float* row = input + size_t(y) * ow * 3;
      uint8_t* lrow = labels + size_t(y) * ow;
      for (int x = 0; x < ow / 2; ++x) {
        for (int c = 0; c < 3; ++c) std::swap(row[x * 3 + c], row[(ow - 1 - x) * 3 + c]);
        std::swap(lrow[x], lrow[ow - 1 - x]);
      }
    }
  }
}

CityscapesDataset::CityscapesDataset(const std::string& root, const std::string& split,
                                     const DatasetOptions& options)
    : files_(list_cityscapes(root, split)), options_(options) {
  FARSEE_REQUIRE(options.batch >= 1, "--batch " << options.batch << " must be >= 1");
  FARSEE_REQUIRE(options.input_h > 0 && options.input_w > 0, "--input-size must be positive");
}

size_t CityscapesDataset::file_at(int64_t position) const {
  const int64_t count = int64_t(files_.size());
  const int64_t epoch = position / count, index = position % count;
  if (!options_.shuffle) return size_t(index);
  // A seeded Fisher-Yates permutation per epoch.
  std::vector<size_t> order(files_.size());
  std::iota(order.begin(), order.end(), size_t(0));
  uint64_t state = mix(options_.seed ^ mix(uint64_t(epoch) + 0x5eedull));
  for (size_t i = order.size(); i > 1; --i) {
    state = mix(state);
    std::swap(order[i - 1], order[size_t(state % i)]);
  }
  return order[size_t(index)];
}

Batch CityscapesDataset::batch(int64_t k) const {
  Batch b;
  b.n = options_.batch;
  b.h = options_.input_h;
  b.w = options_.input_w;
  const size_t pixels = size_t(b.h) * b.w;
  b.input.resize(size_t(b.n) * pixels * 3);
  b.labels.resize(size_t(b.n) * pixels);
  for (int i = 0; i < b.n; ++i) {
    const int64_t position = k * options_.batch + i;
    const size_t file = file_at(position);
    const bool flip =
        options_.augment && (mix(options_.seed ^ mix(uint64_t(position) * 2 + 1)) & 1) != 0;
    load_sample(files_[file], options_, flip, b.input.data() + size_t(i) * pixels * 3,
                b.labels.data() + size_t(i) * pixels);
  }
  return b;
}

}  // namespace farsee::tools
