// One atomic, durable file writer for everything FarSee writes (weights, checkpoints, images,
// arrays, JSON): the bytes go to a fresh temporary file next to the destination (mkstemp, so
// concurrent writers never share one), which is fsynced, renamed over the destination, and the
// folder fsynced so that the rename survives a crash. A reader never sees a half-written file, and
// on any failure the temporary file is removed and the previous file, if any, is left unchanged.
// Header-only (POSIX) so that every library can use it without a new link dependency.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/core/check.h"

namespace farsee {

// A piece of a file: `bytes` bytes at `data`.
struct ByteRange {
  const void* data;
  size_t bytes;
};

namespace atomic_file_detail {

inline std::string errno_text(int e) {
  return std::strerror(e);
}

// Writes every piece to `fd`; "" on success, else why it failed.
inline std::string write_all(int fd, const std::vector<ByteRange>& pieces) {
  size_t total = 0, done = 0;
  for (const ByteRange& piece : pieces) total += piece.bytes;
  for (const ByteRange& piece : pieces) {
    const auto* p = static_cast<const char*>(piece.data);
    size_t left = piece.bytes;
    while (left > 0) {
      const ssize_t n = ::write(fd, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        return "write failed after " + std::to_string(done) + " of " + std::to_string(total) +
               " bytes: " + (n < 0 ? errno_text(errno) : "no progress");
      }
      p += n;
      left -= size_t(n);
      done += size_t(n);
    }
  }
  return "";
}

// Makes a rename inside `path`'s folder durable. Best effort: some file systems refuse fsync on
// folders, and the file itself is already complete.
inline void sync_folder_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  const std::string folder = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace atomic_file_detail

// A file written piece by piece (a file too large to hold in memory: farsee-pack's packs), with
// the guarantees above: the pieces go to the temporary file, commit() fsyncs it and renames it
// over `path`; a writer destroyed without commit() (an error on the way) removes it, leaving the
// previous file unchanged. Errors throw farsee::Error as write_file_atomic's do.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(const std::string& path, const std::string& what = "file")
      : path_(path), what_(what), tmp_(path + ".tmp.XXXXXX") {
    fd_ = ::mkstemp(&tmp_[0]);
    FARSEE_REQUIRE(fd_ >= 0, "cannot write " << what_ << " '" << path_
                                             << "': cannot create a temporary file next to it: "
                                             << atomic_file_detail::errno_text(errno));
  }
  ~AtomicFileWriter() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  // Appends the pieces.
  void write(const std::vector<ByteRange>& pieces) {
    check(atomic_file_detail::write_all(fd_, pieces));
  }
  // Overwrites `bytes` bytes at `offset` (a header written last); the append position stays.
  void write_at(uint64_t offset, const void* data, size_t bytes) {
    const auto* p = static_cast<const char*>(data);
    while (bytes > 0) {
      const ssize_t n = ::pwrite(fd_, p, bytes, off_t(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        check("write at byte " + std::to_string(offset) +
              " failed: " + (n < 0 ? atomic_file_detail::errno_text(errno) : "no progress"));
      }
      p += n;
      bytes -= size_t(n);
      offset += uint64_t(n);
    }
  }
  // The file complete: mode 0644, fsynced, renamed over `path`, the folder fsynced.
  void commit() {
    using atomic_file_detail::errno_text;
    std::string failure;
    if (::fchmod(fd_, 0644) != 0) failure = "chmod failed: " + errno_text(errno);
    if (failure.empty() && ::fsync(fd_) != 0) failure = "fsync failed: " + errno_text(errno);
    if (::close(fd_) != 0 && failure.empty()) failure = "close failed: " + errno_text(errno);
    fd_ = -1;
    if (failure.empty() && std::rename(tmp_.c_str(), path_.c_str()) != 0) {
      failure = "rename of the temporary file failed: " + errno_text(errno);
    }
    check(failure);
    committed_ = true;
    atomic_file_detail::sync_folder_of(path_);
  }

 private:
  // Throws for a failure ("" : none); the destructor removes the temporary file.
  void check(const std::string& failure) const {
    FARSEE_REQUIRE(failure.empty(), "cannot write "
                                        << what_ << " '" << path_ << "': " << failure
                                        << " (the previous file, if any, is unchanged)");
  }
  std::string path_, what_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

// Writes the pieces one after another as the file `path`, atomically and durably (see above). The
// file gets mode 0644. Throws farsee::Error "cannot write <what> '<path>': <reason> (the previous
// file, if any, is unchanged)".
inline void write_file_atomic(const std::string& path, const std::vector<ByteRange>& pieces,
                              const std::string& what = "file") {
  AtomicFileWriter file(path, what);
  file.write(pieces);
  file.commit();
}

inline void write_file_atomic(const std::string& path, const void* data, size_t bytes,
                              const std::string& what = "file") {
  write_file_atomic(path, std::vector<ByteRange>{{data, bytes}}, what);
}

}  // namespace farsee
