#include "tools/data/colour_baseline.h"

#include <cmath>

#include "kernels/core/check.h"
#include "tools/cityscapes/metrics.h"
#include "tools/data/parallel_for.h"

namespace farsee::tools {
namespace {

constexpr int kClasses = kCityscapesClasses;

struct ColourSums {
  std::array<uint64_t, kClasses * 3> rgb{};
  std::array<uint64_t, kClasses> pixels{};
  void add(const ColourSums& o) {
    for (size_t i = 0; i < rgb.size(); ++i) rgb[i] += o.rgb[i];
    for (size_t i = 0; i < pixels.size(); ++i) pixels[i] += o.pixels[i];
  }
};

}  // namespace

ColourMeans fit_colour_means(const std::vector<SamplePaths>& samples, int jobs,
                             const std::string& what) {
  std::vector<ColourSums> per_thread(static_cast<size_t>(jobs));
  parallel_for(int(samples.size()), jobs, [&](int i, int thread) {
    const DecodedSample d = decode_sample(samples[size_t(i)], kClasses);
    ColourSums& sums = per_thread[size_t(thread)];
    for (size_t p = 0; p < d.label.data.size(); ++p) {
      const int c = d.label.data[p];
      if (c >= kClasses) continue;
      for (int ch = 0; ch < 3; ++ch) sums.rgb[size_t(c) * 3 + ch] += d.image.data[p * 3 + ch];
      ++sums.pixels[size_t(c)];
    }
  });
  ColourSums total;
  for (const ColourSums& s : per_thread) total.add(s);
  ColourMeans model;
  for (int c = 0; c < kClasses; ++c) {
    if (total.pixels[size_t(c)] == 0) continue;
    std::array<double, 3> m{};
    for (int ch = 0; ch < 3; ++ch) {
      m[size_t(ch)] = double(total.rgb[size_t(c) * 3 + ch]) / double(total.pixels[size_t(c)]);
    }
    model.classes.push_back(c);
    model.means.push_back(m);
    model.pixels.push_back(total.pixels[size_t(c)]);
  }
  FARSEE_REQUIRE(!model.classes.empty(),
                 what << ": no labelled pixel in " << samples.size() << " images");
  return model;
}

Image label_by_colour(const ColourMeans& model, const Image& rgb) {
  Image pred;
  pred.width = rgb.width;
  pred.height = rgb.height;
  pred.channels = 1;
  pred.data.resize(size_t(rgb.width) * size_t(rgb.height));
  for (size_t p = 0; p < pred.data.size(); ++p) {
    double best = INFINITY;
    int best_class = model.classes[0];
    for (size_t k = 0; k < model.classes.size(); ++k) {
      double d = 0.0;
      for (int ch = 0; ch < 3; ++ch) {
        const double diff = double(rgb.data[p * 3 + size_t(ch)]) - model.means[k][size_t(ch)];
        d += diff * diff;
      }
      if (d < best) {
        best = d;
        best_class = model.classes[k];
      }
    }
    pred.data[p] = uint8_t(best_class);
  }
  return pred;
}

}  // namespace farsee::tools
