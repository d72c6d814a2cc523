// Segmenter::submit / receive (net/api/segmenter.cpp, DESIGN.md section 14): frames in flight on
// two streams give, in order, bitwise the labels segment() gives for each frame alone. On emu (the
// CUDA kernels on the CPU, linked into the tests) with asynchronous streams, work queued on a
// stream runs only at a synchronisation, and work read from another stream without an event wait
// reads it unwritten (poison, or the slot's previous frame): the expected labels come from emu in
// synchronous mode (every op at once, where no wait can be missing). Tiny network and frames.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kernels/emu/emu_control.h"
#include "kernels/emu/emu_stream.h"
#include "net/api/farsee/farsee.h"
#include "tests/net/tiny_segmenter.h"
#include "tests/support/error_of.h"
#include "tests/support/mentions.h"

namespace {

farsee::SegmenterOptions tiny(const char* executor) {
  return farsee::test::tiny_segmenter(executor, 32, 64, 11);
}

// Four frames of different content and sizes, one with an output size of its own.
struct TestFrame {
  int h, w, out_h, out_w;
  std::vector<uint8_t> rgb;
};
std::vector<TestFrame> frames() {
  const int sizes[][4] = {{24, 40, 0, 0}, {30, 36, 0, 0}, {24, 40, 12, 20}, {28, 44, 0, 0}};
  std::vector<TestFrame> out;
  for (int k = 0; k < 4; ++k) {
    TestFrame f{sizes[k][0], sizes[k][1], sizes[k][2], sizes[k][3], {}};
    f.rgb.resize(size_t(f.h) * f.w * 3);
    for (size_t i = 0; i < f.rgb.size(); ++i)
      f.rgb[i] = uint8_t((i * (13 + 6 * k) + size_t(k) * 71 + (i / 90) * 29) % 256);
    out.push_back(std::move(f));
  }
  return out;
}

// The first differing index of two label maps, or -1.
int64_t first_difference(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (a[i] != b[i]) return int64_t(i);
  }
  return a.size() == b.size() ? -1 : int64_t(std::min(a.size(), b.size()));
}

class SegmenterPipeline : public ::testing::Test {
 protected:
  void SetUp() override {
    was_async_ = emu::async_enabled();
    // segment() per frame with every emu op run at once: what the pipeline must give.
    emu::set_async(false);
    farsee::Segmenter alone(tiny("emu"));
    for (const TestFrame& f : frames_)
      want_.push_back(alone.segment(f.rgb.data(), f.h, f.w, f.out_h, f.out_w));
    // The frames differ, so a frame that read another's input (or poison) would show.
    ASSERT_NE(first_difference(want_[0].data, want_[1].data), -1);
    ASSERT_NE(first_difference(want_[1].data, want_[3].data), -1);
    emu::set_async(true);
  }
  void TearDown() override { emu::set_async(was_async_); }

  // Submits frame k + 1 before receiving frame k, as the video pipeline does; `after_submit`
  // runs after each submit.
  template <typename F>
  void expect_pipelined(farsee::Segmenter& seg, F after_submit) {
    size_t received = 0;
    for (size_t k = 0; k <= frames_.size(); ++k) {
      if (k < frames_.size()) {
        const TestFrame& f = frames_[k];
        // A copy the test overwrites after submit: submit must not keep the caller's pointer.
        std::vector<uint8_t> rgb = f.rgb;
        seg.submit(rgb.data(), f.h, f.w, f.out_h, f.out_w);
        std::fill(rgb.begin(), rgb.end(), uint8_t(0));
        after_submit();
      }
      if (k == 0) continue;
      const farsee::LabelMap got = seg.receive();
      const farsee::LabelMap& want = want_[received];
      EXPECT_EQ(got.height, want.height) << "frame " << received;
      EXPECT_EQ(got.width, want.width) << "frame " << received;
      EXPECT_EQ(first_difference(got.data, want.data), -1) << "frame " << received;
      ++received;
    }
    EXPECT_EQ(received, frames_.size());
    EXPECT_EQ(seg.frames_in_flight(), 0);
  }

  std::vector<TestFrame> frames_ = frames();
  std::vector<farsee::LabelMap> want_;
  bool was_async_ = false;
};

