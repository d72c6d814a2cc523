// The colour-only baseline the shipped weights are measured against (farsee-colour-baseline,
// weights/shipped/README.md): every pixel is labelled by its colour alone, as the class whose mean
// RGB, fitted on a training split, is nearest (squared Euclidean distance in RGB, ties to the
// lower trainId). A scene generator whose classes colour alone separates would give this baseline
// a mIoU close to the network's.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "tools/data/dataset.h"
#include "tools/data/image_io.h"

namespace farsee::tools {

// The mean colour of every class seen in the fit (classes ascending).
struct ColourMeans {
  std::vector<int> classes;                  // trainIds with at least one pixel
  std::vector<std::array<double, 3>> means;  // RGB in 0..255, per entry of `classes`
  std::vector<uint64_t> pixels;              // fitted pixels, per entry of `classes`
};

// Fits on the samples' non-void pixels with `jobs` threads. The sums are integers (uint64: exact),
// so the means do not depend on the order or the thread count. Throws "<what>: no labelled pixel
// in N images" when there is none.
ColourMeans fit_colour_means(const std::vector<SamplePaths>& samples, int jobs,
                             const std::string& what);

// The trainId map of an RGB image: each pixel's nearest class mean.
Image label_by_colour(const ColourMeans& model, const Image& rgb);

}  // namespace farsee::tools
