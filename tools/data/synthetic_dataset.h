// Synthetic street scenes (tools/data/synthetic_scenes.h) written as files (farsee-make-dataset):
// in the Cityscapes layout for farsee-train and farsee-eval,
//   <out>/leftImg8bit/<split>/<city>/<city>_<seq:06d>_000019_leftImg8bit.png
//   <out>/gtFine/<split>/<city>/<city>_<seq:06d>_000019_gtFine_labelIds.png   (labelIds)
//   <out>/gtFine/<split>/<city>/..._gtFine_labelTrainIds.png                  (train_ids)
// or as plain PNGs for farsee-infer demos:
//   <out>/synthetic_<k>.png, and with labels <out>/gt/synthetic_<k>_gt_labelTrainIds.png (a
//   separate folder, so <out> holds only the images).
//
// Image k of a split has scene seed f(seed, split, k): the same arguments give byte-identical
// files, whatever the number of threads, and a split's first images do not depend on how many are
// asked for. Every file is written atomically; an unwritable folder throws naming it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace farsee::tools {

struct SyntheticDatasetOptions {
  std::string out;
  int train = 0, val = 0;  // images per split
  int height = 1024, width = 2048;
  uint64_t seed = 0;
  bool train_ids = false;  // also *_gtFine_labelTrainIds.png
  int jobs = 1;            // scenes made in parallel
};
// The Cityscapes layout (train + val > 0).
void write_synthetic_cityscapes(const SyntheticDatasetOptions& options);

// `count` plain images (and their trainId label maps when `labels`) at height x width; returns
// the image paths in order.
std::vector<std::string> write_synthetic_samples(const std::string& out, int count, int height,
                                                 int width, uint64_t seed, bool labels);

// labelIds -> trainIds (255: not evaluated), pixel by pixel.
std::vector<uint8_t> to_train_ids(const std::vector<uint8_t>& label_ids);

}  // namespace farsee::tools
