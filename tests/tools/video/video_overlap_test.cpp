// The video pipeline's segment stage on an executor with streams (tools/video/video_pipeline.cpp,
// DESIGN.md section 15): it submits frame k + 1 before receiving frame k (Segmenter::submit /
// receive), so on emu with asynchronous streams (this binary's FARSEE_EMU_ASYNC=1) two frames are
// in flight on the copy and compute streams. Every frame's labels must still be, in order, what
// segment() gives for that decoded frame alone with every emu op run at once. Tiny clip (5 frames,
// 32x64, FFV1), tiny preset, random weights.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "kernels/emu/emu_control.h"
#include "net/api/farsee/farsee.h"
#include "tests/net/tiny_segmenter.h"
#include "tests/support/temp_dir.h"
#include "tools/data/image_io.h"
#include "tools/data/synthetic_scenes.h"
#include "tools/video/video_decoder.h"
#include "tools/video/video_encoder.h"
#include "tools/video/video_pipeline.h"

namespace {

namespace fs = std::filesystem;
using namespace farsee::tools;
using namespace farsee::tools::video;

constexpr int kHeight = 32, kWidth = 64, kFrames = 5;

farsee::SegmenterOptions tiny_emu() {
  return farsee::test::tiny_segmenter("emu", kHeight, kWidth, 5);
}

TEST(VideoOverlap, FramesInFlightGiveEachFramesLabelsInOrder) {
  if (!video_available()) GTEST_SKIP() << "built without FFmpeg's libraries";
  const farsee::test::TempDir dir("farsee_video_overlap");
  const std::string clip = (dir / "clip.avi").string();
  {
    VideoEncoder enc(clip, kHeight, kWidth, 10, 1, EncoderOptions{{"ffv1"}});
    for (int k = 0; k < kFrames; ++k)
      enc.write(make_synthetic_scene(kHeight, kWidth, uint64_t(k)).rgb.data());
    enc.finish();
  }
  const bool was_async = emu::async_enabled();
  emu::set_async(true);
  farsee::Segmenter seg(tiny_emu());
  VideoJob job;
  job.source = clip;
  job.output = (dir / "clip_overlay.mkv").string();
  job.frames_dir = (dir / "frames").string();
  const VideoReport r = segment_video(seg, job);
  EXPECT_EQ(r.frames, kFrames);
  EXPECT_EQ(seg.frames_in_flight(), 0);
  // Each decoded frame alone, every emu op at once (no stream order to get wrong).
  emu::set_async(false);
  farsee::Segmenter alone(tiny_emu());
  VideoDecoder decoder(clip, false);
  RgbFrame f;
  std::vector<uint8_t> first;
  for (int k = 0; k < kFrames; ++k) {
    ASSERT_TRUE(decoder.next(f)) << "frame " << k;
    const farsee::LabelMap want = alone.segment(f.rgb.data(), f.height, f.width);
    char name[32];
    std::snprintf(name, sizeof(name), "%06d_labels.png", k);
    const Image got = read_grey((fs::path(job.frames_dir) / name).string());
    EXPECT_EQ(got.data, want.data) << "frame " << k << ": the video's labels differ";
    if (k == 0) first = want.data;
    if (k == 2) {
      EXPECT_NE(want.data, first) << "frames 0 and 2 segment alike: the test is blind";
    }
  }
  emu::set_async(was_async);
}

}  // namespace
