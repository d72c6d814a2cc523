// Synthetic street scenes with exact ground truth (DESIGN.md sections 8 and 10), for demos, tests
// and training on the Cityscapes layout (farsee-make-dataset).
//
// A scene is a street canyon seen from a car: a pinhole camera over a ground plane, so everything
// scales with depth and converges to one vanishing point. Per pixel, the nearest of the ground
// (road with lane markings and crossings, curbs, sidewalk pavers, terrain strips), the two side
// planes (building blocks with perspective-correct window grids, vegetation backdrops) with walls
// and fences in front of them, a far frontal skyline and the sky is painted; then sprites far to
// near (trees, poles with traffic signs and traffic lights, cars, people, static void objects), so
// near objects occlude far ones; then shadows, lighting (exposure, tint, gradients), the ego
// vehicle's bonnet and rectification borders (void), sensor noise.
//
// Colour alone does not decide the class: road and sidewalk draw from overlapping grey palettes
// (told apart by curbs, paver joints and lane markings), cars and clothes take any colour
// (greys like the road included), walls share the building palette (no windows), terrain and
// vegetation share greens (flat ground texture against leafy blobs), the sky may be overcast grey,
// and lighting and shadows move every colour.
//
// Labels are Cityscapes labelIds (see namespace label_id). Deterministic: the same (height, width,
// seed) gives byte-identical output (own integer RNG and hashing; float arithmetic limited to
// exactly rounded operations, no libm transcendental functions).
#pragma once

#include <cstdint>
#include <vector>

namespace farsee::tools {

namespace label_id {
enum : uint8_t {
  kUnlabeled = 0,
  kEgoVehicle = 1,
  kRectificationBorder = 2,
  kOutOfRoi = 3,
  kStatic = 4,
  kRoad = 7,
  kSidewalk = 8,
  kBuilding = 11,
  kWall = 12,
  kFence = 13,
  kPole = 17,
  kTrafficLight = 19,
  kTrafficSign = 20,
  kVegetation = 21,
  kTerrain = 22,
  kSky = 23,
  kPerson = 24,
  kCar = 26,
};
}  // namespace label_id

struct SyntheticScene {
  int height = 0, width = 0;
  std::vector<uint8_t> rgb;        // [height][width][3]
  std::vector<uint8_t> label_ids;  // [height][width], Cityscapes labelIds
};

// One scene; height and width at least 32.
SyntheticScene make_synthetic_scene(int height, int width, uint64_t seed);

// One frame of a drive down the street of scene `seed`: the camera `camera_z` camera-height units
// further along (0: make_synthetic_scene's image, byte for byte; at most 400). Objects the camera
// has passed are gone; lighting, noise and the street stay those of the seed.
SyntheticScene make_synthetic_drive_frame(int height, int width, uint64_t seed, float camera_z);

}  // namespace farsee::tools
