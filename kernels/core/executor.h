// Which implementation runs an op (DESIGN.md section 3):
//   cuda      our kernels on a GPU (device pointers),
//   emu       the same kernel source run on the CPU by kernels/emu (host pointers; tests),
//   reference plain C++ loops (host pointers; the oracle: double sums, slow),
//   cpu       fast fp32 host code (kernels/cpu/: OpenBLAS SGEMM convs, fused epilogues;
//             host pointers, the same memory and weight layout as reference).
// A Context carries the executor and, for cuda, the stream every launch goes to.
#pragma once

#include <string>

namespace farsee {

enum class Executor { Cuda, Emu, Reference, Cpu };

// True for the executors whose memory is host memory and whose weights are packed like the
// reference's (reference, cpu).
inline bool is_host_reference_layout(Executor e) {
  return e == Executor::Reference || e == Executor::Cpu;
}

const char* executor_name(Executor e);
// Parses "cuda", "emu", "reference" or "cpu"; throws farsee::Error naming `what` otherwise.
Executor parse_executor(const std::string& s, const char* what = "executor");

struct Context {
  Executor executor = Executor::Reference;
  void* stream = nullptr;  // cudaStream_t for Executor::Cuda; unused elsewhere
};

// True when this build contains the CUDA kernels (nvcc was found at configure time).
bool built_with_cuda();
// Number of usable CUDA devices; 0 without a driver or GPU, or in a build without CUDA. Never
// throws.
int cuda_device_count();
// Why no GPU can be used ("" when one can): for test skip messages and --executor auto.
std::string cuda_unavailable_reason();

}  // namespace farsee
