// The emulator behaving like a GPU (kernels/emu/emu_stream.h): poisoned fresh memory, asynchronous
// streams (work runs at the next synchronisation, in stream order; host buffers of queued copies
// are checked), graph capture with CUDA's rules, and errors of queued kernels reported at the
// synchronisation with the kernel's name.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/core/check.h"
#include "kernels/core/launch.h"
#include "kernels/core/runtime.h"
#include "tests/kernels/emu/tiny_kernels.h"
#include "tests/support/error_of.h"

namespace {

using farsee::Context;
using farsee::Executor;
namespace rt = farsee::rt;

using namespace farsee::emu_test;

__global__ void scale_kernel(float* x, float v) {
  x[threadIdx.x] *= v;
}
__global__ void axpb_kernel(const float* x, float* y, float a, float b, int n) {
  if (int(threadIdx.x) < n) y[threadIdx.x] = a * x[threadIdx.x] + b;
}
__global__ void never_launched_kernel(float* x) {
  x[threadIdx.x] = 0.f;
}
__global__ void smem_kernel(float* x) {
  x[threadIdx.x] = 0.f;
}

// Every test starts in the mode under test and leaves the environment's mode behind.
class EmuModes : public EmuModeGuard {};

std::vector<float> iota(float start) {
  std::vector<float> v(kN);
  for (int i = 0; i < kN; ++i) v[i] = start + float(i);
  return v;
}

TEST_F(EmuModes, FreshMemoryReadsAsNaN) {
  for (bool async : {false, true}) {
    emu::set_async(async);
    Context ctx{Executor::Emu, nullptr};
    rt::Buffer in(Executor::Emu, kN * sizeof(float)), out(Executor::Emu, kN * sizeof(float));
    FARSEE_LAUNCH(copy_kernel, 1, kN, 0, ctx.stream, in.as<float>(), out.as<float>());
    std::vector<float> host(kN, 0.f);
    rt::copy_to_host(ctx, host.data(), out.data(), out.bytes());
    for (float v : host) ASSERT_TRUE(std::isnan(v)) << "async " << async;
  }
}

TEST_F(EmuModes, AsyncWorkRunsAtSynchronisationInStreamOrder) {
  emu::set_async(true);
  Context ctx{Executor::Emu, rt::stream_create(Executor::Emu)};
  rt::Buffer x(Executor::Emu, kN * sizeof(float));
  std::vector<float> host = iota(1.f);
  rt::copy_to_device(ctx, x.data(), host.data(), x.bytes());
  FARSEE_LAUNCH(add_kernel, 1, kN, 0, ctx.stream, x.as<float>(), 2.f);
  FARSEE_LAUNCH(scale_kernel, 1, kN, 0, ctx.stream, x.as<float>(), 3.f);
  // Nothing has run yet: the memory still holds the poison.
  EXPECT_TRUE(std::isnan(x.as<float>()[0]));
  std::vector<float> out(kN);
  rt::copy_to_host(ctx, out.data(), x.data(), x.bytes());
  for (int i = 0; i < kN; ++i) ASSERT_EQ(out[i], (host[i] + 2.f) * 3.f) << i;  // not x*3+2
  rt::stream_destroy(Executor::Emu, ctx.stream);
}

TEST_F(EmuModes, AsyncCopyOfAHostBufferChangedBeforeItRanIsAnError) {
  emu::set_async(true);
  Context ctx{Executor::Emu, nullptr};
  rt::Buffer x(Executor::Emu, kN * sizeof(float));
  std::vector<float> host = iota(0.f);
  rt::copy_to_device(ctx, x.data(), host.data(), x.bytes());
  host[5] = -1.f;  // too early: the copy has not run
  const std::string e = error_of([&] { rt::synchronize(ctx); });
  EXPECT_NE(e.find("rt::copy_to_device of 256 bytes"), std::string::npos) << e;
  EXPECT_NE(e.find("gpu_modes_test.cpp"), std::string::npos) << "names the call site: " << e;
  EXPECT_NE(e.find("freed or changed"), std::string::npos) << e;
  // Unchanged until the synchronisation: fine.
  rt::copy_to_device(ctx, x.data(), host.data(), x.bytes());
  EXPECT_NO_THROW(rt::synchronize(ctx));
}

// Under ASan the read of the freed buffer is ASan's report (CI's sanitized stage), not an error.
#if !defined(__SANITIZE_ADDRESS__)
TEST_F(EmuModes, AsyncCopyOfAFreedHostBufferIsAnErrorNotACrash) {
  emu::set_async(true);
  Context ctx{Executor::Emu, nullptr};
  const size_t n = 1 << 20;  // large enough for malloc to unmap it when freed
  rt::Buffer x(Executor::Emu, n * sizeof(float));
  {
    std::vector<float> host(n, 1.f);
    rt::copy_to_device(ctx, x.data(), host.data(), x.bytes());
  }
  const std::string e = error_of([&] { rt::synchronize(ctx); });
  EXPECT_NE(e.find("freed or changed"), std::string::npos) << e;
}
#endif

TEST_F(EmuModes, ErrorOfAQueuedKernelSurfacesAtSynchronisationWithItsName) {
  emu::set_async(true);
  Context ctx{Executor::Emu, nullptr};
  rt::Buffer x(Executor::Emu, kN * sizeof(float));
  EXPECT_NO_THROW(FARSEE_LAUNCH(faulting_kernel, 1, kN, 0, ctx.stream, x.as<float>()));
  FARSEE_LAUNCH(add_kernel, 1, kN, 0, ctx.stream, x.as<float>(), 1.f);
  const std::string e = error_of([&] { rt::synchronize(ctx); });
  EXPECT_NE(e.find("faulting_kernel"), std::string::npos) << e;
  EXPECT_NE(e.find("gpu_modes_test.cpp"), std::string::npos) << e;
  EXPECT_NE(e.find("divergent __syncthreads"), std::string::npos) << e;
  EXPECT_NE(e.find("1 later operation(s) discarded"), std::string::npos) << e;
  EXPECT_NO_THROW(rt::synchronize(ctx)) << "reported once";
}

TEST_F(EmuModes, SynchronousModeStillThrowsAtTheLaunch) {
  emu::set_async(false);
  rt::Buffer x(Executor::Emu, kN * sizeof(float));
  const std::string e =
      error_of([&] { FARSEE_LAUNCH(faulting_kernel, 1, kN, 0, nullptr, x.as<float>()); });
  EXPECT_NE(e.find("faulting_kernel"), std::string::npos) << e;
}

// ---- graph capture ----

struct Capture {
  Context ctx{Executor::Emu, rt::stream_create(Executor::Emu)};
  ~Capture() { rt::stream_destroy(Executor::Emu, ctx.stream); }
};

// `call` inside a capture throws naming `name`; ending the capture then fails too.
template <typename F>
void expect_forbidden_in_capture(const std::string& name, F&& call) {
  Capture c;
  rt::graph_begin_capture(c.ctx);
  const std::string e = error_of([&] { call(c.ctx); });
  EXPECT_NE(e.find(name), std::string::npos) << e;
  EXPECT_NE(e.find("inside a graph capture"), std::string::npos) << e;
  const std::string end = error_of([&] { rt::graph_destroy(rt::graph_end_capture(c.ctx)); });
  EXPECT_NE(end.find("invalidated by " + name), std::string::npos) << end;
}

TEST_F(EmuModes, ForbiddenCallsInsideCaptureThrowNamingTheCall) {
  rt::Buffer x(Executor::Emu, kN * sizeof(float));
  float host[kN];
  expect_forbidden_in_capture("rt::alloc", [](const Context&) { rt::Buffer b(Executor::Emu, 16); });
  expect_forbidden_in_capture("rt::copy_to_host", [&](const Context& ctx) {
    rt::copy_to_host(ctx, host, x.data(), x.bytes());
  });
  expect_forbidden_in_capture("rt::synchronize", [](const Context& ctx) { rt::synchronize(ctx); });
  expect_forbidden_in_capture("FARSEE_SET_MAX_DYNAMIC_SMEM", [](const Context&) {
    FARSEE_SET_MAX_DYNAMIC_SMEM(smem_kernel, 64 * 1024);
  });
  expect_forbidden_in_capture(
      "the first launch of kernel 'never_launched_kernel'", [&](const Context& ctx) {
        FARSEE_LAUNCH(never_launched_kernel, 1, kN, 0, ctx.stream, x.as<float>());
      });
}

TEST_F(EmuModes, FreeInsideCaptureInvalidatesIt) {
  Capture c;
  void* p = rt::alloc(Executor::Emu, 64);
  rt::graph_begin_capture(c.ctx);
  rt::free(Executor::Emu, p);  // noexcept: reported by graph_end_capture
  const std::string e = error_of([&] { rt::graph_destroy(rt::graph_end_capture(c.ctx)); });
  EXPECT_NE(e.find("invalidated by rt::free"), std::string::npos) << e;
}

TEST_F(EmuModes, KernelLaunchedBeforeMayBeCapturedAndTheDefaultStreamCannot) {
  rt::Buffer x(Executor::Emu, kN * sizeof(float));
  FARSEE_LAUNCH(add_kernel, 1, kN, 0, nullptr, x.as<float>(), 1.f);
  Capture c;
  rt::graph_begin_capture(c.ctx);
  EXPECT_NO_THROW(FARSEE_LAUNCH(add_kernel, 1, kN, 0, c.ctx.stream, x.as<float>(), 1.f));
  void* g = rt::graph_end_capture(c.ctx);
  EXPECT_EQ(emu::graph_ops(g).size(), 1u);
  rt::graph_destroy(g);
  emu::forget_launched_kernels();  // as in a fresh process: add_kernel is not loaded yet
  rt::graph_begin_capture(c.ctx);
  const std::string e =
      error_of([&] { FARSEE_LAUNCH(add_kernel, 1, kN, 0, c.ctx.stream, x.as<float>(), 1.f); });
  EXPECT_NE(e.find("first launch of kernel 'add_kernel'"), std::string::npos) << e;
  EXPECT_THROW(rt::graph_end_capture(c.ctx), farsee::Error);
  Context default_stream{Executor::Emu, nullptr};
  EXPECT_NE(error_of([&] { rt::graph_begin_capture(default_stream); }).find("default stream"),
            std::string::npos);
}

void check_replay(bool async) {
  emu::set_async(async);
  Capture c;
  rt::Buffer x(Executor::Emu, kN * sizeof(float)), y(Executor::Emu, kN * sizeof(float));
  std::vector<float> input = iota(0.f), out(kN);
  float a = 2.f, b = 1.f;
  // Warm-up outside the capture (lazy loading), as a GPU program must.
  FARSEE_LAUNCH(axpb_kernel, 1, kN, 0, c.ctx.stream, x.as<float>(), y.as<float>(), a, b, kN);
  const emu::GraphCounters before = emu::graph_counters();
  rt::graph_begin_capture(c.ctx);
  rt::copy_to_device(c.ctx, x.data(), input.data(), x.bytes());
  FARSEE_LAUNCH(axpb_kernel, 1, kN, 0, c.ctx.stream, x.as<float>(), y.as<float>(), a, b, kN);
  void* g = rt::graph_end_capture(c.ctx);
  // Recorded, not run: y holds the warm-up's output of poisoned x.
  EXPECT_TRUE(std::isnan(y.as<float>()[3])) << "async " << async;
  const std::vector<emu::RecordedOp> ops = emu::graph_ops(g);
  ASSERT_EQ(ops.size(), 2u);
  EXPECT_EQ(ops[0].kind, emu::OpKind::CopyToDevice);
  EXPECT_EQ(ops[1].kind, emu::OpKind::Launch);
  EXPECT_EQ(ops[1].name, "axpb_kernel");
  EXPECT_EQ(ops[1].args, 5);
  EXPECT_EQ(ops[1].scalar_args, 3);
  a = 10.f;  // the capture baked a = 2
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < kN; ++i) input[i] = float(i * (round + 1));  // new input data
    rt::graph_launch(c.ctx, g);
    rt::copy_to_host(c.ctx, out.data(), y.data(), y.bytes());
    for (int i = 0; i < kN; ++i) ASSERT_EQ(out[i], 2.f * input[i] + 1.f) << round << " " << i;
  }
  const emu::GraphCounters after = emu::graph_counters();
  EXPECT_EQ(after.instantiated - before.instantiated, 1);
  EXPECT_EQ(after.launched - before.launched, 2);
  rt::graph_destroy(g);
  EXPECT_EQ(emu::graph_counters().alive, before.alive);
}

TEST_F(EmuModes, CapturedGraphReplaysWithNewInputsAndBakedScalars) {
  check_replay(false);
  check_replay(true);
}

}  // namespace
