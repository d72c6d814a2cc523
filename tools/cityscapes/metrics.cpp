#include "tools/cityscapes/metrics.h"

#include <algorithm>

#include "kernels/core/check.h"

namespace farsee::tools {
namespace {

// cityscapesScripts labels.py: (labelId, trainId) of the 19 evaluated classes, in trainId order.
constexpr int kPairs[kCityscapesClasses][2] = {{7, 0},   {8, 1},   {11, 2},  {12, 3},  {13, 4},
                                               {17, 5},  {19, 6},  {20, 7},  {21, 8},  {22, 9},
                                               {23, 10}, {24, 11}, {25, 12}, {26, 13}, {27, 14},
                                               {28, 15}, {31, 16}, {32, 17}, {33, 18}};

}  // namespace

const std::array<uint8_t, 256>& cityscapes_train_ids() {
  static const std::array<uint8_t, 256> table = [] {
    std::array<uint8_t, 256> t;
    t.fill(kIgnoreId);
    for (const auto& p : kPairs) t[size_t(p[0])] = uint8_t(p[1]);
    return t;
  }();
  return table;
}

const std::array<uint8_t, kCityscapesClasses>& cityscapes_label_ids() {
  static const std::array<uint8_t, kCityscapesClasses> table = [] {
    std::array<uint8_t, kCityscapesClasses> t{};
    for (const auto& p : kPairs) t[size_t(p[1])] = uint8_t(p[0]);
    return t;
  }();
  return table;
}

const std::array<const char*, kCityscapesClasses>& cityscapes_class_names() {
  static const std::array<const char*, kCityscapesClasses> names = {
      "road",         "sidewalk",   "building", "wall",       "fence",  "pole",  "traffic light",
      "traffic sign", "vegetation", "terrain",  "sky",        "person", "rider", "car",
      "truck",        "bus",        "train",    "motorcycle", "bicycle"};
  return names;
}

ConfusionMatrix::ConfusionMatrix(int num_classes)
    : c_(num_classes), m_(size_t(num_classes) * (num_classes + 1), 0) {
  FARSEE_REQUIRE(num_classes >= 1 && num_classes < 255,
                 "ConfusionMatrix: " << num_classes << " classes");
}

void ConfusionMatrix::add(const uint8_t* gt, const uint8_t* pred, size_t n) {
  const size_t stride = size_t(c_) + 1;
  for (size_t i = 0; i < n; ++i) {
    const int g = gt[i], p = pred[i];
    FARSEE_REQUIRE((g < c_ || g == kIgnoreId) && (p < c_ || p == kIgnoreId),
                   "ConfusionMatrix::add: pixel " << i << " has ground truth " << g
                                                  << " and prediction " << p << " (classes 0.."
                                                  << c_ - 1 << " or 255)");
    if (g == kIgnoreId) continue;
    ++m_[size_t(g) * stride + (p == kIgnoreId ? size_t(c_) : size_t(p))];
  }
}

void ConfusionMatrix::merge(const ConfusionMatrix& other) {
  FARSEE_REQUIRE(other.c_ == c_,
                 "ConfusionMatrix::merge: " << other.c_ << " vs " << c_ << " classes");
  for (size_t i = 0; i < m_.size(); ++i) m_[i] += other.m_[i];
}

void ConfusionMatrix::add_count(int gt, int pred, uint64_t n) {
  FARSEE_REQUIRE(
      gt >= 0 && gt < c_ && pred >= 0 && pred <= c_,
      "ConfusionMatrix::add_count: (" << gt << ", " << pred << ") outside " << c_ << " classes");
  m_[size_t(gt) * (c_ + 1) + pred] += n;
}

void ConfusionMatrix::clear() {
  std::fill(m_.begin(), m_.end(), uint64_t(0));
}

uint64_t ConfusionMatrix::total() const {
  uint64_t s = 0;
  for (uint64_t v : m_) s += v;
  return s;
}

std::optional<double> ConfusionMatrix::iou(int cls) const {
  FARSEE_REQUIRE(cls >= 0 && cls < c_, "ConfusionMatrix::iou: class " << cls);
  const uint64_t tp = count(cls, cls);
  uint64_t row = 0, column = 0;
  for (int p = 0; p <= c_; ++p) row += count(cls, p);    // every prediction on this class's pixels
  for (int g = 0; g < c_; ++g) column += count(g, cls);  // this prediction on evaluated pixels
  const uint64_t fn = row - tp, fp = column - tp, denom = tp + fp + fn;
  if (denom == 0) return std::nullopt;
  return double(tp) / double(denom);
}

std::vector<std::optional<double>> ConfusionMatrix::ious() const {
  std::vector<std::optional<double>> out(static_cast<size_t>(c_));
  for (int k = 0; k < c_; ++k) out[size_t(k)] = iou(k);
  return out;
}

std::optional<double> ConfusionMatrix::mean_iou() const {
  double sum = 0;
  int defined = 0;
  for (const auto& v : ious()) {
    if (!v) continue;
    sum += *v;
    ++defined;
  }
  if (defined == 0) return std::nullopt;
  return sum / defined;
}

std::optional<double> ConfusionMatrix::pixel_accuracy() const {
  const uint64_t all = total();
  if (all == 0) return std::nullopt;
  uint64_t correct = 0;
  for (int k = 0; k < c_; ++k) correct += count(k, k);
  return double(correct) / double(all);
}

}  // namespace farsee::tools
