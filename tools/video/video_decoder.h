// Reads a video file or a camera (/dev/videoN through libavdevice's v4l2 input) as 8-bit RGB
// frames, in order (DESIGN.md section 15). The frames are converted with sws_scale to RGB24 at the
// source's size; the conversion is exact and deterministic for a given FFmpeg build, so the same
// file always yields the same bytes (the tests compare farsee-infer on a video with farsee-infer on
// its frames saved as PNG).
//
// Bad input ends the stream at the last good frame and says why in error(), naming the frame:
// a packet the demuxer marks corrupt or cut short (a truncated file), a decoder error (the decoder
// is asked to fail rather than conceal: AV_EF_EXPLODE), a frame flagged corrupt, a read error, or a
// file that ends before the frame count its header announces. Opening errors (a missing or empty
// file, not a video, no decoder for its codec, a missing camera) throw farsee::Error at once.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace farsee::tools::video {

// One decoded frame: RGB24, [height][width][3].
struct RgbFrame {
  int64_t index = 0;  // 0-based, in decoding order
  int height = 0, width = 0;
  std::vector<uint8_t> rgb;
};

struct SourceInfo {
  int height = 0, width = 0;
  int fps_num = 25, fps_den = 1;  // the stream's average frame rate (25 when it records none)
  int64_t expected_frames = 0;    // from the header or duration; 0: unknown (a camera)
  std::string codec;              // the decoder's name
  bool camera = false;
};

// True when FarSee was built with FFmpeg's libraries (else every video entry point throws).
bool video_available();

class VideoDecoder {
 public:
  // `source`: a file, or a camera device (/dev/videoN) when `camera`. `stop` (optional): set from
  // another thread or a signal handler to end the stream cleanly (a camera has no end).
  VideoDecoder(const std::string& source, bool camera, const std::atomic<bool>* stop = nullptr);
  ~VideoDecoder();
  VideoDecoder(const VideoDecoder&) = delete;
  VideoDecoder& operator=(const VideoDecoder&) = delete;

  const SourceInfo& info() const;
  // The next frame; false at the end (error() says whether it ended on bad input).
  bool next(RgbFrame& frame);
  // "" after a clean end; else why the stream stopped, naming the frame.
  const std::string& error() const;

  struct Impl;  // the FFmpeg state (in the .cpp; public for its helper functions)

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace farsee::tools::video
