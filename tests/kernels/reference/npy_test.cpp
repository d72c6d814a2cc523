// The .npy reader (tests/kernels/reference/npy.h): reads what numpy writes (the committed
// fixtures), and rejects every malformed file with a farsee::Error naming the file.
#include "tests/kernels/reference/npy.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "tests/kernels/reference/test_util.h"

namespace farsee::test {
namespace {

// A .npy version 1.0 file with `header` (padded with spaces and a newline to a multiple of 64
// bytes, as numpy does) followed by `data_bytes` bytes.
std::string npy_bytes(const std::string& header, size_t data_bytes, int version = 1) {
  std::string h = header;
  const size_t prefix = version == 1 ? 10 : 12;
  while ((prefix + h.size() + 1) % 64 != 0) h += ' ';
  h += '\n';
  std::string file = "\x93NUMPY";
  file += char(version);
  file += char(0);
  file += char(h.size() & 0xFF);
  file += char((h.size() >> 8) & 0xFF);
  if (version != 1) file += std::string(2, '\0');
  return file + h + std::string(data_bytes, '\x01');
}

class NpyFile : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& bytes) {
    const std::string path = ::testing::TempDir() + "farsee_npy_test_" + name + ".npy";
    std::ofstream(path, std::ios::binary) << bytes;
    paths_.push_back(path);
    return path;
  }
  void TearDown() override {
    for (const std::string& p : paths_) std::remove(p.c_str());
  }
  std::vector<std::string> paths_;
};

TEST_F(NpyFile, ReadsWellFormedFiles) {
  const NpyArray a = read_npy(
      write("f4", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24)));
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.floats().size(), 6u);
  const NpyArray v2 = read_npy(
      write("v2", npy_bytes("{'descr': '|u1', 'fortran_order': False, 'shape': (5,), }", 5, 2)));
  EXPECT_EQ(v2.bytes(), std::vector<uint8_t>(5, 1));
  const NpyArray empty = read_npy(
      write("empty", npy_bytes("{'descr': '<i4', 'fortran_order': False, 'shape': (0,), }", 0)));
  EXPECT_EQ(empty.size(), 0);
  const NpyArray scalar = read_npy(
      write("scalar", npy_bytes("{'descr': '<i4', 'fortran_order': False, 'shape': (), }", 4)));
  EXPECT_EQ(scalar.ints().size(), 1u);
}

// A committed fixture written by numpy: shape and the NCHW -> NHWC conversion.
TEST_F(NpyFile, ReadsFixtureAndConvertsLayout) {
  const NpyArray a = read_npy(OpFixture("pixel_shuffle_r2").path("x"));
  ASSERT_EQ(a.shape, (std::vector<int64_t>{1, 12, 3, 5}));
  const Shape4 s = nchw_shape(a);
  EXPECT_EQ(s, (Shape4{1, 3, 5, 12}));
  const std::vector<float> nchw = a.floats(), nhwc = nchw_to_nhwc(a);
  // Element (n=0, c=7, y=2, x=4).
  EXPECT_EQ(nhwc[(size_t(2) * 5 + 4) * 12 + 7], nchw[(size_t(7) * 3 + 2) * 5 + 4]);
}

TEST_F(NpyFile, RejectsMalformedFilesNamingThem) {
  const std::string good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  struct Bad {
    const char* name;
    std::string bytes;
    const char* why;
  };
  const std::vector<Bad> bad = {
      {"magic", "PK\x03\x04 not numpy at all", "bad magic"},
      {"short_data", npy_bytes(good, 20), "data is 20 bytes"},
      {"long_data", npy_bytes(good, 28), "data is 28 bytes"},
      {"f8", npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 48),
       "unsupported element type '<f8'"},
      {"big_endian", npy_bytes("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", 24),
       "unsupported element type '>f4'"},
      {"fortran", npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24),
       "fortran_order"},
      {"shape", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", 24),
       "malformed"},
      {"keys", npy_bytes("{'shape': (2, 3), 'descr': '<f4', 'fortran_order': False, }", 24),
       "malformed"},
      {"version", npy_bytes(good, 24, 9), "version 9"},
      {"truncated_header", npy_bytes(good, 24).substr(0, 40), "truncated"},
  };
  for (const Bad& b : bad) {
    SCOPED_TRACE(b.name);
    const std::string path = write(b.name, b.bytes);
    EXPECT_TRUE(throws_error_mentioning([&] { read_npy(path); }, path));
    EXPECT_TRUE(throws_error_mentioning([&] { read_npy(path); }, b.why));
  }
  EXPECT_TRUE(throws_error_mentioning([] { read_npy("/nonexistent/x.npy"); },
                                      "/nonexistent/x.npy: cannot open"));
  // Asking for the wrong element type names the file too.
  const std::string f4 = write("typed", npy_bytes(good, 24));
  EXPECT_TRUE(throws_error_mentioning([&] { read_npy(f4).ints(); }, f4));
}

}  // namespace
}  // namespace farsee::test
