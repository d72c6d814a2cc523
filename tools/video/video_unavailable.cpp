// Built instead of video_decoder.cpp and video_encoder.cpp when CMake did not find FFmpeg's
// libraries: the video entry points exist and say why they cannot work.
#include "kernels/core/check.h"
#include "tools/video/video_decoder.h"
#include "tools/video/video_encoder.h"

namespace farsee::tools::video {

namespace {
[[noreturn]] void unavailable() {
  FARSEE_REQUIRE(false,
                 "FarSee was built without FFmpeg's libraries: no video (install libavformat-dev "
                 "libavcodec-dev libswscale-dev libavutil-dev libavdevice-dev with "
                 "tools/scripts/install_deps.sh, and rebuild)");
  std::abort();
}
}  // namespace

bool video_available() {
  return false;
}

struct VideoDecoder::Impl {};
VideoDecoder::VideoDecoder(const std::string&, bool, const std::atomic<bool>*) {
  unavailable();
}
VideoDecoder::~VideoDecoder() = default;
const SourceInfo& VideoDecoder::info() const {
  unavailable();
}
bool VideoDecoder::next(RgbFrame&) {
  unavailable();
}
const std::string& VideoDecoder::error() const {
  unavailable();
}

struct VideoEncoder::Impl {};
VideoEncoder::VideoEncoder(const std::string&, int, int, int, int, const EncoderOptions&) {
  unavailable();
}
VideoEncoder::~VideoEncoder() = default;
const std::string& VideoEncoder::codec_name() const {
  unavailable();
}
const std::string& VideoEncoder::codec_long_name() const {
  unavailable();
}
void VideoEncoder::write(const uint8_t*) {
  unavailable();
}
void VideoEncoder::finish() {
  unavailable();
}
int64_t VideoEncoder::frames() const {
  unavailable();
}

}  // namespace farsee::tools::video
