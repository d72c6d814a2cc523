// One-time setup per GPU. A kernel's function attributes (cudaFuncSetAttribute: the opt-in to more
// than 48 KiB of dynamic shared memory) belong to one device: a process that launches the kernel on
// a second GPU must set them there too, so a process-wide "done" flag is not enough.
//   static PerDeviceOnce opt_in;                      // one per kernel (variant)
//   opt_in.call(current_device(), [&] { FARSEE_SET_MAX_DYNAMIC_SMEM(kernel, bytes); });
// call(device, f) runs f the first time it is called for that device (0..63), exactly once when
// threads race; an f that throws is retried by the next call (as std::call_once). After the first
// call per device it costs one atomic load. A host helper: unit-tested without a GPU; under emu,
// which emulates several devices (kernels/emu/emu_control.h), the conv kernels' opt-in is tested on
// devices 0 and 1 (tests/kernels/conv_bn_act_devices_test.cpp).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

#include "kernels/core/check.h"
#if !defined(__CUDACC__)
#include "kernels/emu/emu_control.h"
#endif

namespace farsee {

class PerDeviceOnce {
 public:
  static constexpr int kMaxDevices = 64;  // one bit each

  template <typename F>
  void call(int device, F&& f) {
    FARSEE_REQUIRE(device >= 0 && device < kMaxDevices,
                   "PerDeviceOnce: device " << device << " outside [0, " << kMaxDevices << ")");
    const uint64_t bit = uint64_t(1) << device;
    if (done_.load(std::memory_order_acquire) & bit) return;
    std::lock_guard<std::mutex> lock(mutex_);
    if (done_.load(std::memory_order_relaxed) & bit) return;
    f();
    done_.fetch_or(bit, std::memory_order_release);
  }

 private:
  std::atomic<uint64_t> done_{0};
  std::mutex mutex_;
};

// The device the calling host thread launches on: the CUDA runtime's current device under nvcc;
// kernels/emu's emulated current device (emu::set_device) elsewhere.
inline int current_device() {
#if defined(__CUDACC__)
  int device = 0;
  FARSEE_CUDA_CHECK(cudaGetDevice(&device));
  return device;
#else
  return ::emu::current_device();
#endif
}

}  // namespace farsee
