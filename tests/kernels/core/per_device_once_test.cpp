// PerDeviceOnce (kernels/core/per_device_once.h), the once-per-GPU guard of the conv kernels'
// shared-memory opt-in: a device attribute, so each device gets it once (kernels/emu has only
// device 0, so the per-device logic is tested here, on the host).
#include "kernels/core/per_device_once.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "kernels/core/check.h"

namespace farsee {
namespace {

TEST(PerDeviceOnce, OncePerDevice) {
  PerDeviceOnce once;
  std::vector<int> set_on;
  auto use = [&](int device) { once.call(device, [&] { set_on.push_back(device); }); };
  use(0);
  use(1);  // a second GPU in the process: set there too (a per-process flag skipped it)
  use(0);
  use(1);
  use(63);
  EXPECT_EQ(set_on, (std::vector<int>{0, 1, 63}));
}

TEST(PerDeviceOnce, DeviceOutsideTheTableIsAnError) {
  PerDeviceOnce once;
  int calls = 0;
  EXPECT_THROW(once.call(-1, [&] { ++calls; }), Error);
  EXPECT_THROW(once.call(PerDeviceOnce::kMaxDevices, [&] { ++calls; }), Error);
  EXPECT_EQ(calls, 0);
}

// A failed setup (e.g. cudaFuncSetAttribute returned an error) is not recorded: the next call
// tries again.
TEST(PerDeviceOnce, ThrowingSetupIsRetried) {
  PerDeviceOnce once;
  int calls = 0;
  EXPECT_THROW(once.call(2,
                         [&] {
                           ++calls;
                           throw std::runtime_error("setup failed");
                         }),
               std::runtime_error);
  once.call(2, [&] { ++calls; });
  once.call(2, [&] { ++calls; });
  EXPECT_EQ(calls, 2);
}

// Host threads launching on the same devices at once: each device's setup runs exactly once, and
// every caller returns only after it has run.
TEST(PerDeviceOnce, ThreadsRaceToOneSetupPerDevice) {
  PerDeviceOnce once;
  std::atomic<int> setups[4] = {};
  std::atomic<int> early{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        const int device = (t + i) % 4;
        once.call(device, [&] {
          std::this_thread::yield();
          setups[device].fetch_add(1);
        });
        if (setups[device].load() != 1) early.fetch_add(1);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (int d = 0; d < 4; ++d) EXPECT_EQ(setups[d].load(), 1) << "device " << d;
  EXPECT_EQ(early.load(), 0);
}

}  // namespace
}  // namespace farsee