// The copy stream reaches the labels download before the compute stream has run: without the
// download's wait on the network's event it reads the slot's labels unwritten.
TEST_F(SegmenterPipeline, FramesInOrderBitwiseSegment) {
  farsee::Segmenter seg(tiny("emu"));
  expect_pipelined(seg, [] {});
  // Nothing in flight: last_logits() is the last frame's, as after segment().
  const TestFrame& last = frames_.back();
  const std::vector<float> logits = seg.last_logits();
  emu::set_async(false);
  farsee::Segmenter alone(tiny("emu"));
  EXPECT_EQ(logits, alone.logits(last.rgb.data(), last.h, last.w));
}

// Every stream runs after each submit, the one that submitted last (compute) first, as a GPU may
// start the network before the upload: without the network's wait on the upload's event it reads
// the slot's input unwritten (poison, then the frame two before); and frame k + 1's forward has
// overwritten the net's labels before frame k's download, which must read the slot's copy.
// Removing each of the three orderings in segmenter.cpp fails one of these two tests (checked).
TEST_F(SegmenterPipeline, ComputeStreamRunsFirst) {
  farsee::Segmenter seg(tiny("emu"));
  expect_pipelined(seg, [] { emu::flush_all(); });
}

// The misuses are errors naming the call; the Segmenter stays usable after them.
TEST_F(SegmenterPipeline, MisuseIsAnError) {
  farsee::Segmenter seg(tiny("emu"));
  const TestFrame& f = frames_[0];
  EXPECT_MENTIONS(error_of([&] { seg.receive(); }), "receive: no frame is in flight");
  EXPECT_MENTIONS(error_of([&] { seg.submit(nullptr, f.h, f.w); }),
                  "submit: the image pointer is null");
  EXPECT_MENTIONS(error_of([&] { seg.submit(f.rgb.data(), f.h, f.w, 5, 0); }),
                  "submit: output size 5x0: give both sides");
  EXPECT_MENTIONS(error_of([&] { seg.submit(f.rgb.data(), 10000, 10000); }),
                  "submit: image 10000x10000 (100.0 megapixels) is above the limit");
  seg.submit(f.rgb.data(), f.h, f.w);
  seg.submit(f.rgb.data(), f.h, f.w);
  EXPECT_MENTIONS(error_of([&] { seg.submit(f.rgb.data(), f.h, f.w); }),
                  "submit: 2 frames are in flight, the most a Segmenter holds");
  EXPECT_MENTIONS(error_of([&] { seg.segment(f.rgb.data(), f.h, f.w); }),
                  "segment: 2 submitted frame(s) not received yet");
  EXPECT_MENTIONS(error_of([&] { seg.last_logits(); }),
                  "last_logits: 2 submitted frame(s) not received yet");
  EXPECT_EQ(first_difference(seg.receive().data, want_[0].data), -1);
  EXPECT_EQ(first_difference(seg.receive().data, want_[0].data), -1);
  EXPECT_EQ(first_difference(seg.segment(f.rgb.data(), f.h, f.w).data, want_[0].data), -1);
}

// cpu runs each frame within submit(): the same order and labels as its segment().
TEST(SegmenterPipelineCpu, SubmitReceiveEqualsSegment) {
  const std::vector<TestFrame> fs = frames();
  farsee::Segmenter alone(tiny("cpu")), seg(tiny("cpu"));
  seg.submit(fs[0].rgb.data(), fs[0].h, fs[0].w, fs[0].out_h, fs[0].out_w);
  for (size_t k = 0; k < fs.size(); ++k) {
    if (k + 1 < fs.size()) {
      const TestFrame& n = fs[k + 1];
      seg.submit(n.rgb.data(), n.h, n.w, n.out_h, n.out_w);
    }
    const farsee::LabelMap got = seg.receive();
    const farsee::LabelMap want =
        alone.segment(fs[k].rgb.data(), fs[k].h, fs[k].w, fs[k].out_h, fs[k].out_w);
    EXPECT_EQ(got.height, want.height);
    EXPECT_EQ(first_difference(got.data, want.data), -1) << "frame " << k;
  }
  EXPECT_MENTIONS(error_of([&] { seg.receive(); }), "receive: no frame is in flight");
}

}  // namespace
