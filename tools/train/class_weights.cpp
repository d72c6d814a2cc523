#include "tools/train/class_weights.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/core/check.h"
#include "tools/data/image_io.h"
#include "tools/data/parallel_for.h"

namespace farsee::tools {
namespace {

// Labelled pixels of each class over every label map of `data`.
std::vector<int64_t> class_counts(const CityscapesDataset& data, int num_classes, int jobs) {
  const std::vector<SamplePaths>& files = data.files();
  std::vector<std::vector<int64_t>> per_file(files.size(),
                                             std::vector<int64_t>(size_t(num_classes), 0));
  parallel_for(int(files.size()), std::max(jobs, 1), [&](int i, int) {
    const Image label = data.source().label(size_t(i), num_classes);  // a folder or a pack
    for (uint8_t id : label.data) {
      if (id < num_classes) ++per_file[size_t(i)][id];
    }
  });
  std::vector<int64_t> counts(size_t(num_classes), 0);
  for (const auto& f : per_file) {  // in file order: no dependence on the threads
    for (int c = 0; c < num_classes; ++c) counts[size_t(c)] += f[size_t(c)];
  }
  return counts;
}

}  // namespace

std::vector<float> resolve_class_weights(const std::string& spec, const std::vector<float>& list,
                                         const CityscapesDataset& data, int num_classes, int jobs) {
  if (spec != "inverse-log") {
    FARSEE_REQUIRE(
        list.empty() || int(list.size()) == num_classes,
        "--class-weights: " << list.size() << " weights for " << num_classes << " classes");
    return list;
  }
  const std::vector<int64_t> counts = class_counts(data, num_classes, jobs);
  int64_t labelled = 0;
  for (int64_t n : counts) labelled += n;
  FARSEE_REQUIRE(labelled > 0,
                 "--class-weights inverse-log: the training split has no labelled "
                 "pixel");
  std::vector<float> weights;
  for (int c = 0; c < num_classes; ++c) {
    const double share = double(counts[size_t(c)]) / double(labelled);
    weights.push_back(float(1.0 / std::log(1.02 + share)));
  }
  return weights;
}

}  // namespace farsee::tools
