// Writes RGB24 frames as a video file (DESIGN.md section 15): the container from the file name
// (.mp4, .mkv, .avi, ...), the first codec of a preference list that this FFmpeg build has, the
// container accepts and that opens: by default H.264 (libx264, else any H.264 encoder), then
// MPEG-4 part 2, then Motion JPEG. The file is written under a temporary name next to the
// destination and renamed onto it by finish() (after the trailer and an fsync): a reader never
// sees a half-written video, and one that stops early (corrupt input) is still finished and
// playable. Destroyed without finish() (an error), the temporary file is removed.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace farsee::tools::video {

struct EncoderOptions {
  // Encoder names in order of preference; empty: libx264, any H.264 encoder, mpeg4, mjpeg.
  std::vector<std::string> codecs;
};

class VideoEncoder {
 public:
  VideoEncoder(const std::string& path, int height, int width, int fps_num, int fps_den,
               const EncoderOptions& options = {});
  ~VideoEncoder();
  VideoEncoder(const VideoEncoder&) = delete;
  VideoEncoder& operator=(const VideoEncoder&) = delete;

  // The encoder chosen, e.g. "libx264", and its codec's long name ("H.264 / AVC / ...").
  const std::string& codec_name() const;
  const std::string& codec_long_name() const;
  // One frame, RGB24 [height][width][3].
  void write(const uint8_t* rgb);
  // Flushes the encoder, writes the trailer and renames the file onto its path.
  void finish();
  int64_t frames() const;

  struct Impl;  // the FFmpeg state (in the .cpp; public for its helper functions)

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace farsee::tools::video
