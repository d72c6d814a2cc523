// Segments a video or camera into an overlay video, as a pipeline of concurrent stages joined by
// bounded queues (DESIGN.md section 15):
//   decode thread:   demux, decode, sws_scale to RGB24                    (VideoDecoder)
//   calling thread:  Segmenter::submit / receive (resize, normalise, network, argmax on its
//                    executor; frame k + 1 submitted before frame k is received, so that on cuda
//                    its upload overlaps frame k's network)
//   encode thread:   overlay (half frame, half palette), encode, per-frame label PNGs
// Each stage is one thread and each queue FIFO, so frames stay in order; the queues hold at most
// a few frames, so memory does not grow with the video. The network runs on the calling thread,
// which keeps its OpenMP pool (cpu, reference) or its CUDA stream and graphs (cuda).
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include "net/api/farsee/farsee.h"
#include "tools/cityscapes/metrics.h"
#include "tools/video/video_encoder.h"

namespace farsee::tools::video {

struct VideoJob {
  std::string source;  // a file, or a camera device when `camera`
  bool camera = false;
  std::string output;      // the overlay video
  std::string frames_dir;  // non-empty: <frames_dir>/<frame:06d>_labels.png per frame
  bool label_ids = false;  // the PNGs hold Cityscapes labelIds instead of trainIds
  // Non-empty: score every frame against <dir>/<frame:06d>_gt_labelTrainIds.png (trainIds, 255
  // not evaluated; farsee-make-dataset --video writes them) into VideoReport::scores.
  std::string ground_truth_dir;
  int64_t max_frames = -1;  // < 0: all
  bool progress = false;    // a progress line (frames/s, ETA) on stderr
  EncoderOptions encoder;
  const std::atomic<bool>* stop = nullptr;  // set to end the stream early (Ctrl-C)
};

struct VideoReport {
  int64_t frames = 0;
  int height = 0, width = 0;
  int fps_num = 0, fps_den = 1;
  std::string codec, codec_long_name;  // the encoder chosen
  double wall_s = 0;                   // from the first frame decoded to the output finished
  double network_s = 0;                // in Segmenter::submit/receive (the calling thread)
  std::string input_error;  // bad input stopped the video here (the output is still finished)
  std::optional<ConfusionMatrix> scores;  // with a ground_truth_dir: every frame's pixels
  double end_to_end_fps() const { return wall_s > 0 ? double(frames) / wall_s : 0; }
  double network_fps() const { return network_s > 0 ? double(frames) / network_s : 0; }
};

// Runs the pipeline. Bad input after the first frame ends the video at the last good frame: the
// output of the frames done is finished (trailer written, renamed) and the reason is in
// input_error. Anything else (an unreadable source, no frame at all, an output that cannot be
// written) throws farsee::Error and leaves no output file.
VideoReport segment_video(Segmenter& segmenter, const VideoJob& job);

// Half the frame, half the palette colour (tools/cityscapes/palette.h) of each pixel's label,
// rounded half up: the overlay frames. rgb and out: pixels x 3 bytes.
void blend_overlay(const uint8_t* rgb, const uint8_t* labels, size_t pixels, uint8_t* out);

// Ctrl-C (SIGINT) sets the flag returned, so that a camera run ends with its video finished.
const std::atomic<bool>* stop_on_interrupt();

}  // namespace farsee::tools::video
