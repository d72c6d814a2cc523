// farsee-infer's video mode (see video_cli.h).
#include "tools/video/video_cli.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <map>

#include "kernels/core/check.h"
#include "tools/cli/flags.h"
#include "tools/video/video_decoder.h"
#include "tools/video/video_pipeline.h"

namespace fs = std::filesystem;

namespace farsee::tools::video {

const char* const kVideoUsage = R"(
Video (FFmpeg's libraries): an input with a video extension (.mp4 .mkv .avi .mov .webm ...), a
camera device /dev/videoN, or --camera N is segmented frame by frame into <out>/<name>_overlay.mp4
(the frames half image, half palette; same size and frame rate; H.264 where this FFmpeg has an
encoder for it, else MPEG-4 part 2 or Motion JPEG: the one chosen is printed). Decoding, the
network and encoding run concurrently; the end-to-end and the network fps are printed at the end.
A corrupt or truncated video stops at its last good frame (named), the output of the frames done
is finished, and the exit status is 1. Videos and images go in separate runs.
  --frames                also write <out>/<name>/<frame:06d>_labels.png for every frame
  --max-frames N          stop after N frames (a camera runs until Ctrl-C without it)
  --camera N              segment camera /dev/videoN (v4l2; repeatable)
  --codec NAME            the FFmpeg encoder to use (e.g. libx264, mpeg4, mjpeg, ffv1)
  --ground-truth DIR      score every frame against DIR/<frame:06d>_gt_labelTrainIds.png
                          (trainIds; farsee-make-dataset --video writes them) and print the mIoU
                          over the frames (Cityscapes' protocol, tools/cityscapes/metrics.h)
)";

void require_video_support() {
  FARSEE_REQUIRE(video_available(),
                 "this farsee-infer was built without FFmpeg's libraries, so it cannot read "
                 "videos (install libavformat-dev libavcodec-dev libswscale-dev libavutil-dev "
                 "libavdevice-dev: tools/scripts/install_deps.sh, and rebuild)");
}

void add_video_flags(Flags& flags, VideoFlags& out) {
  flags.set_true("--frames", out.frames);
  flags.value("--max-frames",
              [&out](const std::string& v) { out.max_frames = parse_int(v, "--max-frames", 1); });
  flags.value("--camera", [&out](const std::string& v) {  // repeatable: each one adds a camera
    out.cameras.push_back("/dev/video" + std::to_string(parse_int(v, "--camera", 0)));
  });
  flags.text("--codec", out.codec);
  flags.text("--ground-truth", out.ground_truth);
}

bool is_video_argument(const std::string& arg) {
  if (arg.rfind("/dev/video", 0) == 0) return true;
  std::string ext = fs::path(arg).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  for (const char* v : {".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts",
                        ".y4m", ".flv", ".wmv", ".ogv"}) {
    if (ext == v) return true;
  }
  return false;
}

namespace {

// The job of one source: its outputs under `out_dir`, named after it.
VideoJob make_job(const std::string& source, const VideoFlags& flags, const std::string& out_dir,
                  bool label_ids, const std::atomic<bool>* stop) {
  VideoJob job;
  job.source = source;
  job.camera = source.rfind("/dev/video", 0) == 0;
  const std::string name = fs::path(source).stem().string();
  job.output = (fs::path(out_dir) / (name + "_overlay.mp4")).string();
  if (flags.frames) job.frames_dir = (fs::path(out_dir) / name).string();
  job.label_ids = label_ids;
  job.max_frames = flags.max_frames;
  job.progress = ::isatty(2) != 0;
  if (!flags.codec.empty()) job.encoder.codecs = {flags.codec};
  job.ground_truth_dir = flags.ground_truth;
  job.stop = stop;
  return job;
}

void print_report(const VideoJob& job, const VideoReport& r) {
  std::printf("%s: %lld frame(s) %dx%d at %.3g fps -> %s (encoder %s: %s)\n", job.source.c_str(),
              (long long)r.frames, r.height, r.width, double(r.fps_num) / r.fps_den,
              job.output.c_str(), r.codec.c_str(), r.codec_long_name.c_str());
  const double e2e = r.end_to_end_fps(), net = r.network_fps();
  std::printf("%s: end-to-end %.2f fps, network %.2f fps (end-to-end %.0f%% of network)\n",
              job.source.c_str(), e2e, net, net > 0 ? 100.0 * e2e / net : 0.0);
  if (r.scores) {
    const std::optional<double> miou = r.scores->mean_iou(), acc = r.scores->pixel_accuracy();
    std::printf("%s: mIoU %.2f%% over %lld frame(s) (pixel accuracy %.2f%%) against %s\n",
                job.source.c_str(), 100 * miou.value_or(0), (long long)r.frames,
                100 * acc.value_or(0), job.ground_truth_dir.c_str());
  }
  std::fflush(stdout);
}

}  // namespace

int run_videos(Segmenter& segmenter, const std::vector<std::string>& sources,
               const VideoFlags& flags, const std::string& out_dir, bool label_ids) {
  require_video_support();
  FARSEE_REQUIRE(flags.ground_truth.empty() || segmenter.num_classes() == kCityscapesClasses,
                 "--ground-truth: the network has " << segmenter.num_classes()
                                                    << " classes, the scoring Cityscapes' "
                                                    << kCityscapesClasses);
  std::map<std::string, std::string> owner;  // output name -> source
  for (const std::string& source : sources) {
    const auto [it, inserted] = owner.emplace(fs::path(source).stem().string(), source);
    FARSEE_REQUIRE(inserted,
                   "videos '" << it->second << "' and '" << source << "' would both be written as '"
                              << (fs::path(out_dir) / (it->first + "_overlay.mp4")).string()
                              << "': segment them in separate runs with different --out");
  }
  const std::atomic<bool>* stop = stop_on_interrupt();
  int failed = 0;
  for (const std::string& source : sources) {
    const VideoJob job = make_job(source, flags, out_dir, label_ids, stop);
    try {
      const VideoReport r = segment_video(segmenter, job);
      print_report(job, r);
      if (!r.input_error.empty()) {
        std::fprintf(stderr, "farsee-infer: error: %s (%s holds the %lld frame(s) before it)\n",
                     r.input_error.c_str(), job.output.c_str(), (long long)r.frames);
        ++failed;
      }
    } catch (const std::exception& e) {
      std::fflush(stdout);
      std::fprintf(stderr, "farsee-infer: error: %s: %s\n", source.c_str(), e.what());
      ++failed;
    }
  }
  std::printf("farsee-infer: %zu video(s) segmented, %d failed\n", sources.size() - failed, failed);
  return failed ? 1 : 0;
}

}  // namespace farsee::tools::video
