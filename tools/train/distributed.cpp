#include "tools/train/distributed.h"

#include <fcntl.h>
#include <pthread.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "kernels/core/check.h"

#if FARSEE_HAVE_MPI
#include <mpi.h>
#endif

namespace farsee::tools {
namespace {

int env_int(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : 0;
}

// FNV-1a, 64 bits: a cheap fingerprint of bytes (not a security check).
uint64_t fnv1a(const char* data, size_t n, uint64_t h = 0xcbf29ce484222325ull) {
  for (size_t i = 0; i < n; ++i) h = (h ^ uint8_t(data[i])) * 0x100000001b3ull;
  return h;
}

uint64_t file_hash(const char* path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> buf(1 << 16);
  uint64_t h = 0xcbf29ce484222325ull;
  while (in.read(buf.data(), std::streamsize(buf.size())) || in.gcount() > 0) {
    h = fnv1a(buf.data(), size_t(in.gcount()), h);
  }
  return h;
}

// tcsetpgrp with SIGTTOU blocked in this thread: a background group may then take the terminal
// (else the kernel stops it with SIGTTOU).
bool set_foreground(int fd, pid_t group) {
  sigset_t ttou, old;
  sigemptyset(&ttou);
  sigaddset(&ttou, SIGTTOU);
  pthread_sigmask(SIG_BLOCK, &ttou, &old);
  const bool ok = ::tcsetpgrp(fd, group) == 0;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return ok;
}

// The controlling terminal when this rank may take it from mpirun (see TerminalHold), else -1.
int terminal_to_take(const net::Collective& comm, pid_t* launcher_group) {
  if (!std::getenv("OMPI_COMM_WORLD_SIZE") || comm.local_rank() != 0) return -1;
  const int fd = ::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return -1;  // no controlling terminal (a batch job, a rank on another machine)
  *launcher_group = ::getpgid(::getppid());
  termios t{};
  const bool ok = *launcher_group > 0 && ::tcgetpgrp(fd) == *launcher_group &&
                  ::getpgrp() != *launcher_group && ::tcgetattr(fd, &t) == 0 &&
                  (t.c_lflag & TOSTOP) == 0;
  if (!ok) ::close(fd);
  return ok ? fd : -1;
}

class SingleWorld final : public World {
 public:
  SingleWorld() : comm_(net::single_process_collective()) {}
  net::Collective& comm() override { return *comm_; }
  void close(int) override {}
  std::string collective_times(int64_t) const override { return ""; }

 private:
  std::unique_ptr<net::Collective> comm_;
};

#if FARSEE_HAVE_MPI

// Ends the job when one collective runs longer than the timeout (a dead or hung rank).
class Watchdog {
 public:
  Watchdog(int rank, double timeout_s) : rank_(rank), timeout_s_(timeout_s) {
    if (timeout_s_ > 0) thread_ = std::thread([this] { watch(); });
  }
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  void begin(const char* what) {
    std::lock_guard<std::mutex> lock(mutex_);
    what_ = what;
    since_ = std::chrono::steady_clock::now();
    busy_ = true;
  }
  void end() {
    std::lock_guard<std::mutex> lock(mutex_);
    busy_ = false;
  }

 private:
  void watch() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stop_) {
      cv_.wait_for(lock, std::chrono::milliseconds(200));
      if (!busy_) continue;
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - since_).count();
      if (s < timeout_s_) continue;
      std::fprintf(stderr,
                   "farsee-train: rank %d: the collective '%s' did not finish within %g s "
                   "(--collective-timeout): another rank died or hangs; ending the job\n",
                   rank_, what_, timeout_s_);
      std::fflush(stderr);
      std::_Exit(1);  // a rank that exits non-zero makes mpirun end every other rank
    }
  }
  const int rank_;
  const double timeout_s_;
  std::mutex mutex_;
  std::condition_variable cv_;
  const char* what_ = "";
  std::chrono::steady_clock::time_point since_;
  bool busy_ = false, stop_ = false;
  std::thread thread_;
};

