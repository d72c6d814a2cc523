// farsee-make-dataset --video (see synthetic_drive.h).
#include "tools/video/synthetic_drive.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "kernels/core/check.h"
#include "tools/data/image_io.h"
#include "tools/data/parallel_for.h"
#include "tools/data/synthetic_dataset.h"
#include "tools/data/synthetic_scenes.h"
#include "tools/video/video_encoder.h"

namespace fs = std::filesystem;

namespace farsee::tools::video {

std::string write_synthetic_drive(const DriveOptions& o) {
  FARSEE_REQUIRE(o.frames >= 1, "--video: at least 1 frame");
  FARSEE_REQUIRE(float(o.frames - 1) * o.speed <= 400,
                 "--video " << o.frames << ": the street is not that long (at most "
                            << int(400 / o.speed) + 1 << " frames)");
  const fs::path gt = fs::path(o.out) / "gt";
  std::error_code ec;
  fs::create_directories(gt, ec);
  FARSEE_REQUIRE(fs::is_directory(gt), "cannot create directory '" << gt.string() << "'");
  const std::string clip = (fs::path(o.out) / "street.mp4").string();
  EncoderOptions enc;
  if (!o.codec.empty()) enc.codecs = {o.codec};
  VideoEncoder encoder(clip, o.height, o.width, o.fps, 1, enc);
  // Frames are made `jobs` at a time in parallel and encoded in order.
  const int chunk = std::max(1, o.jobs);
  std::vector<SyntheticScene> frames(static_cast<size_t>(chunk));
  for (int first = 0; first < o.frames; first += chunk) {
    const int n = std::min(chunk, o.frames - first);
    parallel_for(n, o.jobs, [&](int i, int) {
      const int k = first + i;
      frames[size_t(i)] = make_synthetic_drive_frame(o.height, o.width, o.seed, float(k) * o.speed);
      char name[48];
      std::snprintf(name, sizeof(name), "%06d_gt_labelTrainIds.png", k);
      write_png((gt / name).string(),
                Image{o.width, o.height, 1, to_train_ids(frames[size_t(i)].label_ids)});
    });
    for (int i = 0; i < n; ++i) encoder.write(frames[size_t(i)].rgb.data());
  }
  encoder.finish();
  std::printf("farsee-make-dataset: %d frames %dx%d at %d fps (%s) -> %s, ground truth in %s\n",
              o.frames, o.height, o.width, o.fps, encoder.codec_name().c_str(), clip.c_str(),
              gt.string().c_str());
  return clip;
}

}  // namespace farsee::tools::video
