// Cityscapes semantic-segmentation metrics (the protocol of cityscapesScripts'
// evalPixelLevelSemanticLabeling): 19 evaluated classes; ground-truth pixels of any other class
// (trainId 255, "void") are ignored entirely; a prediction outside the 19 classes (trainId 255) on
// an evaluated pixel counts as a false negative of the true class. Per class
//   IoU = TP / (TP + FP + FN),
// undefined (null) when the class is absent from both the ground truth and the predictions of
// evaluated pixels; the mean IoU averages the defined classes only. Pixel accuracy: correctly
// labelled evaluated pixels / evaluated pixels. Counts are 64-bit and exact, so the figures are
// the same as cityscapesScripts' up to the last bit of the double division.
//
// Also the labelId <-> trainId tables (cityscapesScripts' labels.py) and the official class names.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tools/cityscapes/palette.h"  // kCityscapesClasses (19)

namespace farsee::tools {

constexpr uint8_t kIgnoreId = 255;
// Cityscapes labelIds are 0..33 (labels.py; -1, the licence plate, never appears in a PNG).
constexpr int kCityscapesLabelIds = 34;

// labelId -> trainId (255: not evaluated, also for every id >= 34).
const std::array<uint8_t, 256>& cityscapes_train_ids();
// trainId (0..18) -> labelId.
const std::array<uint8_t, kCityscapesClasses>& cityscapes_label_ids();
// Official class names by trainId: "road", "sidewalk", ..., "traffic light", ..., "bicycle".
const std::array<const char*, kCityscapesClasses>& cityscapes_class_names();

class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(int num_classes = kCityscapesClasses);

  // Adds `n` pixels: gt and pred are trainIds. gt 255 is ignored; pred 255 is a wrong prediction
  // (a "void" column). Ids in [num_classes, 255) throw (the callers check their inputs first and
  // name the file).
  void add(const uint8_t* gt, const uint8_t* pred, size_t n);
  void merge(const ConfusionMatrix& other);
  // Adds `n` pixels of ground truth `gt` predicted as `pred` (pred == num_classes(): void): the
  // sum of other ranks' matrices (farsee-train's split validation).
  void add_count(int gt, int pred, uint64_t n);
  void clear();

  int num_classes() const { return c_; }
  // Evaluated pixels with ground truth `gt` predicted as `pred` (pred == num_classes(): void).
  uint64_t count(int gt, int pred) const { return m_[size_t(gt) * (c_ + 1) + pred]; }
  uint64_t total() const;  // evaluated pixels

  std::optional<double> iou(int cls) const;
  std::vector<std::optional<double>> ious() const;
  std::optional<double> mean_iou() const;  // over the defined classes; none when none is
  std::optional<double> pixel_accuracy() const;

 private:
  int c_;
  std::vector<uint64_t> m_;  // [c][c + 1]
};

}  // namespace farsee::tools
