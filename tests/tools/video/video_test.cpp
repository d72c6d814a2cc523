// Video in farsee-infer (tools/video, DESIGN.md section 15), on tiny clips (64x128, 6 frames,
// tiny preset, random weights, reference executor):
//  - the labels of every frame of a video are bitwise farsee-infer's labels of the same decoded
//    frame saved as PNG (the pipeline keeps frames in order and changes nothing);
//  - a truncated clip, and one with damaged bytes mid-file, stop at the last good frame with a
//    message naming the frame, exit 1, and the overlay of the frames done is a finished,
//    decodable video;
//  - a live source (a FIFO: no seeking, no length), as a camera would be;
//  - farsee-make-dataset --video + farsee-infer --ground-truth, farsee-bench --video;
//  - a zero-length file, a non-video file, an unknown codec and a missing camera are clear
//    errors that leave no output behind.
// The clips are FFV1 or Motion JPEG (intra-only): the comparisons are with the decoded frames.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/mentions.h"
#include "tests/support/run_program.h"
#include "tests/support/temp_dir.h"
#include "tools/cityscapes/palette.h"
#include "tools/data/image_io.h"
#include "tools/data/synthetic_scenes.h"
#include "tools/video/video_decoder.h"
#include "tools/video/video_encoder.h"
#include "tools/video/video_pipeline.h"

namespace {

namespace fs = std::filesystem;
using namespace farsee::tools;
using namespace farsee::tools::video;

constexpr int kHeight = 64, kWidth = 128, kFrames = 6;

class Video : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!video_available()) GTEST_SKIP() << "built without FFmpeg's libraries";
  }
  // A clip of synthetic street scenes (one per frame), encoded with `codec`.
  std::string make_clip(const std::string& name, const std::string& codec) const {
    const std::string path = (dir_ / name).string();
    VideoEncoder enc(path, kHeight, kWidth, 10, 1, EncoderOptions{{codec}});
    for (int k = 0; k < kFrames; ++k) {
      enc.write(make_synthetic_scene(kHeight, kWidth, uint64_t(k)).rgb.data());
    }
    enc.finish();
    return path;
  }
  farsee::test::ProgramResult program(const char* name, const std::string& args) const {
    return farsee::test::run_program((fs::path(FARSEE_PROGRAM_DIR) / name).string() + " " + args);
  }
  farsee::test::ProgramResult infer(const std::string& args) const {
    return farsee::test::run_program(
        (fs::path(FARSEE_PROGRAM_DIR) / "farsee-infer").string() +
        " --preset tiny-paper --random-weights 1 --executor reference --input-size 64x128 --out " +
        (dir_ / "out").string() + " " + args);
  }
  // No overlay and no temporary file under out/.
  void expect_no_output() const {
    if (!fs::exists(dir_ / "out")) return;
    for (const auto& e : fs::recursive_directory_iterator(dir_ / "out")) {
      ADD_FAILURE() << "left behind: " << e.path();
    }
  }
  farsee::test::TempDir dir_{"farsee_video"};
};

