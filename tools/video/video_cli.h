// farsee-infer's video mode (DESIGN.md section 15): its flags, which arguments are videos, and the
// run over every video and camera given. Kept apart from farsee_infer.cpp (image mode).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "net/api/farsee/farsee.h"

namespace farsee::tools {
class Flags;  // tools/cli/flags.h
}  // namespace farsee::tools

namespace farsee::tools::video {

extern const char* const kVideoUsage;

struct VideoFlags {
  bool frames = false;               // --frames: <name>/<frame:06d>_labels.png
  int64_t max_frames = -1;           // --max-frames N
  std::vector<std::string> cameras;  // --camera N -> /dev/videoN
  std::string codec;         // --codec NAME: the encoder to use instead of the default choice
  std::string ground_truth;  // --ground-truth DIR: mIoU against <frame:06d>_gt_labelTrainIds.png
};

// Throws, saying what to install, when FarSee was built without FFmpeg's libraries.
void require_video_support();

// Adds the video flags (kVideoUsage) to farsee-infer's, to be set in `out` as they are parsed.
void add_video_flags(Flags& flags, VideoFlags& out);

// A positional argument that names a video: a camera device (/dev/videoN) or a file with a video
// extension (.mp4 .mkv .avi .mov .webm .m4v .mpg .mpeg .ts .y4m .flv .wmv .ogv).
bool is_video_argument(const std::string& arg);

// Segments every video and camera into <out>/<name>_overlay.mp4 (and with --frames,
// <out>/<name>/<frame:06d>_labels.png), printing the codec chosen and end-to-end vs network fps.
// Returns the exit status: 1 when any video stopped on bad input or failed.
int run_videos(Segmenter& segmenter, const std::vector<std::string>& sources,
               const VideoFlags& flags, const std::string& out_dir, bool label_ids);

}  // namespace farsee::tools::video
