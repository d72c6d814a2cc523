// VideoDecoder with FFmpeg's libraries (see video_decoder.h).
#include "tools/video/video_decoder.h"

#include <sys/stat.h>

#include <array>
#include <cstring>
#include <utility>

#include "kernels/core/check.h"
#include "tools/video/ffmpeg_util.h"

extern "C" {
#include <libavdevice/avdevice.h>
}

namespace farsee::tools::video {

bool video_available() {
  return true;
}

struct VideoDecoder::Impl {
  std::string source;
  AVFormatContext* format = nullptr;
  CodecPtr codec;
  SwsPtr sws;
  std::array<int, 3> sws_key{};  // pixel format, colour matrix, full range of `sws`
  FramePtr frame{av_frame_alloc()};
  PacketPtr packet{av_packet_alloc()};
  int stream = -1;
  bool header_counts_frames = false;  // expected_frames is the header's count (not an estimate)
  SourceInfo info;
  int64_t decoded = 0;
  bool draining = false, ended = false;
  std::string pending_error;  // bad input seen: the frames still in the decoder come out first
  std::string error;
  const std::atomic<bool>* stop = nullptr;
  ~Impl() { avformat_close_input(&format); }
};

namespace {

// Opens `source` (a file, or a v4l2 camera) into `impl.format`; throws naming what is wrong.
void open_input(VideoDecoder::Impl& impl, const std::string& source, bool camera) {
  struct stat st {};
  const AVInputFormat* input_format = nullptr;
  if (camera) {
    FARSEE_REQUIRE(::stat(source.c_str(), &st) == 0,
                   "camera '" << source << "' not found: " << std::strerror(errno)
                              << " (is a camera connected? `ls /dev/video*` lists them)");
    avdevice_register_all();
    input_format = av_find_input_format("v4l2");
    FARSEE_REQUIRE(input_format, "camera '" << source
                                            << "': this FFmpeg build has no v4l2 input "
                                               "(libavdevice without video4linux2)");
  } else {
    FARSEE_REQUIRE(::stat(source.c_str(), &st) == 0,
                   "video '" << source << "' cannot be read: " << std::strerror(errno));
    FARSEE_REQUIRE(!S_ISDIR(st.st_mode), "video '" << source << "' is a directory");
    // A pipe or FIFO (a live stream, like a camera) has no size to check.
    FARSEE_REQUIRE(!S_ISREG(st.st_mode) || st.st_size > 0,
                   "video '" << source << "' is empty (0 bytes)");
  }
  const int rc = avformat_open_input(&impl.format, source.c_str(), input_format, nullptr);
  FARSEE_REQUIRE(rc >= 0, (camera ? "camera '" : "'")
                              << source << "' cannot be opened as a video: " << av_error_text(rc)
                              << (camera ? "" : " (not a container FFmpeg can read)"));
  const int info_rc = avformat_find_stream_info(impl.format, nullptr);
  FARSEE_REQUIRE(info_rc >= 0, "'" << source << "': cannot read its stream information: "
                                   << av_error_text(info_rc));
}

// Finds the video stream and opens its decoder, filling `impl.info`.
void open_decoder(VideoDecoder::Impl& impl, bool camera) {
  const AVCodec* decoder = nullptr;
  const int s = av_find_best_stream(impl.format, AVMEDIA_TYPE_VIDEO, -1, -1, &decoder, 0);
  FARSEE_REQUIRE(s != AVERROR_STREAM_NOT_FOUND, "'" << impl.source << "' holds no video stream");
  const AVStream* st = impl.format->streams[s >= 0 ? s : 0];
  char tag[AV_FOURCC_MAX_STRING_SIZE] = {};
  av_fourcc_make_string(tag, st->codecpar->codec_tag);
  FARSEE_REQUIRE(s >= 0 && decoder, "'" << impl.source << "': its video codec '"
                                        << avcodec_get_name(st->codecpar->codec_id) << "' (tag "
                                        << tag
                                        << ") is not supported (no decoder in this FFmpeg build)");
  impl.stream = s;
  impl.codec.reset(avcodec_alloc_context3(decoder));
  FARSEE_REQUIRE(impl.codec, "out of memory opening the decoder of '" << impl.source << "'");
  FARSEE_REQUIRE(avcodec_parameters_to_context(impl.codec.get(), st->codecpar) >= 0,
                 "'" << impl.source << "': bad codec parameters");
  // Fail on damaged data instead of concealing it: a corrupt frame ends the stream, named.
  impl.codec->err_recognition = AV_EF_EXPLODE | AV_EF_CRCCHECK;
  impl.codec->thread_count = 1;  // the cores belong to the network (DESIGN.md section 15)
  const int rc = avcodec_open2(impl.codec.get(), decoder, nullptr);
  FARSEE_REQUIRE(rc >= 0, "'" << impl.source << "': cannot open the " << decoder->name
                              << " decoder: " << av_error_text(rc));
  SourceInfo& info = impl.info;
  info.width = impl.codec->width;
  info.height = impl.codec->height;
  FARSEE_REQUIRE(info.width > 0 && info.height > 0,
                 "'" << impl.source << "': the video stream has no frame size");
  AVRational rate = st->avg_frame_rate.num > 0 ? st->avg_frame_rate : st->r_frame_rate;
  if (rate.num > 0 && rate.den > 0) info.fps_num = rate.num, info.fps_den = rate.den;
  impl.header_counts_frames = st->nb_frames > 0;
  if (st->nb_frames > 0) {
    info.expected_frames = st->nb_frames;
  } else if (impl.format->duration > 0) {
    info.expected_frames =
        int64_t(double(impl.format->duration) / AV_TIME_BASE * info.fps_num / info.fps_den + 0.5);
  }
  info.codec = decoder->name;
  info.camera = camera;
}

// The deprecated full-range "yuvj" formats as their plain twins (sws_scale warns on them); true
// when `format` was one (the samples are full range).
bool unjpeg(AVPixelFormat& format) {
  const std::pair<AVPixelFormat, AVPixelFormat> twins[] = {
      {AV_PIX_FMT_YUVJ420P, AV_PIX_FMT_YUV420P},
      {AV_PIX_FMT_YUVJ422P, AV_PIX_FMT_YUV422P},
      {AV_PIX_FMT_YUVJ444P, AV_PIX_FMT_YUV444P},
      {AV_PIX_FMT_YUVJ440P, AV_PIX_FMT_YUV440P}};
  for (const auto& [j, plain] : twins) {
    if (format == j) {
      format = plain;
      return true;
    }
  }
  return false;
}

// Converts the decoded frame to RGB24 (BT.601/709 by the frame's tags, its range; bit-exact).
void to_rgb(VideoDecoder::Impl& impl, RgbFrame& out) {
  const AVFrame* f = impl.frame.get();
  FARSEE_REQUIRE(f->width == impl.info.width && f->height == impl.info.height,
                 "'" << impl.source << "': frame " << impl.decoded << " is " << f->width << "x"
                     << f->height << ", the video " << impl.info.width << "x" << impl.info.height
                     << " (a size change is not supported)");
  AVPixelFormat format = AVPixelFormat(f->format);
  const bool was_jpeg = unjpeg(format);
  const int full = was_jpeg || f->color_range == AVCOL_RANGE_JPEG;
  const int space = f->colorspace == AVCOL_SPC_UNSPECIFIED ? SWS_CS_DEFAULT : int(f->colorspace);
  const std::array<int, 3> key{int(format), space, full};
  if (!impl.sws || key != impl.sws_key) {  // (re)configured only when the frames' format changes
    impl.sws.reset(sws_getContext(f->width, f->height, format, f->width, f->height,
                                  AV_PIX_FMT_RGB24, SWS_BILINEAR | SWS_ACCURATE_RND | SWS_BITEXACT,
                                  nullptr, nullptr, nullptr));
    FARSEE_REQUIRE(impl.sws, "'" << impl.source << "': no conversion from pixel format "
                                 << av_get_pix_fmt_name(AVPixelFormat(f->format)) << " to RGB");
    sws_setColorspaceDetails(impl.sws.get(), sws_getCoefficients(space), full,
                             sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
    impl.sws_key = key;
  }
  out.index = impl.decoded;
  out.height = f->height;
  out.width = f->width;
  out.rgb.resize(size_t(f->height) * f->width * 3);
  uint8_t* dst[4] = {out.rgb.data(), nullptr, nullptr, nullptr};
  const int dst_stride[4] = {f->width * 3, 0, 0, 0};
  sws_scale(impl.sws.get(), f->data, f->linesize, 0, f->height, dst, dst_stride);
}

// Bad input: remember why and drain the decoder (its buffered good frames still come out).
void stop_on_bad_input(VideoDecoder::Impl& impl, const std::string& why) {
  if (impl.pending_error.empty()) impl.pending_error = why;
  if (!impl.draining) avcodec_send_packet(impl.codec.get(), nullptr);
  impl.draining = true;
}

// The end of the stream: names the frame where bad input stopped it, if it did.
bool finish(VideoDecoder::Impl& impl) {
  impl.ended = true;
  const std::string last = impl.decoded > 0
                               ? "the last good frame is " + std::to_string(impl.decoded - 1)
                               : std::string("no frame was decoded");
  if (!impl.pending_error.empty()) {
    impl.error = "'" + impl.source + "': frame " + std::to_string(impl.decoded) + ": " +
                 impl.pending_error + "; " + last;
  } else if (impl.header_counts_frames && !impl.info.camera &&
             (impl.stop == nullptr || !impl.stop->load()) &&
             impl.decoded < impl.info.expected_frames) {
    impl.error = "'" + impl.source + "': the file ends at frame " + std::to_string(impl.decoded) +
                 " of the " + std::to_string(impl.info.expected_frames) +
                 " its header announces (truncated?); " + last;
  }
  return false;
}

// Feeds the decoder one packet of the video stream (or the end of the file).
void feed(VideoDecoder::Impl& impl) {
  AVPacket* p = impl.packet.get();
  const int rc = av_read_frame(impl.format, p);
  if (rc == AVERROR_EOF) {
    avcodec_send_packet(impl.codec.get(), nullptr);
    impl.draining = true;
    return;
  }
  if (rc < 0) return stop_on_bad_input(impl, "read error: " + av_error_text(rc));
  if (p->stream_index == impl.stream) {
    if (p->flags & AV_PKT_FLAG_CORRUPT) {
      av_packet_unref(p);
      return stop_on_bad_input(impl, "its data is cut short or corrupt (truncated file?)");
    }
    const int send = avcodec_send_packet(impl.codec.get(), p);
    if (send < 0 && send != AVERROR(EAGAIN)) {
      stop_on_bad_input(impl, "cannot be decoded: " + av_error_text(send));
    }
  }
  av_packet_unref(p);
}

}  // namespace

VideoDecoder::VideoDecoder(const std::string& source, bool camera, const std::atomic<bool>* stop)
    : impl_(std::make_unique<Impl>()) {
  FARSEE_REQUIRE(impl_->frame && impl_->packet, "out of memory opening '" << source << "'");
  impl_->source = source;
  impl_->stop = stop;
  av_log_set_level(AV_LOG_FATAL);  // errors are reported by us, naming the frame
  open_input(*impl_, source, camera);
  open_decoder(*impl_, camera);
}

VideoDecoder::~VideoDecoder() = default;

const SourceInfo& VideoDecoder::info() const {
  return impl_->info;
}

const std::string& VideoDecoder::error() const {
  return impl_->error;
}

bool VideoDecoder::next(RgbFrame& out) {
  Impl& impl = *impl_;
  while (!impl.ended) {
    if (impl.stop && impl.stop->load() && !impl.draining) return finish(impl);
    const int rc = avcodec_receive_frame(impl.codec.get(), impl.frame.get());
    if (rc == 0) {
      const AVFrame* f = impl.frame.get();
      if ((f->flags & AV_FRAME_FLAG_CORRUPT) || f->decode_error_flags) {
        stop_on_bad_input(impl, "the decoder reports it corrupt");
        return finish(impl);  // frames after a damaged one are not good ones
      }
      to_rgb(impl, out);
      ++impl.decoded;
      return true;
    }
    if (rc == AVERROR_EOF) return finish(impl);
    if (rc != AVERROR(EAGAIN)) {
      stop_on_bad_input(impl, "cannot be decoded: " + av_error_text(rc));
      return finish(impl);
    }
    if (impl.draining) return finish(impl);
    feed(impl);
  }
  return false;
}

}  // namespace farsee::tools::video