std::vector<char> bytes_of(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// Every frame of `path`, decoded; `error` gets the decoder's verdict.
std::vector<RgbFrame> decode_all(const std::string& path, std::string* error = nullptr) {
  VideoDecoder dec(path, false);
  std::vector<RgbFrame> frames;
  RgbFrame f;
  while (dec.next(f)) frames.push_back(f);
  if (error) *error = dec.error();
  return frames;
}

// The overlay a failed run still finalised: it decodes to its end without an error.
std::vector<RgbFrame> decode_finished(const std::string& path) {
  std::string error;
  std::vector<RgbFrame> frames = decode_all(path, &error);
  EXPECT_EQ(error, "") << path;
  return frames;
}

TEST_F(Video, FrameLabelsAreTheImageModeLabelsOfTheDecodedFrame) {
  const std::string clip = make_clip("clip.avi", "ffv1");
  const auto r = infer("--frames " + clip);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_MENTIONS(r.output, "end-to-end");
  EXPECT_MENTIONS(r.output, "network");
  // The decoded frames as PNGs, segmented in image mode into out/png/.
  const std::vector<RgbFrame> frames = decode_all(clip);
  ASSERT_EQ(int(frames.size()), kFrames);
  fs::create_directories(dir_ / "png");
  for (const RgbFrame& f : frames) {
    char name[32];
    std::snprintf(name, sizeof(name), "%06lld.png", (long long)f.index);
    write_png((dir_ / "png" / name).string(), Image{f.width, f.height, 3, f.rgb});
  }
  const auto images = infer((dir_ / "png").string());
  ASSERT_EQ(images.exit_code, 0) << images.output;
  for (int k = 0; k < kFrames; ++k) {
    char name[32];
    std::snprintf(name, sizeof(name), "%06d_labels.png", k);
    const fs::path from_video = dir_ / "out" / "clip" / name;
    const fs::path from_png = dir_ / "out" / (std::string(name, 6) + "_labels.png");
    ASSERT_TRUE(fs::exists(from_video)) << from_video;
    EXPECT_EQ(read_grey(from_video.string()).data, read_grey(from_png.string()).data)
        << "frame " << k << ": the video's labels differ from the decoded frame's";
  }
  // The overlay: every frame, at the clip's size.
  const std::vector<RgbFrame> overlay = decode_all((dir_ / "out" / "clip_overlay.mp4").string());
  ASSERT_EQ(int(overlay.size()), kFrames);
  EXPECT_EQ(overlay[0].height, kHeight);
  EXPECT_EQ(overlay[0].width, kWidth);
}

// A camera-like source: a FIFO (no seeking, no length known in advance) fed by another process.
TEST_F(Video, LiveStreamFromAFifo) {
  const std::string clip = make_clip("clip.mkv", "ffv1");
  const std::string fifo = (dir_ / "live.mkv").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const auto r = infer("--frames " + fifo + " 2>&1 & cat " + clip + " > " + fifo + "; wait $!");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_MENTIONS(r.output, std::to_string(kFrames) + " frame(s) 64x128");
  EXPECT_EQ(decode_all((dir_ / "out" / "live_overlay.mp4").string()).size(), size_t(kFrames));
  EXPECT_TRUE(fs::exists(dir_ / "out" / "live" / "000005_labels.png"));
}

TEST_F(Video, TruncatedClipStopsAtTheLastGoodFrameWithAFinishedOutput) {
  const std::string clip = make_clip("cut.avi", "mjpeg");
  const auto size = fs::file_size(clip);
  fs::resize_file(clip, size * 6 / 10);  // cuts into frame 3 or so, and drops the index
  const auto r = infer(clip);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_MENTIONS(r.output, "frame ");
  EXPECT_MENTIONS(r.output, "last good frame is ");
  const std::vector<RgbFrame> done = decode_finished((dir_ / "out" / "cut_overlay.mp4").string());
  EXPECT_GE(done.size(), 1u);
  EXPECT_LT(int(done.size()), kFrames);
  EXPECT_MENTIONS(r.output, "the last good frame is " + std::to_string(done.size() - 1));
}

// Damaged bytes mid-file in an H.264 drive (P-frames: the decoder fails on them rather than
// conceal, AV_EF_EXPLODE; measured: a 400-byte pattern at 30%, 50%, 70% of this clip stops it at
// frames 2, 5, 8).
TEST_F(Video, CorruptClipStopsAtTheLastGoodFrameWithAFinishedOutput) {
  const std::string drive = (dir_ / "drive").string();
  const auto made =
      program("farsee-make-dataset", "--video 12 --size 64x128 --jobs 1 --out " + drive);
  ASSERT_EQ(made.exit_code, 0) << made.output;
  const std::string clip = (dir_ / "bad.mp4").string();
  std::vector<char> b = bytes_of(fs::path(drive) / "street.mp4");
  for (size_t i = b.size() / 2; i < b.size() / 2 + 400; ++i) b[i] = char(i * 7919 % 251);
  std::ofstream(clip, std::ios::binary).write(b.data(), b.size());
  const auto r = infer(clip);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_MENTIONS(r.output, "cannot be decoded");
  EXPECT_MENTIONS(r.output, "last good frame is ");
  const std::vector<RgbFrame> done = decode_finished((dir_ / "out" / "bad_overlay.mp4").string());
  ASSERT_GE(done.size(), 1u);
  EXPECT_LT(done.size(), 12u);
  EXPECT_MENTIONS(r.output, "frame " + std::to_string(done.size()) + ": ");
}

TEST_F(Video, EmptyAndNonVideoFilesAreClearErrors) {
  std::ofstream(dir_ / "empty.mp4").close();
  auto r = infer((dir_ / "empty.mp4").string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_MENTIONS(r.output, "is empty (0 bytes)");
  std::ofstream(dir_ / "notes.mp4") << "these are notes, not a video\n";
  r = infer((dir_ / "notes.mp4").string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_MENTIONS(r.output, "cannot be opened as a video");
  expect_no_output();
}

// An unknown codec, clashing output names and a missing camera.
TEST_F(Video, UnknownCodecAndMissingCameraAreClearErrors) {
  // An AVI whose codec tag names no codec FFmpeg knows.
  const std::string clip = make_clip("odd.avi", "mjpeg");
  std::vector<char> b = bytes_of(clip);
  for (size_t i = 0; i + 4 <= b.size(); ++i) {
    if (std::string(&b[i], 4) == "MJPG") std::copy_n("QQQQ", 4, &b[i]);
  }
  std::ofstream(clip, std::ios::binary | std::ios::trunc).write(b.data(), b.size());
  auto r = infer(clip);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_MENTIONS(r.output, "is not supported");
  r = infer((dir_ / "a" / "x.mp4").string() + " " + (dir_ / "b" / "x.mp4").string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_MENTIONS(r.output, "would both be written as");
  r = infer("--camera 99");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_MENTIONS(r.output, "camera '/dev/video99' not found");
  expect_no_output();
}

// farsee-make-dataset --video: a drive with per-frame ground truth, scored by farsee-infer
// --ground-truth (the paper preset's 19 classes, random weights: the number is meaningless, the
// plumbing is what is tested); frame 0 of a drive is the still scene of its seed.
TEST_F(Video, GeneratedDriveIsScoredOverItsFrames) {
  const std::string drive = (dir_ / "drive").string();
  auto r =
      program("farsee-make-dataset", "--video 3 --size 64x128 --seed 5 --jobs 1 --out " + drive);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* f :
       {"street.mp4", "gt/000000_gt_labelTrainIds.png", "gt/000002_gt_labelTrainIds.png"}) {
    EXPECT_TRUE(fs::exists(fs::path(drive) / f)) << f;
  }
  r = program("farsee-infer",
              "--preset paper --random-weights 1 --executor cpu --input-size "
              "64x128 --out " +
                  (dir_ / "out").string() + " " + drive + "/street.mp4 --ground-truth " + drive +
                  "/gt");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_MENTIONS(r.output, "mIoU ");
  EXPECT_MENTIONS(r.output, "over 3 frame(s)");
  // --max-frames and --frames: the first 2 frames only, each one's labels.
  r = program("farsee-infer",
              "--preset paper --random-weights 1 --executor cpu --input-size "
              "64x128 --max-frames 2 --frames --out " +
                  (dir_ / "out2").string() + " " + drive + "/street.mp4");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_MENTIONS(r.output, "2 frame(s) 64x128 at 30 fps");
  EXPECT_TRUE(fs::exists(dir_ / "out2" / "street" / "000001_labels.png"));
  EXPECT_FALSE(fs::exists(dir_ / "out2" / "street" / "000002_labels.png"));
  EXPECT_EQ(decode_all((dir_ / "out2" / "street_overlay.mp4").string()).size(), 2u);
  const SyntheticScene still = make_synthetic_scene(64, 128, 5);
  const SyntheticScene first = make_synthetic_drive_frame(64, 128, 5, 0);
  EXPECT_EQ(first.rgb, still.rgb);
  EXPECT_EQ(first.label_ids, still.label_ids);
  EXPECT_NE(make_synthetic_drive_frame(64, 128, 5, 3).rgb, still.rgb);  // the camera moved
}

// farsee-bench --video: the network alone and the pipeline, both printed.
TEST_F(Video, BenchMeasuresNetworkAndEndToEnd) {
  const std::string clip = make_clip("bench.avi", "ffv1");
  const std::string json = (dir_ / "bench.json").string();
  const auto r = program("farsee-bench", "--video " + clip +
                                             " --preset tiny-paper --executor reference --sizes "
                                             "64x128 --runs 3 --warmup 0 --json " +
                                             json);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_MENTIONS(r.output, "3 frames 64x128");
  EXPECT_MENTIONS(r.output, "network only");
  EXPECT_MENTIONS(r.output, "end to end");
  const auto doc = nlohmann::json::parse(std::ifstream(json));
  EXPECT_EQ(doc["mode"], "video");
  EXPECT_EQ(doc["frames"], 3);
  EXPECT_EQ(doc["input_size"], "64x128");
  EXPECT_EQ(doc["executor"], "reference");
  EXPECT_GT(doc["network_fps"].get<double>(), 0);
  EXPECT_GT(doc["end_to_end_fps"].get<double>(), 0);
}

// The overlay: half the frame, half the palette colour (as colorize_labels: black for labels
// outside the palette), rounded half up.
TEST(VideoOverlay, BlendsHalfAndHalf) {
  const std::vector<uint8_t> labels = {0, 13, 255};  // road, car, void
  const std::vector<uint8_t> rgb = {0, 255, 100, 7, 8, 9, 255, 255, 255};
  std::vector<uint8_t> out(9), expected(9);
  blend_overlay(rgb.data(), labels.data(), labels.size(), out.data());
  const std::vector<uint8_t> colour = colorize_labels(labels);
  for (size_t i = 0; i < 9; ++i) expected[i] = uint8_t((rgb[i] + colour[i] + 1) / 2);
  EXPECT_EQ(out, expected);
  EXPECT_EQ(out[0], 64);   // (0 + 128 + 1) / 2
  EXPECT_EQ(out[8], 128);  // (255 + 0 + 1) / 2
}

}  // namespace