template <typename T>
MPI_Datatype mpi_type();
template <>
MPI_Datatype mpi_type<float>() {
  return MPI_FLOAT;
}
template <>
MPI_Datatype mpi_type<double>() {
  return MPI_DOUBLE;
}
template <>
MPI_Datatype mpi_type<int64_t>() {
  return MPI_INT64_T;
}

class MpiCollective final : public net::Collective {
 public:
  // Seconds spent in each kind of collective (by `what`) and its number of calls.
  std::map<std::string, std::pair<double, int64_t>> times;

  MpiCollective(double timeout_s) {
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &local_rank_);
    MPI_Comm_free(&local);
    watchdog_ = std::make_unique<Watchdog>(rank_, timeout_s);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  void all_reduce_sum(float* d, int64_t n, const char* what) override { reduce(d, n, what); }
  void all_reduce_sum(double* d, int64_t n, const char* what) override { reduce(d, n, what); }
  void all_reduce_sum(int64_t* d, int64_t n, const char* what) override { reduce(d, n, what); }
  void broadcast(void* data, int64_t bytes, int root, const char* what) override {
    FARSEE_REQUIRE(bytes < (int64_t(1) << 31), "broadcast of " << bytes << " bytes");
    const Timed t(*this, what);
    MPI_Bcast(data, int(bytes), MPI_BYTE, root, MPI_COMM_WORLD);
  }
  std::vector<uint64_t> all_gather(uint64_t value, const char* what) override {
    std::vector<uint64_t> all(static_cast<size_t>(size_));
    const Timed t(*this, what);
    MPI_Allgather(&value, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD);
    return all;
  }

 private:
  // One collective's scope: watched by the watchdog, timed into `times`.
  struct Timed {
    Timed(MpiCollective& c, const char* what)
        : c_(c), what_(what), t0_(std::chrono::steady_clock::now()) {
      c_.watchdog_->begin(what);
    }
    ~Timed() {
      c_.watchdog_->end();
      auto& [seconds, calls] = c_.times[what_];
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
      ++calls;
    }
    MpiCollective& c_;
    const char* what_;
    std::chrono::steady_clock::time_point t0_;
  };
  // Reduce-scatter by rank order (rank r sums chunk r of every rank, ranks 0, 1, ... in turn),
  // then every chunk to every rank: the sum does not depend on timing or message sizes.
  template <typename T>
  void reduce(T* data, int64_t count, const char* what) {
    FARSEE_REQUIRE(count < (int64_t(1) << 31), "all-reduce of " << count << " elements");
    std::vector<int> counts(static_cast<size_t>(size_)), displs(static_cast<size_t>(size_));
    for (int r = 0; r < size_; ++r) {
      displs[r] = int(count * r / size_);
      counts[r] = int(count * (r + 1) / size_) - displs[r];
    }
    const int mine = counts[size_t(rank_)];
    std::vector<T> chunks(size_t(mine) * size_t(size_));
    std::vector<int> recv_counts(size_t(size_), mine), recv_displs(static_cast<size_t>(size_));
    for (int r = 0; r < size_; ++r) recv_displs[r] = r * mine;
    const Timed t(*this, what);
    MPI_Alltoallv(data, counts.data(), displs.data(), mpi_type<T>(), chunks.data(),
                  recv_counts.data(), recv_displs.data(), mpi_type<T>(), MPI_COMM_WORLD);
    std::vector<const T*> parts;
    for (int r = 0; r < size_; ++r) parts.push_back(chunks.data() + size_t(r) * size_t(mine));
    net::sum_in_rank_order(parts, mine, data + displs[size_t(rank_)]);
    MPI_Allgatherv(MPI_IN_PLACE, 0, mpi_type<T>(), data, counts.data(), displs.data(),
                   mpi_type<T>(), MPI_COMM_WORLD);
  }

  int rank_ = 0, size_ = 1, local_rank_ = 0;
  std::unique_ptr<Watchdog> watchdog_;
};

