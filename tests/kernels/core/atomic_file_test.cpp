// kernels/core/atomic_file.h: the one atomic file writer (weights, checkpoints, images, arrays,
// JSON; streamed: packs). A write replaces the file whole with mode 0644 and leaves no temporary
// behind; a failed write (no such folder, the destination a folder) names the path and the reason,
// leaves the previous file unchanged and removes its temporary.
#include "kernels/core/atomic_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tests/support/error_of.h"
#include "tests/support/mentions.h"
#include "tests/support/temp_dir.h"

namespace farsee {
namespace {

namespace fs = std::filesystem;

class AtomicFile : public test::TempDirTest {
 protected:
  static std::string contents(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
};

TEST_F(AtomicFile, WritesThePiecesInOrderAndReplacesTheFileWhole) {
  const std::string path = file("a.bin");
  write_file_atomic(path, "old contents, longer than the new", 33);
  const std::string header = "head:", payload = "payload";
  write_file_atomic(path, {{header.data(), header.size()}, {payload.data(), payload.size()}});
  EXPECT_EQ(contents(path), "head:payload");
  EXPECT_EQ(listing(), std::vector<std::string>{"a.bin"});  // no temporary left
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
}

TEST_F(AtomicFile, EmptyFile) {
  write_file_atomic(file("empty"), std::vector<ByteRange>{});
  EXPECT_TRUE(fs::is_regular_file(file("empty")));
  EXPECT_EQ(fs::file_size(file("empty")), 0u);
}

TEST_F(AtomicFile, MissingFolderNamesThePathAndWhat) {
  const std::string path = file("no/such/folder/x.json");
  const std::string message = error_of([&] { write_file_atomic(path, "{}", 2, "JSON report"); });
  EXPECT_MENTIONS(message, "cannot write JSON report '" + path + "'");
  EXPECT_MENTIONS(message, "temporary file");
}

TEST_F(AtomicFile, FailedRenameKeepsTheDestinationAndRemovesTheTemporary) {
  const std::string path = file("taken");
  fs::create_directory(path);  // rename(file, folder) fails
  const std::string message = error_of([&] { write_file_atomic(path, "x", 1); });
  EXPECT_MENTIONS(message, "cannot write file '" + path + "'");
  EXPECT_MENTIONS(message, "rename");
  EXPECT_MENTIONS(message, "the previous file, if any, is unchanged");
  EXPECT_TRUE(fs::is_directory(path));
  EXPECT_EQ(listing(), std::vector<std::string>{"taken"});
}

// The streaming writer (farsee-pack's packs): appends, an overwrite at an offset, nothing at the
// path before commit(), and no temporary left when it is dropped without commit().
TEST_F(AtomicFile, StreamingWriterCommitsWholeOrNothing) {
  const std::string path = file("s.bin");
  write_file_atomic(path, "previous", 8);
  {
    AtomicFileWriter w(path, "pack");
    w.write({{"0123", 4}, {"4567", 4}});
    w.write_at(2, "ab", 2);
    EXPECT_EQ(contents(path), "previous");  // not yet
    w.commit();
  }
  EXPECT_EQ(contents(path), "01ab4567");
  {
    AtomicFileWriter w(path);
    w.write({{"xyz", 3}});
  }  // dropped: an error on the way
  EXPECT_EQ(contents(path), "01ab4567");
  EXPECT_EQ(listing(), std::vector<std::string>{"s.bin"});
}

}  // namespace
}  // namespace farsee
