// The emulator's streams as a GPU orders them (kernels/emu/emu_stream.h): two streams are ordered
// only by an event, so a missing rt::stream_wait_event reads the other stream's results before
// they are written; and FARSEE_SYNC_LAUNCHES names a faulting kernel at its own launch (issue 26
// hazard 2), while without it the error surfaces later but still names that kernel, not the
// innocent one launched after it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/core/check.h"
#include "kernels/core/launch.h"
#include "kernels/core/runtime.h"
#include "kernels/emu/emu_stream.h"
#include "tests/kernels/emu/tiny_kernels.h"
#include "tests/support/error_of.h"

namespace {

using farsee::Context;
using farsee::Executor;
namespace rt = farsee::rt;

using namespace farsee::emu_test;

// The line of its launch goes to *line (the errors must name it).
void launch_faulting(const Context& ctx, float* x, int* line) {
  *line = __LINE__ + 1;
  FARSEE_LAUNCH(faulting_kernel, 1, kN, 0, ctx.stream, x);
}

// Every test runs asynchronously and leaves the environment's modes behind.
class EmuStreams : public EmuModeGuard {
 protected:
  void SetUp() override {
    EmuModeGuard::SetUp();
    emu::set_async(true);
  }
};

struct Stream {
  Context ctx{Executor::Emu, rt::stream_create(Executor::Emu)};
  ~Stream() { rt::stream_destroy(Executor::Emu, ctx.stream); }
};

struct Event {
  void* handle = rt::event_create(Executor::Emu);
  ~Event() { rt::event_destroy(Executor::Emu, handle); }
};

bool all_nan(const std::vector<float>& v) {
  for (float f : v)
    if (!std::isnan(f)) return false;
  return true;
}

TEST_F(EmuStreams, SyncLaunchesNamesTheFaultingKernelAtItsLaunch) {
  emu::set_sync_launches(true);
  Stream s;
  rt::Buffer x(Executor::Emu, kN * sizeof(float));
  int line = 0;
  const std::string e = error_of([&] { launch_faulting(s.ctx, x.as<float>(), &line); });
  EXPECT_NE(e.find("kernel 'faulting_kernel'"), std::string::npos) << e;
  EXPECT_NE(e.find("gpu_streams_test.cpp:" + std::to_string(line)), std::string::npos) << e;
  EXPECT_NE(e.find("while running (FARSEE_SYNC_LAUNCHES)"), std::string::npos) << e;
  EXPECT_NE(e.find("divergent __syncthreads"), std::string::npos) << e;
  // The next, innocent launch and the synchronisation are not blamed.
  EXPECT_NO_THROW(FARSEE_LAUNCH(add_kernel, 1, kN, 0, s.ctx.stream, x.as<float>(), 1.f));
  EXPECT_NO_THROW(rt::synchronize(s.ctx));
}

TEST_F(EmuStreams, WithoutSyncLaunchesTheLaterErrorStillNamesTheFaultingKernel) {
  emu::set_sync_launches(false);
  Stream s;
  rt::Buffer x(Executor::Emu, kN * sizeof(float));
  int line = 0;
  EXPECT_NO_THROW(launch_faulting(s.ctx, x.as<float>(), &line));
  EXPECT_NO_THROW(FARSEE_LAUNCH(add_kernel, 1, kN, 0, s.ctx.stream, x.as<float>(), 1.f));
  const std::string e = error_of([&] { rt::synchronize(s.ctx); });
  EXPECT_NE(e.find("kernel 'faulting_kernel'"), std::string::npos) << e;
  EXPECT_NE(e.find("gpu_streams_test.cpp:" + std::to_string(line)), std::string::npos) << e;
  EXPECT_NE(e.find("reported at a later synchronisation"), std::string::npos) << e;
  EXPECT_EQ(e.find("add_kernel"), std::string::npos) << "blames the innocent launch: " << e;
}

// Stream a uploads x and adds 1; stream b copies x to y. `wait`: b waits for a's event first.
struct ProducerConsumer {
  Stream a, b;
  Event event;
  rt::Buffer x{Executor::Emu, kN * sizeof(float)}, y{Executor::Emu, kN * sizeof(float)};
  std::vector<float> input = std::vector<float>(kN, 0.f);

  ProducerConsumer() {
    for (int i = 0; i < kN; ++i) input[i] = float(i);
  }
  void submit(bool wait) {
    std::memset(x.data(), 0xFF, x.bytes());  // fresh poison (every queue is empty here)
    std::memset(y.data(), 0xFF, y.bytes());
    rt::copy_to_device(a.ctx, x.data(), input.data(), x.bytes());
    FARSEE_LAUNCH(add_kernel, 1, kN, 0, a.ctx.stream, x.as<float>(), 1.f);
    if (wait) {
      rt::event_record(a.ctx, event.handle);
      rt::stream_wait_event(b.ctx, event.handle);
    }
    FARSEE_LAUNCH(copy_kernel, 1, kN, 0, b.ctx.stream, x.as<const float>(), y.as<float>());
  }
  std::vector<float> y_host() const {
    std::vector<float> out(kN);
    std::memcpy(out.data(), y.data(), y.bytes());
    return out;
  }
};

// With no event between the streams, b's work runs first: when b is synchronised alone, and when
// everything is (rt::free, stream destruction: the stream submitted to last runs first).
TEST_F(EmuStreams, MissingWaitBetweenStreamsReadsPoison) {
  ProducerConsumer p;
  p.submit(false);
  rt::synchronize(p.b.ctx);
  EXPECT_TRUE(all_nan(p.y_host())) << "b ran after a without a wait";
  rt::synchronize(p.a.ctx);
  p.submit(false);
  emu::flush_all();
  EXPECT_TRUE(all_nan(p.y_host())) << "flush_all ran the streams in submission order";
}

// The same work with rt::event_record on a and rt::stream_wait_event on b: right, whichever
// stream is synchronised, and in the synchronous mode too.
TEST_F(EmuStreams, EventWaitOrdersTheStreams) {
  ProducerConsumer p;
  for (int variant = 0; variant < 3; ++variant) {
    SCOPED_TRACE(variant);
    emu::set_async(variant < 2);
    p.submit(true);
    if (variant == 0) rt::synchronize(p.b.ctx);
    if (variant == 1) emu::flush_all();
    const std::vector<float> y = p.y_host();
    for (int i = 0; i < kN; ++i) ASSERT_EQ(y[i], p.input[i] + 1.f) << i;
    rt::synchronize(p.a.ctx);
  }
}

TEST_F(EmuStreams, EventsInsideACaptureAreNotEmulated) {
  Stream s;
  Event ev;
  rt::event_record(s.ctx, ev.handle);  // outside: fine
  rt::graph_begin_capture(s.ctx);
  EXPECT_NE(error_of([&] { rt::event_record(s.ctx, ev.handle); }).find("not emulated"),
            std::string::npos);
  EXPECT_NE(error_of([&] { rt::stream_wait_event(s.ctx, ev.handle); }).find("not emulated"),
            std::string::npos);
  rt::graph_destroy(rt::graph_end_capture(s.ctx));
}

}  // namespace
