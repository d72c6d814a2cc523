// VideoEncoder with FFmpeg's libraries (see video_encoder.h).
#include "tools/video/video_encoder.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "kernels/core/atomic_file.h"
#include "kernels/core/check.h"
#include "tools/video/ffmpeg_util.h"

extern "C" {
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
}

namespace farsee::tools::video {

struct VideoEncoder::Impl {
  std::string path, tmp;
  AVFormatContext* format = nullptr;
  AVStream* stream = nullptr;
  CodecPtr codec;
  SwsPtr sws;
  FramePtr frame{av_frame_alloc()};
  PacketPtr packet{av_packet_alloc()};
  std::string name, long_name;
  int64_t frames = 0;
  bool finished = false;
  ~Impl() {
    if (format) {
      if (format->pb) avio_closep(&format->pb);
      avformat_free_context(format);
    }
    if (!finished && !tmp.empty()) ::unlink(tmp.c_str());
  }
};

namespace {

// The codec's pixel format for our frames: its first 4:2:0 one where the size allows it (every
// player takes it), else 4:4:4 (the codec's order: Motion JPEG lists its full-range ones first);
// AV_PIX_FMT_NONE when it has neither.
AVPixelFormat choose_pixel_format(const AVCodec* c, int height, int width) {
  const bool even = height % 2 == 0 && width % 2 == 0;
  for (const bool want420 : {true, false}) {
    if (want420 && !even) continue;
    for (const AVPixelFormat* p = c->pix_fmts; p && *p != AV_PIX_FMT_NONE; ++p) {
      const bool is420 = *p == AV_PIX_FMT_YUV420P || *p == AV_PIX_FMT_YUVJ420P;
      const bool is444 = *p == AV_PIX_FMT_YUV444P || *p == AV_PIX_FMT_YUVJ444P;
      if (want420 ? is420 : is444) return *p;
    }
  }
  return AV_PIX_FMT_NONE;
}

// Opens encoder `c` for the stream; false (nothing kept) when it cannot.
bool try_open(VideoEncoder::Impl& impl, const AVCodec* c, int h, int w, AVRational fps) {
  const AVPixelFormat pix = choose_pixel_format(c, h, w);
  if (pix == AV_PIX_FMT_NONE) return false;
  if (avformat_query_codec(impl.format->oformat, c->id, FF_COMPLIANCE_NORMAL) != 1) return false;
  CodecPtr ctx(avcodec_alloc_context3(c));
  if (!ctx) return false;
  ctx->width = w;
  ctx->height = h;
  ctx->pix_fmt = pix;
  ctx->time_base = av_inv_q(fps);
  ctx->framerate = fps;
  ctx->colorspace = AVCOL_SPC_SMPTE170M;  // what our RGB -> YUV conversion does (BT.601)
  const bool full = pix == AV_PIX_FMT_YUVJ420P || pix == AV_PIX_FMT_YUVJ444P;
  ctx->color_range = full ? AVCOL_RANGE_JPEG : AVCOL_RANGE_MPEG;
  ctx->thread_count = 1;  // the cores belong to the network (DESIGN.md section 15)
  if (impl.format->oformat->flags & AVFMT_GLOBALHEADER) {
    ctx->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  }
  if (std::string(c->name) == "libx264") {
    av_opt_set(ctx->priv_data, "preset", "ultrafast", 0);  // the CPU is the network's
    av_opt_set(ctx->priv_data, "crf", "20", 0);
  } else {
    ctx->flags |= AV_CODEC_FLAG_QSCALE;  // mpeg4, mjpeg: fixed quality (2: near the best)
    ctx->global_quality = FF_QP2LAMBDA * 2;
  }
  if (avcodec_open2(ctx.get(), c, nullptr) < 0) return false;
  impl.codec = std::move(ctx);
  impl.name = c->name;
  impl.long_name = c->long_name ? c->long_name : c->name;
  return true;
}

// The encoders to try, in order.
std::vector<const AVCodec*> candidates(const EncoderOptions& options) {
  std::vector<const AVCodec*> out;
  if (!options.codecs.empty()) {
    for (const std::string& n : options.codecs) {
      if (const AVCodec* c = avcodec_find_encoder_by_name(n.c_str())) out.push_back(c);
    }
    return out;
  }
  for (const char* n : {"libx264"}) {
    if (const AVCodec* c = avcodec_find_encoder_by_name(n)) out.push_back(c);
  }
  for (AVCodecID id : {AV_CODEC_ID_H264, AV_CODEC_ID_MPEG4, AV_CODEC_ID_MJPEG}) {
    if (const AVCodec* c = avcodec_find_encoder(id)) out.push_back(c);
  }
  return out;
}

// Creates the temporary file next to `path` (same extension: some muxers look at it).
std::string make_temporary(const std::string& path) {
  const size_t dot = path.find_last_of('.');
  const size_t slash = path.find_last_of('/');
  const std::string ext = dot == std::string::npos || (slash != std::string::npos && dot < slash)
                              ? ""
                              : path.substr(dot);
  std::string tmp = path + ".tmp.XXXXXX" + ext;
  const int fd = ::mkstemps(&tmp[0], int(ext.size()));
  FARSEE_REQUIRE(fd >= 0, "cannot write video '" << path
                                                 << "': cannot create a temporary file next to "
                                                    "it: "
                                                 << std::strerror(errno));
  ::fchmod(fd, 0644);  // mkstemps makes it 0600; the video is an ordinary output file
  ::close(fd);
  return tmp;
}

// Sends `f` (nullptr: the end) and writes the packets that come out.
void encode(VideoEncoder::Impl& impl, const AVFrame* f) {
  int rc = avcodec_send_frame(impl.codec.get(), f);
  FARSEE_REQUIRE(rc >= 0,
                 "encoding '" << impl.path << "' (" << impl.name << "): " << av_error_text(rc));
  AVPacket* p = impl.packet.get();
  while ((rc = avcodec_receive_packet(impl.codec.get(), p)) >= 0) {
    av_packet_rescale_ts(p, impl.codec->time_base, impl.stream->time_base);
    p->stream_index = impl.stream->index;
    const int wrc = av_interleaved_write_frame(impl.format, p);
    FARSEE_REQUIRE(wrc >= 0, "cannot write video '" << impl.path << "': " << av_error_text(wrc));
  }
  FARSEE_REQUIRE(rc == AVERROR(EAGAIN) || rc == AVERROR_EOF,
                 "encoding '" << impl.path << "' (" << impl.name << "): " << av_error_text(rc));
}

}  // namespace

VideoEncoder::VideoEncoder(const std::string& path, int height, int width, int fps_num, int fps_den,
                           const EncoderOptions& options)
    : impl_(std::make_unique<Impl>()) {
  Impl& impl = *impl_;
  FARSEE_REQUIRE(impl.frame && impl.packet, "out of memory opening video '" << path << "'");
  impl.path = path;
  av_log_set_level(AV_LOG_FATAL);  // errors are reported by us, naming the frame
  const AVOutputFormat* of = av_guess_format(nullptr, path.c_str(), nullptr);
  FARSEE_REQUIRE(of, "video '" << path << "': no container for its extension");
  impl.tmp = make_temporary(path);
  FARSEE_REQUIRE(avformat_alloc_output_context2(&impl.format, of, nullptr, impl.tmp.c_str()) >= 0,
                 "video '" << path << "': cannot create the " << of->name << " container");
  const AVRational fps{fps_num, fps_den};
  for (const AVCodec* c : candidates(options)) {
    if (try_open(impl, c, height, width, fps)) break;
  }
  FARSEE_REQUIRE(impl.codec, "video '" << path << "': no video encoder of this FFmpeg build "
                                       << "works for the " << of->name << " container at " << height
                                       << "x" << width);
  impl.stream = avformat_new_stream(impl.format, nullptr);
  FARSEE_REQUIRE(impl.stream, "out of memory opening video '" << path << "'");
  avcodec_parameters_from_context(impl.stream->codecpar, impl.codec.get());
  impl.stream->time_base = impl.codec->time_base;
  impl.stream->avg_frame_rate = fps;
  int rc = avio_open(&impl.format->pb, impl.tmp.c_str(), AVIO_FLAG_WRITE);
  FARSEE_REQUIRE(rc >= 0, "cannot write video '" << impl.tmp << "': " << av_error_text(rc));
  rc = avformat_write_header(impl.format, nullptr);
  FARSEE_REQUIRE(rc >= 0, "cannot write video '" << impl.tmp << "': " << av_error_text(rc));
  AVFrame* f = impl.frame.get();
  f->format = impl.codec->pix_fmt;
  f->width = width;
  f->height = height;
  FARSEE_REQUIRE(av_frame_get_buffer(f, 0) >= 0,
                 "out of memory for a " << height << "x" << width << " video frame");
}

VideoEncoder::~VideoEncoder() = default;

const std::string& VideoEncoder::codec_name() const {
  return impl_->name;
}
const std::string& VideoEncoder::codec_long_name() const {
  return impl_->long_name;
}
int64_t VideoEncoder::frames() const {
  return impl_->frames;
}

void VideoEncoder::write(const uint8_t* rgb) {
  Impl& impl = *impl_;
  AVFrame* f = impl.frame.get();
  FARSEE_REQUIRE(av_frame_make_writable(f) >= 0, "out of memory encoding '" << impl.path << "'");
  if (!impl.sws) {  // once: every frame has the same size and format (SIMD paths: the output
                    // need not be bit-exact across CPUs, only the decoded input is)
    impl.sws.reset(sws_getContext(f->width, f->height, AV_PIX_FMT_RGB24, f->width, f->height,
                                  AVPixelFormat(f->format), SWS_BILINEAR, nullptr, nullptr,
                                  nullptr));
    FARSEE_REQUIRE(impl.sws, "video '" << impl.path << "': no conversion from RGB");
    const int full = impl.codec->color_range == AVCOL_RANGE_JPEG;
    const int* bt601 = sws_getCoefficients(SWS_CS_ITU601);
    sws_setColorspaceDetails(impl.sws.get(), bt601, 1, bt601, full, 0, 1 << 16, 1 << 16);
  }
  const uint8_t* src[4] = {rgb, nullptr, nullptr, nullptr};
  const int src_stride[4] = {f->width * 3, 0, 0, 0};
  sws_scale(impl.sws.get(), src, src_stride, 0, f->height, f->data, f->linesize);
  f->pts = impl.frames++;
  encode(impl, f);
}

void VideoEncoder::finish() {
  Impl& impl = *impl_;
  encode(impl, nullptr);
  int rc = av_write_trailer(impl.format);
  FARSEE_REQUIRE(rc >= 0, "cannot write video '" << impl.tmp << "': " << av_error_text(rc));
  rc = avio_closep(&impl.format->pb);
  FARSEE_REQUIRE(rc >= 0, "cannot write video '" << impl.tmp << "': " << av_error_text(rc));
  const int fd = ::open(impl.tmp.c_str(), O_RDONLY | O_CLOEXEC);
  FARSEE_REQUIRE(fd >= 0 && ::fsync(fd) == 0,
                 "cannot write video '" << impl.tmp << "': " << std::strerror(errno));
  ::close(fd);
  FARSEE_REQUIRE(
      std::rename(impl.tmp.c_str(), impl.path.c_str()) == 0,
      "cannot rename '" << impl.tmp << "' to '" << impl.path << "': " << std::strerror(errno));
  impl.finished = true;
  atomic_file_detail::sync_folder_of(impl.path);
}

}  // namespace farsee::tools::video
