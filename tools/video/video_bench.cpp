// farsee-bench --video (see video_bench.h).
#include "tools/video/video_bench.h"

#include <time.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <vector>

#include "kernels/core/check.h"
#include "tools/video/video_decoder.h"
#include "tools/video/video_pipeline.h"

namespace farsee::tools::video {

namespace {
double process_cpu_ms() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) * 1e3 + double(t.tv_nsec) * 1e-6;
}
}  // namespace

VideoBenchResult bench_video(Segmenter& segmenter, const std::string& file, int64_t max_frames,
                             int warmup) {
  using Clock = std::chrono::steady_clock;
  VideoBenchResult r;
  std::vector<RgbFrame> frames;
  {
    VideoDecoder decoder(file, false);
    RgbFrame f;
    while (int64_t(frames.size()) < max_frames && decoder.next(f)) frames.push_back(f);
    FARSEE_REQUIRE(decoder.error().empty(), decoder.error());
    FARSEE_REQUIRE(!frames.empty(), "'" << file << "' has no frames");
  }
  r.frames = int64_t(frames.size());
  r.height = frames[0].height;
  r.width = frames[0].width;
  for (int i = 0; i < warmup; ++i) {
    segmenter.segment(frames[0].rgb.data(), r.height, r.width);
  }
  const Clock::time_point t0 = Clock::now();
  const double cpu0 = process_cpu_ms();
  for (const RgbFrame& f : frames) segmenter.segment(f.rgb.data(), f.height, f.width);
  r.network_cpu_ms = (process_cpu_ms() - cpu0) / double(r.frames);
  const double network_s = std::chrono::duration<double>(Clock::now() - t0).count();
  r.network_fps = double(r.frames) / network_s;

  VideoJob job;
  job.source = file;
  job.output = (std::filesystem::temp_directory_path() /
                ("farsee-bench-video-" + std::to_string(::getpid()) + ".mp4"))
                   .string();
  job.max_frames = r.frames;
  const double cpu1 = process_cpu_ms();
  const VideoReport report = segment_video(segmenter, job);
  r.pipeline_cpu_ms = (process_cpu_ms() - cpu1) / double(r.frames);
  std::error_code ec;
  std::filesystem::remove(job.output, ec);
  FARSEE_REQUIRE(report.input_error.empty(), report.input_error);
  r.codec = report.codec;
  r.end_to_end_fps = report.end_to_end_fps();
  r.pipeline_network_fps = report.network_fps();
  return r;
}

}  // namespace farsee::tools::video
