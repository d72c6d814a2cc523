// A generated clip with exact ground truth (farsee-make-dataset --video, DESIGN.md section 15): a
// camera driving down one synthetic street (tools/data/synthetic_scenes.h,
// make_synthetic_drive_frame), written as
//   <out>/street.mp4                                  the clip (the encoder's default choice)
//   <out>/gt/<frame:06d>_gt_labelTrainIds.png         each frame's trainIds (255: not evaluated)
// so that farsee-infer <out>/street.mp4 --ground-truth <out>/gt prints the mIoU over the frames.
#pragma once

#include <cstdint>
#include <string>

namespace farsee::tools::video {

struct DriveOptions {
  std::string out;
  int frames = 60;
  int height = 512, width = 1024;
  uint64_t seed = 0;
  int fps = 30;
  float speed = 0.3f;  // camera-height units per frame (about 50 km/h at 30 fps, 1.5 m camera)
  int jobs = 1;        // frames made in parallel
  std::string codec;   // empty: the encoder's default choice
};

// Returns the clip's path.
std::string write_synthetic_drive(const DriveOptions& options);

}  // namespace farsee::tools::video