class MpiWorld final : public World {
 public:
  explicit MpiWorld(double timeout_s) {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    comm_ = std::make_unique<MpiCollective>(timeout_s);
  }
  ~MpiWorld() override {
    if (!closed_) close(1);
  }
  net::Collective& comm() override { return *comm_; }
  std::string collective_times(int64_t steps) const override {
    std::string text;
    if (!comm_ || steps <= 0) return text;
    for (const auto& [what, t] : comm_->times) {
      char line[160];
      std::snprintf(line, sizeof(line), "%s%s %.3f ms/step (%.1f calls)", text.empty() ? "" : ", ",
                    what.c_str(), 1e3 * t.first / double(steps), double(t.second) / double(steps));
      text += line;
    }
    return text;
  }
  void close(int status) override {
    closed_ = true;
    const bool agreed = status == 0 || status == 130 || status == 143;
    if (status == 130 || status == 143) {
      // No rank exits before rank 0 has written the signal's checkpoint: mpirun ends the job
      // when the first rank exits non-zero (SIGTERM, then SIGKILL 1 s later).
      int64_t none = 0;
      comm_->all_reduce_sum(&none, 1, "exit");
    }
    comm_.reset();  // stops the watchdog
    if (!agreed) MPI_Abort(MPI_COMM_WORLD, status);
    MPI_Finalize();
  }

 private:
  std::unique_ptr<MpiCollective> comm_;
  bool closed_ = false;
};

#endif

}  // namespace

int launcher_world_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"}) {
    if (const int n = env_int(name)) return n;
  }
  return 0;
}

std::unique_ptr<World> open_world(double collective_timeout_s) {
  const int launched = launcher_world_size();
  if (launched == 0) return std::make_unique<SingleWorld>();
#if FARSEE_HAVE_MPI
  return std::make_unique<MpiWorld>(collective_timeout_s);
#else
  (void)collective_timeout_s;
  FARSEE_REQUIRE(launched == 1, "farsee-train was started by an MPI launcher for "
                                    << launched
                                    << " ranks, but this build has no MPI: install openmpi-bin "
                                       "libopenmpi-dev and rebuild (FARSEE_REQUIRE_MPI=ON)");
  return std::make_unique<SingleWorld>();
#endif
}

TerminalHold::TerminalHold(const net::Collective& comm) {
  const int fd = terminal_to_take(comm, &launcher_group_);
  if (fd < 0) return;
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  sigaction(SIGTSTP, &ignore, &old_tstp_);
  if (!set_foreground(fd, ::getpgrp())) {
    sigaction(SIGTSTP, &old_tstp_, nullptr);
    ::close(fd);
    return;
  }
  fd_ = fd;
  std::fprintf(stderr,
               "farsee-train: rank %d has mpirun's terminal: Ctrl-C stops every rank after the "
               "current step, rank 0 writes one checkpoint and mpirun exits 130\n",
               comm.rank());
  std::fflush(stderr);
}

TerminalHold::~TerminalHold() {
  if (fd_ < 0) return;
  if (::tcgetpgrp(fd_) == ::getpgrp()) set_foreground(fd_, launcher_group_);
  sigaction(SIGTSTP, &old_tstp_, nullptr);
  ::close(fd_);
}

void require_same_start(net::Collective& comm, const std::string& options_text,
                        const std::vector<std::string>& files) {
  if (comm.size() == 1) return;
  net::require_same_on_every_rank(comm, fnv1a(options_text.data(), options_text.size()),
                                  "options (flags, --config, checkpoint)");
  uint64_t h = 0xcbf29ce484222325ull;
  for (const std::string& f : files) h = fnv1a(f.data(), f.size() + 1, h);  // with the NUL
  net::require_same_on_every_rank(comm, h, "training file lists");
  net::require_same_on_every_rank(comm, file_hash("/proc/self/exe"), "farsee-train binaries");
}

}  // namespace farsee::tools
