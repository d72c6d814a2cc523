#include "tests/support/executors.h"

#include <cstdlib>

namespace farsee::test {

std::string exec_case_name(const ExecCase& c) {
  switch (c.executor) {
    case Executor::Cuda:
      return "cuda";
    case Executor::Reference:
      return "reference";
    case Executor::Cpu:
      return "cpu";
    case Executor::Emu: {
      std::string s = std::string("emu_") + emu::schedule_name(c.schedule);
      for (auto& ch : s)
        if (ch == '-') ch = '_';
      return s;
    }
  }
  return "unknown";
}

std::vector<ExecCase> kernel_exec_cases() {
  return {{Executor::Cpu, emu::Schedule::RoundRobin},
          {Executor::Emu, emu::Schedule::GreedyForward},
          {Executor::Emu, emu::Schedule::GreedyReverse},
          {Executor::Cuda, emu::Schedule::RoundRobin}};
}

std::vector<ExecCase> all_exec_cases() {
  auto v = kernel_exec_cases();
  v.insert(v.begin(), ExecCase{Executor::Reference, emu::Schedule::RoundRobin});
  return v;
}

std::string prepare_exec_case(const ExecCase& c) {
  if (c.executor == Executor::Cuda) {
    std::string why = cuda_unavailable_reason();
    return why.empty() ? "" : "GPU test skipped: " + why;
  }
  if (c.executor == Executor::Emu) emu::set_schedule(c.schedule, 1);
  return "";
}

bool gpu_required() {
  const char* v = std::getenv("FARSEE_REQUIRE_GPU");
  return v != nullptr && std::string(v) == "1";
}

rt::Buffer poisoned_buffer(const Context& ctx, size_t bytes) {
  rt::Buffer b(ctx.executor, bytes);
  rt::memset(ctx, b.data(), 0xFF, bytes);
  return b;
}

std::vector<float> random_floats(size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

std::vector<float> small_ints(size_t n, uint32_t seed, int lo, int hi) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = float(d(rng));
  return v;
}

std::vector<uint16_t> to_half_bits(const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = float_to_half_bits(v[i]);
  return h;
}

std::vector<float> from_half_bits(const std::vector<uint16_t>& v) {
  std::vector<float> f(v.size());
  for (size_t i = 0; i < v.size(); ++i) f[i] = half_bits_to_float(v[i]);
  return f;
}

std::vector<float> round_to_half(std::vector<float> v) {
  for (auto& x : v) x = farsee::round_to_half(x);
  return v;
}

}  // namespace farsee::test
