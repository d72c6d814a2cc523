// A minimal, strict reader of NumPy .npy files (the fixture format of
// tools/pytorch/make_op_fixtures.py), header-only so any test binary can include it.
//
// Accepted: format versions 1.0 (uint16 header length) and 2.0/3.0 (uint32), a header dict with
// exactly the keys 'descr', 'fortran_order' and 'shape', descr one of '<f4' (float32), '<i4'
// (int32), '|u1' (uint8), fortran_order False, and exactly prod(shape) * itemsize bytes of data
// after the header. Anything else throws farsee::Error naming the file and what is wrong.
// Little-endian host assumed (x86-64 and aarch64).
//
// Also the layout conversions from PyTorch's NCHW / OIHW to FarSee's NHWC / KRSC.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "kernels/core/check.h"
#include "kernels/core/tensor.h"

namespace farsee::test {

struct NpyArray {
  std::string path;
  std::string descr;  // "<f4", "<i4" or "|u1"
  std::vector<int64_t> shape;
  std::vector<unsigned char> data;  // raw little-endian elements, C order

  int64_t size() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  std::vector<float> floats() const { return elements<float>("<f4"); }
  std::vector<int32_t> ints() const { return elements<int32_t>("<i4"); }
  std::vector<uint8_t> bytes() const { return elements<uint8_t>("|u1"); }
  // Shape as text, e.g. "(1, 3, 17, 19)".
  std::string shape_string() const {
    std::string s = "(";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + ")";
  }
  // Requires this many dimensions.
  void require_rank(size_t rank) const {
    FARSEE_REQUIRE(shape.size() == rank, path << ": expected a " << rank
                                              << "-D array, file has shape " << shape_string());
  }

