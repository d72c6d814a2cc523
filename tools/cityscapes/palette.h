// The Cityscapes colour palette of the 19 evaluation classes (trainIds 0..18, as in the official
// cityscapesScripts labels.py); any other label (e.g. 255, ignore) is black.
#pragma once

#include <cstdint>
#include <vector>

namespace farsee::tools {

constexpr int kCityscapesClasses = 19;
constexpr uint8_t kCityscapesPalette[kCityscapesClasses][3] = {
    {128, 64, 128},   // 0 road
    {244, 35, 232},   // 1 sidewalk
    {70, 70, 70},     // 2 building
    {102, 102, 156},  // 3 wall
    {190, 153, 153},  // 4 fence
    {153, 153, 153},  // 5 pole
    {250, 170, 30},   // 6 traffic light
    {220, 220, 0},    // 7 traffic sign
    {107, 142, 35},   // 8 vegetation
    {152, 251, 152},  // 9 terrain
    {70, 130, 180},   // 10 sky
    {220, 20, 60},    // 11 person
    {255, 0, 0},      // 12 rider
    {0, 0, 142},      // 13 car
    {0, 0, 70},       // 14 truck
    {0, 60, 100},     // 15 bus
    {0, 80, 100},     // 16 train
    {0, 0, 230},      // 17 motorcycle
    {119, 11, 32},    // 18 bicycle
};

// Labels [pixels] -> RGB [pixels][3].
inline std::vector<uint8_t> colorize_labels(const std::vector<uint8_t>& labels) {
  std::vector<uint8_t> rgb(labels.size() * 3, 0);
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < kCityscapesClasses) {
      for (int c = 0; c < 3; ++c) rgb[i * 3 + c] = kCityscapesPalette[labels[i]][c];
    }
  }
  return rgb;
}

}  // namespace farsee::tools
