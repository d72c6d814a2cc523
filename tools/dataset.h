// Cityscapes-layout training data for farsee-train (DESIGN.md section 10):
//   <root>/leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png
//   <root>/gtFine/<split>/<city>/<stem>_gtFine_labelIds.png
// labelIds are mapped to the 19 trainIds (cityscapesScripts' labels.py), every other id to 255.
//
// A batch: images decoded (stb_image), RGB / 255 in float, resized to the input size with
// PyTorch's bilinear (align_corners=False) exactly as farsee-infer does, ImageNet-normalised; label
// maps resized to the input size by nearest neighbour, src = floor(dst * in / out) in integer
// arithmetic (PyTorch's 'nearest' for these sizes). Optional augmentation: a horizontal flip of
// image and label with probability 1/2, drawn from a seeded generator per (epoch, file), so a run
// is reproducible. Order: sorted path order, or (shuffle) a seeded permutation per epoch; batch k
// holds positions k*B .. k*B+B-1 of the order, wrapping around the end of the list.
//
// Bad data is an error naming the file: a missing label file, an image and label of different
// sizes, an unreadable file, a trainId >= the number of classes.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace farsee::tools {

// labelId -> trainId (255: ignored); defined in tools/metrics.cpp (declared in tools/metrics.h
// too).
const std::array<uint8_t, 256>& cityscapes_train_ids();

struct SamplePaths {
  std::string image, label;
};
// Every *_leftImg8bit.png under <root>/leftImg8bit/<split>/ (one level of city folders) with its
// label path, in sorted image-path order. Throws when the folder is missing or holds no image, or
// when a label file is missing (naming it).
std::vector<SamplePaths> list_cityscapes(const std::string& root, const std::string& split);

struct DatasetOptions {
  int input_h = 512, input_w = 1024;
  int batch = 8;
  bool shuffle = true;
  bool augment = true;
  uint64_t seed = 0;
  int num_classes = 19;
};

struct Batch {
  int n = 0, h = 0, w = 0;
  std::vector<float> input;     // [n][h][w][3], normalised
  std::vector<uint8_t> labels;  // [n][h][w], trainIds or 255
};

class CityscapesDataset {
 public:
  CityscapesDataset(const std::string& root, const std::string& split,
                    const DatasetOptions& options);
  size_t size() const { return files_.size(); }
  const std::vector<SamplePaths>& files() const { return files_; }
  // Batch k (deterministic for a given k and options).
  Batch batch(int64_t k) const;

 private:
  size_t file_at(int64_t position) const;  // position in the endless order -> file index
  std::vector<SamplePaths> files_;
  DatasetOptions options_;
};

// One sample (exposed for tests): image and label of `paths` at the options' input size.
void load_sample(const SamplePaths& paths, const DatasetOptions& options, bool flip, float* input,
                 uint8_t* labels);

}  // namespace farsee::tools