 private:
  template <typename T>
  std::vector<T> elements(const char* want) const {
    FARSEE_REQUIRE(descr == want,
                   path << ": element type '" << descr << "', expected '" << want << "'");
    std::vector<T> v(static_cast<size_t>(size()));
    if (!v.empty()) std::memcpy(v.data(), data.data(), v.size() * sizeof(T));
    return v;
  }
};

namespace npy_detail {

inline size_t item_size(const std::string& descr) {
  if (descr == "<f4" || descr == "<i4") return 4;
  if (descr == "|u1") return 1;
  return 0;
}

// Skips spaces at `pos` of `h`.
inline void skip_spaces(const std::string& h, size_t& pos) {
  while (pos < h.size() && h[pos] == ' ') ++pos;
}

// Expects the literal `token` at `pos` (after spaces) and moves past it.
inline void expect(const std::string& path, const std::string& h, size_t& pos, const char* token) {
  skip_spaces(h, pos);
  const size_t n = std::strlen(token);
  FARSEE_REQUIRE(h.compare(pos, n, token) == 0, path << ": malformed .npy header (expected \""
                                                     << token << "\" at offset " << pos
                                                     << "): " << h);
  pos += n;
}

// Parses "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" (numpy's key order).
inline void parse_header(const std::string& path, const std::string& h, NpyArray& a) {
  size_t pos = 0;
  expect(path, h, pos, "{");
  expect(path, h, pos, "'descr':");
  expect(path, h, pos, "'");
  const size_t end = h.find('\'', pos);
  FARSEE_REQUIRE(end != std::string::npos, path << ": malformed .npy header (descr): " << h);
  a.descr = h.substr(pos, end - pos);
  pos = end + 1;
  FARSEE_REQUIRE(item_size(a.descr) != 0,
                 path << ": unsupported element type '" << a.descr
                      << "' (supported: '<f4' float32, '<i4' int32, '|u1' uint8)");
  expect(path, h, pos, ",");
  expect(path, h, pos, "'fortran_order':");
  skip_spaces(h, pos);
  FARSEE_REQUIRE(h.compare(pos, 5, "False") == 0,
                 path << ": fortran_order arrays are not supported (save C-order arrays)");
  pos += 5;
  expect(path, h, pos, ",");
  expect(path, h, pos, "'shape':");
  expect(path, h, pos, "(");
  for (;;) {
    skip_spaces(h, pos);
    if (h.compare(pos, 1, ")") == 0) break;
    size_t digits = 0;
    int64_t dim = 0;
    while (pos < h.size() && h[pos] >= '0' && h[pos] <= '9' && digits < 18) {
      dim = dim * 10 + (h[pos] - '0');
      ++pos;
      ++digits;
    }
    FARSEE_REQUIRE(digits > 0 && !(pos < h.size() && h[pos] >= '0' && h[pos] <= '9'),
                   path << ": malformed .npy header (shape): " << h);
    a.shape.push_back(dim);
    skip_spaces(h, pos);
    if (h.compare(pos, 1, ",") == 0) ++pos;
  }
  expect(path, h, pos, ")");
  skip_spaces(h, pos);
  if (h.compare(pos, 1, ",") == 0) ++pos;
  expect(path, h, pos, "}");
  skip_spaces(h, pos);
  FARSEE_REQUIRE(pos + 1 == h.size() && h[pos] == '\n',
                 path << ": malformed .npy header (trailing text or no newline): " << h);
}

}  // namespace npy_detail

inline NpyArray read_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  FARSEE_REQUIRE(f.good(), path << ": cannot open .npy file");
  const std::vector<unsigned char> file((std::istreambuf_iterator<char>(f)),
                                        std::istreambuf_iterator<char>());
  static const unsigned char kMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  FARSEE_REQUIRE(file.size() >= 10 && std::memcmp(file.data(), kMagic, 6) == 0,
                 path << ": not a .npy file (bad magic)");
  const int major = file[6];
  size_t header_len, header_start;
  if (major == 1) {
    header_len = size_t(file[8]) | size_t(file[9]) << 8;
    header_start = 10;
  } else {
    FARSEE_REQUIRE(major == 2 || major == 3, path << ": unsupported .npy format version " << major);
    FARSEE_REQUIRE(file.size() >= 12, path << ": truncated .npy header");
    header_len =
        size_t(file[8]) | size_t(file[9]) << 8 | size_t(file[10]) << 16 | size_t(file[11]) << 24;
    header_start = 12;
  }
  FARSEE_REQUIRE(header_start + header_len <= file.size(),
                 path << ": truncated .npy header (" << header_len << " bytes declared, "
                      << file.size() - header_start << " present)");
  NpyArray a;
  a.path = path;
  npy_detail::parse_header(
      path, std::string(file.begin() + header_start, file.begin() + header_start + header_len), a);
  const size_t data_start = header_start + header_len;
  const size_t want = size_t(a.size()) * npy_detail::item_size(a.descr);
  FARSEE_REQUIRE(file.size() - data_start == want,
                 path << ": data is " << file.size() - data_start << " bytes, shape "
                      << a.shape_string() << " of '" << a.descr << "' needs " << want);
  a.data.assign(file.begin() + data_start, file.end());
  return a;
}

// ---- PyTorch layouts -> FarSee layouts ----

// Shape4 (NHWC naming) of an NCHW float array.
inline Shape4 nchw_shape(const NpyArray& a) {
  a.require_rank(4);
  return Shape4{int(a.shape[0]), int(a.shape[2]), int(a.shape[3]), int(a.shape[1])};
}

// NCHW float array -> dense NHWC values.
inline std::vector<float> nchw_to_nhwc(const NpyArray& a) {
  const Shape4 s = nchw_shape(a);
  const std::vector<float> src = a.floats();
  std::vector<float> dst(src.size());
  for (int n = 0; n < s.n; ++n)
    for (int c = 0; c < s.c; ++c)
      for (int y = 0; y < s.h; ++y)
        for (int x = 0; x < s.w; ++x)
          dst[((size_t(n) * s.h + y) * s.w + x) * s.c + c] =
              src[((size_t(n) * s.c + c) * s.h + y) * s.w + x];
  return dst;
}

// OIHW conv weights have the same index order as NCHW ([K][C][R][S]): the KRSC values and their
// Shape4 {K, R, S, C} come from the same conversion.
inline Shape4 oihw_to_krsc_shape(const NpyArray& a) {
  return nchw_shape(a);
}
inline std::vector<float> oihw_to_krsc(const NpyArray& a) {
  return nchw_to_nhwc(a);
}

}  // namespace farsee::test
