// The video pipeline (see video_pipeline.h).
#include "tools/video/video_pipeline.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <deque>
#include <exception>
#include <filesystem>
#include <thread>

#include "kernels/core/check.h"
#include "tools/cityscapes/metrics.h"
#include "tools/cityscapes/palette.h"
#include "tools/data/image_io.h"
#include "tools/video/bounded_queue.h"
#include "tools/video/video_decoder.h"

namespace farsee::tools::video {

namespace {

using Clock = std::chrono::steady_clock;

// Frames in flight between two stages: enough to absorb the jitter of one stage, few enough that
// memory stays small (a 1080p RGB frame is 6 MB).
constexpr size_t kQueueFrames = 3;

struct Segmented {
  RgbFrame frame;
  LabelMap labels;
};

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// "\r<name>: frame 120/300, 8.1 fps, ETA 0:22" on stderr, at most 4 times a second.
void print_progress(const std::string& name, int64_t done, int64_t total, double elapsed_s,
                    double& last_print_s) {
  if (elapsed_s - last_print_s < 0.25 && done != total) return;
  last_print_s = elapsed_s;
  const double fps = elapsed_s > 0 ? done / elapsed_s : 0;
  char eta[32] = "?";
  if (total > 0 && fps > 0) {
    const int64_t s = int64_t((total - done) / fps + 0.5);
    std::snprintf(eta, sizeof(eta), "%lld:%02lld", (long long)(s / 60), (long long)(s % 60));
  }
  std::fprintf(stderr, "\r%s: frame %lld/%s, %.1f fps, ETA %s   ", name.c_str(), (long long)done,
               total > 0 ? std::to_string(total).c_str() : "?", fps, eta);
  std::fflush(stderr);
}

// Writes frame `f`'s labels as <dir>/<index:06d>_labels.png.
void write_frame_labels(const VideoJob& job, const Segmented& s) {
  char name[32];
  std::snprintf(name, sizeof(name), "%06lld_labels.png", (long long)s.frame.index);
  std::vector<uint8_t> ids = s.labels.data;
  if (job.label_ids) {
    for (uint8_t& v : ids) v = cityscapes_label_ids()[v];
  }
  write_png((std::filesystem::path(job.frames_dir) / name).string(),
            Image{s.labels.width, s.labels.height, 1, std::move(ids)});
}

// Adds frame `s`'s labels against its ground truth to `scores`.
void score_frame(const VideoJob& job, const Segmented& s, ConfusionMatrix& scores) {
  char name[48];
  std::snprintf(name, sizeof(name), "%06lld_gt_labelTrainIds.png", (long long)s.frame.index);
  const std::string path = (std::filesystem::path(job.ground_truth_dir) / name).string();
  const Image gt = read_grey(path);
  FARSEE_REQUIRE(gt.height == s.labels.height && gt.width == s.labels.width,
                 "ground truth '" << path << "' is " << gt.height << "x" << gt.width
                                  << ", the video " << s.labels.height << "x" << s.labels.width);
  for (uint8_t v : gt.data) {
    FARSEE_REQUIRE(v < scores.num_classes() || v == 255,
                   "ground truth '" << path << "' holds " << int(v) << ": not a trainId");
  }
  scores.add(gt.data.data(), s.labels.data.data(), gt.data.size());
}

// Lowers the calling thread's priority (nice 5; Linux: nice is per thread) so that the decode and
// encode threads take the cores from the network's OpenMP threads in shorter turns: a worker
// preempted inside a parallel region stalls its peers at the next barrier. Mild (a third of the
// weight), so that on a loaded machine these threads still keep the network fed. Best effort.
void yield_to_network() {
  setpriority(PRIO_PROCESS, id_t(syscall(SYS_gettid)), 5);
}

// The decode stage: frames into `out` until the end, max_frames or a closed queue.
void decode_stage(VideoDecoder& decoder, const VideoJob& job, BoundedQueue<RgbFrame>& out,
                  std::string& input_error, std::exception_ptr& failure) {
  yield_to_network();
  try {
    RgbFrame f;
    for (int64_t n = 0; job.max_frames < 0 || n < job.max_frames; ++n) {
      if (!decoder.next(f)) {
        input_error = decoder.error();
        break;
      }
      if (!out.push(std::move(f))) break;
    }
  } catch (...) {
    failure = std::current_exception();
  }
  out.close();
}

// The encode stage: overlay, encode, label PNGs, progress.
void encode_stage(VideoEncoder& encoder, const VideoJob& job, int64_t total,
                  BoundedQueue<Segmented>& in, std::optional<ConfusionMatrix>& scores,
                  std::exception_ptr& failure) {
  yield_to_network();
  const std::string name = std::filesystem::path(job.source).filename().string();
  const Clock::time_point t0 = Clock::now();
  double last_print_s = -1;
  try {
    Segmented s;
    std::vector<uint8_t> overlay;
    while (in.pop(s)) {
      overlay.resize(s.frame.rgb.size());
      blend_overlay(s.frame.rgb.data(), s.labels.data.data(), s.labels.data.size(), overlay.data());
      encoder.write(overlay.data());
      if (!job.frames_dir.empty()) write_frame_labels(job, s);
      if (scores) score_frame(job, s, *scores);
      if (job.progress)
        print_progress(name, encoder.frames(), total, seconds_since(t0), last_print_s);
    }
  } catch (...) {
    failure = std::current_exception();
  }
  in.close();  // an encoder failure stops the stages before it
  if (job.progress) std::fprintf(stderr, "\n");
}

// The segment stage, on the calling thread: frame k + 1 is submitted before frame k is received,
// so that on cuda its preparation and upload overlap frame k's network (Segmenter::submit).
// Returns the seconds spent in submit() and receive().
double segment_stage(Segmenter& segmenter, BoundedQueue<RgbFrame>& in, BoundedQueue<Segmented>& out,
                     std::exception_ptr& failure) {
  double network_s = 0;
  std::deque<RgbFrame> in_flight;  // the frames submitted and not yet received, oldest first
  // The oldest frame's labels out; false once the encode stage has stopped.
  auto receive_one = [&] {
    Segmented s;
    const Clock::time_point t0 = Clock::now();
    s.labels = segmenter.receive();
    network_s += seconds_since(t0);
    s.frame = std::move(in_flight.front());
    in_flight.pop_front();
    return out.push(std::move(s));
  };
  try {
    RgbFrame f;
    bool open = true;
    while (open && in.pop(f)) {
      const Clock::time_point t0 = Clock::now();
      segmenter.submit(f.rgb.data(), f.height, f.width);
      network_s += seconds_since(t0);
      in_flight.push_back(std::move(f));
      if (int(in_flight.size()) == Segmenter::kMaxInFlight) open = receive_one();
    }
    while (open && !in_flight.empty()) open = receive_one();
  } catch (...) {
    failure = std::current_exception();
  }
  // Whatever stopped the stage, the Segmenter ends with nothing in flight (receive() lets go of
  // its frame even when it throws).
  while (segmenter.frames_in_flight() > 0) {
    try {
      segmenter.receive();
    } catch (...) {
    }
  }
  in.close();
  out.close();
  return network_s;
}

std::atomic<bool> g_interrupted{false};

extern "C" void on_interrupt(int) {
  g_interrupted.store(true);
}

}  // namespace

void blend_overlay(const uint8_t* rgb, const uint8_t* labels, size_t pixels, uint8_t* out) {
  static constexpr uint8_t kBlack[3] = {0, 0, 0};  // colorize_labels' colour of other labels
  for (size_t p = 0; p < pixels; ++p) {
    const uint8_t* c = labels[p] < kCityscapesClasses ? kCityscapesPalette[labels[p]] : kBlack;
    for (int k = 0; k < 3; ++k) out[p * 3 + k] = uint8_t((unsigned(rgb[p * 3 + k]) + c[k] + 1) / 2);
  }
}

const std::atomic<bool>* stop_on_interrupt() {
  std::signal(SIGINT, on_interrupt);
  return &g_interrupted;
}

VideoReport segment_video(Segmenter& segmenter, const VideoJob& job) {
  VideoDecoder decoder(job.source, job.camera, job.stop);
  const SourceInfo& info = decoder.info();
  VideoReport r;
  r.height = info.height, r.width = info.width;
  r.fps_num = info.fps_num, r.fps_den = info.fps_den;
  if (!job.frames_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(job.frames_dir, ec);
    FARSEE_REQUIRE(std::filesystem::is_directory(job.frames_dir),
                   "cannot create directory '" << job.frames_dir << "'");
  }
  VideoEncoder encoder(job.output, info.height, info.width, info.fps_num, info.fps_den,
                       job.encoder);
  r.codec = encoder.codec_name();
  r.codec_long_name = encoder.codec_long_name();
  int64_t total = info.expected_frames;
  if (job.max_frames >= 0 && (total <= 0 || job.max_frames < total)) total = job.max_frames;

  BoundedQueue<RgbFrame> decoded(kQueueFrames);
  BoundedQueue<Segmented> segmented(kQueueFrames);
  std::exception_ptr decode_failure, segment_failure, encode_failure;
  if (!job.ground_truth_dir.empty()) r.scores.emplace();
  const Clock::time_point t0 = Clock::now();
  std::thread decode_thread(decode_stage, std::ref(decoder), std::cref(job), std::ref(decoded),
                            std::ref(r.input_error), std::ref(decode_failure));
  std::thread encode_thread(encode_stage, std::ref(encoder), std::cref(job), total,
                            std::ref(segmented), std::ref(r.scores), std::ref(encode_failure));
  r.network_s = segment_stage(segmenter, decoded, segmented, segment_failure);
  decode_thread.join();
  encode_thread.join();
  for (const std::exception_ptr& e : {encode_failure, segment_failure, decode_failure}) {
    if (e) std::rethrow_exception(e);
  }
  r.frames = encoder.frames();
  FARSEE_REQUIRE(r.frames > 0,
                 (r.input_error.empty() ? "'" + job.source + "' has no frames" : r.input_error));
  encoder.finish();
  r.wall_s = seconds_since(t0);
  return r;
}

}  // namespace farsee::tools::video
