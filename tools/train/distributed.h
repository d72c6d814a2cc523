// farsee-train's ranks (DESIGN.md section 10.2): MPI when an MPI launcher started this process
// (mpirun / srun set OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK), else a world of one that never
// touches MPI (a plain farsee-train, the in-process tests, a build without MPI).
//
// The MPI communicator: MPI_Init_thread (funneled: only the training thread calls MPI) and
// MPI_ERRORS_ARE_FATAL on MPI_COMM_WORLD (an MPI error ends the job); all-reduce as a reduce-
// scatter in rank order (MPI_Alltoallv, each rank sums its chunk in rank order) then an
// MPI_Allgatherv, so the result is bitwise the same on every rank and run to run; a watchdog thread
// that ends the job when a collective has not finished after `timeout_s` seconds (a rank died or
// hangs), printing this rank and the collective. The local rank comes from MPI_Comm_split_type
// (the ranks sharing this machine's memory).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "net/distributed.h"

namespace farsee::tools {

// The world size the launcher set (0: no MPI launcher).
int launcher_world_size();

class World {
 public:
  virtual ~World() = default;
  virtual net::Collective& comm() = 0;
  // The run's exit status, before the process ends: 0, 130 and 143 (every rank agreed to stop)
  // finalise MPI; any other status aborts the whole job (MPI_Abort) so no rank waits forever.
  virtual void close(int status) = 0;
  // Time in each kind of collective per step over `steps` steps ("" for a world of one): the
  // benchmark's all-reduce cost.
  virtual std::string collective_times(int64_t steps) const = 0;
};

// The ranks of this process's run. Throws when launched by an MPI launcher for more than one rank
// and this build has no MPI.
std::unique_ptr<World> open_world(double collective_timeout_s);

// Start-up check: the options, the training file list and this executable are the same on every
// rank (64-bit hashes all-gathered), else an error on every rank naming what differs.
void require_same_start(net::Collective& comm, const std::string& options_text,
                        const std::vector<std::string>& files);

}  // namespace farsee::tools
