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

#include <signal.h>

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

// Ctrl-C on `mpirun -np N farsee-train` (DESIGN.md section 10.2). OpenMPI's mpirun (4.1) handles a
// SIGINT itself: its exit status becomes 1 at once (never the ranks' status), the ranks get
// SIGCONT, SIGTERM 1 s later and SIGKILL 1 s after that (odls_base_sigkill_timeout), and it
// refuses to forward SIGINT (ess_base_forward_signals). The ranks sit in process groups of their
// own, so a terminal's Ctrl-C reaches mpirun alone. While held, this makes the process group of the
// rank on mpirun's terminal the terminal's foreground group: a Ctrl-C reaches that rank and not
// mpirun, the ranks agree to stop after the step (the signal check), rank 0 writes the checkpoint,
// all exit 130 and mpirun exits with their 130. Taken only by local rank 0 of a job that OpenMPI
// started, when it has mpirun's terminal, mpirun's group is the foreground and TOSTOP is off (a
// background mpirun could not print); else (one process, a batch job, remote machines) nothing.
// Ctrl-Z is ignored by that rank meanwhile (it would stop it alone). Construct after the SIGINT
// handler is installed; destroy (the terminal goes back to mpirun's group) before it is removed.
class TerminalHold {
 public:
  explicit TerminalHold(const net::Collective& comm);
  ~TerminalHold();
  TerminalHold(const TerminalHold&) = delete;
  TerminalHold& operator=(const TerminalHold&) = delete;

 private:
  int fd_ = -1;               // the controlling terminal while held
  pid_t launcher_group_ = 0;  // mpirun's process group: the foreground again afterwards
  struct sigaction old_tstp_ {};
};

// Start-up check: the options, the training file list and this executable are the same on every
// rank (64-bit hashes all-gathered), else an error on every rank naming what differs.
void require_same_start(net::Collective& comm, const std::string& options_text,
                        const std::vector<std::string>& files);

}  // namespace farsee::tools
