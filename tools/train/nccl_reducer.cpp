#include "tools/train/nccl_reducer.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "kernels/core/check.h"

namespace farsee::tools {
namespace {

void check_nccl(ncclResult_t r, const char* what) {
  FARSEE_REQUIRE(r == ncclSuccess, "NCCL: " << what << ": " << ncclGetErrorString(r));
}

}  // namespace

void select_local_gpu(int local_rank) {
  int count = 0;
  FARSEE_REQUIRE(cudaGetDeviceCount(&count) == cudaSuccess && count > 0,
                 "data parallelism on cuda: no usable GPU for local rank " << local_rank);
  FARSEE_REQUIRE(cudaSetDevice(local_rank % count) == cudaSuccess,
                 "cudaSetDevice(" << local_rank % count << ") failed");
}

struct NcclReducer::Impl {
  ncclComm_t comm = nullptr;
  int rank = 0;
  double timeout_s = 60;
};

NcclReducer::NcclReducer(net::Collective& comm, double timeout_s) : impl_(new Impl) {
  impl_->rank = comm.rank();
  impl_->timeout_s = timeout_s;
  ncclUniqueId id;
  if (comm.rank() == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  comm.broadcast(&id, int64_t(sizeof(id)), 0, "NCCL unique id");
  check_nccl(ncclCommInitRank(&impl_->comm, comm.size(), id, comm.rank()), "ncclCommInitRank");
}

NcclReducer::~NcclReducer() {
  if (impl_ && impl_->comm) ncclCommDestroy(impl_->comm);
}

// Waits for the stream while polling NCCL's asynchronous error; a failure or the timeout aborts
// the communicator and ends the job (mpirun then ends the other ranks).
void NcclReducer::all_reduce_sum(float* data, int64_t count, void* stream) {
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  check_nccl(ncclAllReduce(data, data, size_t(count), ncclFloat32, ncclSum, impl_->comm, s),
             "ncclAllReduce of the gradients");
  const auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    const cudaError_t done = cudaStreamQuery(s);
    if (done == cudaSuccess) return;
    FARSEE_REQUIRE(done == cudaErrorNotReady, "gradient all-reduce: " << cudaGetErrorString(done));
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError(impl_->comm, &async);
    const double s_waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (async != ncclSuccess || s_waited > impl_->timeout_s) {
      std::fprintf(stderr,
                   "farsee-train: rank %d: the NCCL gradient all-reduce %s; ending the job\n",
                   impl_->rank,
                   async != ncclSuccess ? ncclGetErrorString(async)
                                        : "did not finish within --collective-timeout");
      std::fflush(stderr);
      ncclCommAbort(impl_->comm);
      std::_Exit(1);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

}  // namespace farsee::tools
