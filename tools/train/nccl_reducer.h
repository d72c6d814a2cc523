// The cuda executor's gradient all-reduce for data parallelism (DESIGN.md section 10.2): one NCCL
// communicator over the MPI ranks (rank 0's ncclUniqueId broadcast over MPI, llm.c's way), one
// ncclAllReduce (sum, fp32) of the whole gradient arena per step on the trainer's stream, in a
// fixed order for a fixed world size. A failed or stuck collective (NCCL's asynchronous error, or
// no completion within the timeout) aborts the communicator and ends the job naming this rank.
// Built only with CUDA, MPI and NCCL (nccl.h and libnccl from the CUDA toolkit); this header has
// no CUDA or NCCL types, so farsee-train's loop includes it in every build.
#pragma once

#include <cstdint>
#include <memory>

#include "net/distributed.h"

namespace farsee::tools {

// One GPU per rank on a machine: cudaSetDevice(local rank modulo the visible GPUs).
void select_local_gpu(int local_rank);

class NcclReducer {
 public:
  // Collective over every rank of `comm` (rank 0 makes the unique id); timeout_s as
  // --collective-timeout.
  NcclReducer(net::Collective& comm, double timeout_s);
  ~NcclReducer();
  NcclReducer(const NcclReducer&) = delete;
  NcclReducer& operator=(const NcclReducer&) = delete;
  // In place over `count` fp32 values in device memory, on `stream` (a cudaStream_t); returns
  // once the sum has landed.
  void all_reduce_sum(float* device_data, int64_t count, void* stream);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace farsee::tools
