// safetensors reader/writer: round trips (F32, F16, BF16), the checked-loading API, every
// corruption the reader must reject (each with the intended error naming file and tensor), and
// atomic writes.
#include "weights/safetensors.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "kernels/core/check.h"
#include "kernels/core/half_convert.h"
#include "tests/support/temp_dir.h"

namespace farsee::weights {
namespace {

using test::read_bytes;
using test::write_bytes;

// Runs `fn`, which must throw farsee::Error whose message contains every one of `parts`.
::testing::AssertionResult throws_with(const std::function<void()>& fn,
                                       std::initializer_list<std::string> parts) {
  try {
    fn();
  } catch (const Error& e) {
    const std::string what = e.what();
    for (const std::string& p : parts) {
      if (what.find(p) == std::string::npos) {
        return ::testing::AssertionFailure() << "message lacks \"" << p << "\": " << what;
      }
    }
    return ::testing::AssertionSuccess() << what;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw a non-farsee exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

std::vector<float> ramp(size_t n, float scale = 0.37f, float offset = -1.5f) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = offset + scale * float(i) + 1e-3f * float(i * i % 7);
  return v;
}

// A file from header text and `data_bytes` bytes of data; `length` overrides the length field.
std::vector<uint8_t> raw_file(const std::string& header, size_t data_bytes, int64_t length = -1) {
  const uint64_t n = length < 0 ? header.size() : uint64_t(length);
  std::vector<uint8_t> out;
  for (int i = 0; i < 8; ++i) out.push_back(uint8_t(n >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  for (size_t i = 0; i < data_bytes; ++i) out.push_back(uint8_t(i * 37 + 11));
  return out;
}

class SafetensorsTest : public test::TempDirTest {
 protected:
  // Writes `bytes` to a file and opens it: the open must fail with all of `parts` (the file's
  // path is always required in the message).
  ::testing::AssertionResult rejects(const std::vector<uint8_t>& bytes,
                                     std::initializer_list<std::string> parts) {
    const std::string path = file("corrupt.safetensors");
    write_bytes(path, bytes);
    auto r = throws_with([&] { SafetensorsFile f(path); }, {path});
    if (!r) return r;
    return throws_with([&] { SafetensorsFile f(path); }, parts);
  }
};

// ---- round trips ----

TEST_F(SafetensorsTest, F32RoundTripKeepsValuesShapesOrderAndMetadata) {
  SafetensorsWriter w;
  w.set_metadata("preset", "paper");
  w.set_metadata("num_classes", "19");
  const auto a = ramp(2 * 3 * 5 * 7), b = ramp(13, -2.25f, 100.f), c = ramp(1);
  w.add("z.conv.weight", {2, 3, 5, 7}, a);
  w.add("a.bn.running_var", {13}, b);
  w.add("m.scalar", {}, c);
  const std::string path = file("w.safetensors");
  w.write(path);

  SafetensorsFile f(path);
  EXPECT_EQ(f.path(), path);
  EXPECT_EQ(f.metadata_value("preset"), "paper");
  EXPECT_EQ(f.metadata_value("num_classes"), "19");
  EXPECT_EQ(f.metadata_value("absent", "fallback"), "fallback");
  EXPECT_EQ(f.names(), (std::vector<std::string>{"z.conv.weight", "a.bn.running_var",
                                                 "m.scalar"}));  // data order = insertion order
  EXPECT_EQ(f.info("z.conv.weight").shape, (TensorShape{2, 3, 5, 7}));
  EXPECT_EQ(f.info("z.conv.weight").dtype, FileDType::F32);
  EXPECT_EQ(f.info("m.scalar").shape, TensorShape{});
  EXPECT_EQ(f.info("m.scalar").numel(), 1);
  EXPECT_EQ(f.read_floats("z.conv.weight"), a);  // exact: fp32 bits are copied
  EXPECT_EQ(f.read_floats("a.bn.running_var", {13}), b);
  EXPECT_EQ(f.read_floats("m.scalar"), c);
}

TEST_F(SafetensorsTest, F16StoresRoundToNearestEvenAndReadsBackExactly) {
  // Includes values that are not fp16-representable, ties, a subnormal and an overflow to inf.
  std::vector<float> v = ramp(37, 0.113f, -2.0f);
  v.push_back(1.0f + 1.0f / 2048.0f);  // tie between 1 and 1+2^-10: rounds to even (1)
  v.push_back(3.0e-6f);                // fp16 subnormal
  v.push_back(70000.0f);               // beyond fp16: inf
  SafetensorsWriter w;
  w.add("h", {int64_t(v.size())}, v, FileDType::F16);
  const std::string path = file("h.safetensors");
  w.write(path);

  SafetensorsFile f(path);
  EXPECT_EQ(f.info("h").dtype, FileDType::F16);
  EXPECT_EQ(f.info("h").bytes(), v.size() * 2);
  const std::vector<float> got = f.read_floats("h");
  ASSERT_EQ(got.size(), v.size());
  for (size_t i = 0; i < v.size(); ++i) EXPECT_EQ(got[i], round_to_half(v[i])) << "index " << i;
  EXPECT_EQ(got[v.size() - 3], 1.0f);
  EXPECT_TRUE(std::isinf(got.back()));
  const uint8_t* raw = f.raw_data("h");  // little-endian fp16 bits
  EXPECT_EQ(uint16_t(raw[0] | raw[1] << 8), float_to_half_bits(v[0]));
}

TEST_F(SafetensorsTest, BF16StoresRoundToNearestEvenAndReadsBackExactly) {
  std::vector<float> v = ramp(29, 1.7f, -20.0f);
  v.push_back(1.0f + 1.0f / 256.0f);  // tie between 1 and 1+2^-7: rounds to even (1)
  SafetensorsWriter w;
  w.add("b", {int64_t(v.size())}, v, FileDType::BF16);
  const std::string path = file("b.safetensors");
  w.write(path);

  SafetensorsFile f(path);
  EXPECT_EQ(f.info("b").dtype, FileDType::BF16);
  const std::vector<float> got = f.read_floats("b");
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_EQ(got[i], bf16_bits_to_float(float_to_bf16_bits(v[i]))) << "index " << i;
  }
  EXPECT_EQ(got.back(), 1.0f);
}

TEST_F(SafetensorsTest, EmptyTensorsAndF64AreRead) {
  SafetensorsWriter w;
  w.add("empty", {0, 4}, std::vector<float>{});
  const double d[3] = {1.0 / 3.0, -2.5, 1e10};
  w.add_raw("f64", FileDType::F64, {3}, d, sizeof d);
  const std::string path = file("e.safetensors");
  w.write(path);
  SafetensorsFile f(path);
  EXPECT_TRUE(f.read_floats("empty").empty());
  EXPECT_EQ(f.read_floats("f64"), (std::vector<float>{float(d[0]), float(d[1]), float(d[2])}));
}

TEST_F(SafetensorsTest, HeaderIsPaddedSoDataIsAligned) {
  SafetensorsWriter w;
  w.add("x", {3}, ramp(3));
  w.add("odd_name_length", {1}, ramp(1));
  const std::vector<uint8_t> bytes = w.serialize();
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  EXPECT_EQ((8 + n) % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + n + 16);
  EXPECT_EQ(bytes[8], '{');
}

TEST_F(SafetensorsTest, IntegerTensorsAreValidatedButNotReadAsFloat) {
  SafetensorsWriter w;
  const int64_t steps[1] = {12345};
  w.add_raw("bn.num_batches_tracked", FileDType::I64, {}, steps, sizeof steps);
  const std::string path = file("i.safetensors");
  w.write(path);
  SafetensorsFile f(path);
  int64_t got;
  std::memcpy(&got, f.raw_data("bn.num_batches_tracked"), 8);
  EXPECT_EQ(got, 12345);
  EXPECT_TRUE(throws_with([&] { f.read_floats("bn.num_batches_tracked"); },
                          {path, "bn.num_batches_tracked", "I64", "cannot be read as float"}));
}

TEST_F(SafetensorsTest, MovedFileStaysReadable) {
  SafetensorsWriter w;
  w.add("x", {4}, ramp(4));
  w.write(file("m.safetensors"));
  SafetensorsFile a(file("m.safetensors"));
  SafetensorsFile b(std::move(a));
  SafetensorsFile c(file("m.safetensors"));
  c = std::move(b);
  EXPECT_EQ(c.read_floats("x"), ramp(4));
}

// ---- checked loading ----

class SafetensorsExpectTest : public SafetensorsTest {
 protected:
  void SetUp() override {
    SafetensorsTest::SetUp();
    SafetensorsWriter w;
    w.add("backbone.conv1.weight", {64, 3, 7, 7}, ramp(64 * 3 * 7 * 7));
    w.add("head.low.bn.weight", {48}, ramp(48));
    w.add("head.extra", {2}, ramp(2));
    w.add("aaa.unknown", {1}, ramp(1));
    path_ = file("x.safetensors");
    w.write(path_);
  }
  std::string path_;
};

TEST_F(SafetensorsExpectTest, ShapeMismatchNamesFileTensorAndBothShapes) {
  SafetensorsFile f(path_);
  EXPECT_TRUE(throws_with(
      [&] {
        f.expect("backbone.conv1.weight", {64, 3, 3, 3});
      },
      {path_, "'backbone.conv1.weight'", "[64, 3, 7, 7]", "[64, 3, 3, 3]"}));
  EXPECT_TRUE(throws_with([&] { f.read_floats("head.low.bn.weight", {49}); },
                          {path_, "'head.low.bn.weight'", "[48]", "[49]"}));
  EXPECT_EQ(f.expect("head.low.bn.weight", {48}).numel(), 48);
}

TEST_F(SafetensorsExpectTest, MissingTensorIsNamed) {
  SafetensorsFile f(path_);
  EXPECT_FALSE(f.contains("head.up2.conv.bias"));
  EXPECT_TRUE(throws_with([&] { f.expect("head.up2.conv.bias", {304}); },
                          {path_, "'head.up2.conv.bias'", "missing", "[304]"}));
  EXPECT_TRUE(throws_with([&] { f.read_floats("head.up2.conv.bias"); },
                          {path_, "'head.up2.conv.bias'", "missing"}));
}

TEST_F(SafetensorsExpectTest, ReportUnexpectedListsExtraTensorsSorted) {
  SafetensorsFile f(path_);
  EXPECT_EQ(f.report_unexpected({"backbone.conv1.weight", "head.low.bn.weight", "not.there"}),
            (std::vector<std::string>{"aaa.unknown", "head.extra"}));
  EXPECT_TRUE(f.report_unexpected(f.names()).empty());
}

TEST_F(SafetensorsExpectTest, ReadExpectedReturnsOrRejectsExtras) {
  SafetensorsFile f(path_);
  const std::vector<ExpectedTensor> want = {{"backbone.conv1.weight", {64, 3, 7, 7}},
                                            {"head.low.bn.weight", {48}}};
  std::vector<std::string> unknown;
  const auto got = read_expected(f, want, &unknown);
  EXPECT_EQ(unknown, (std::vector<std::string>{"aaa.unknown", "head.extra"}));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got.at("head.low.bn.weight").data, ramp(48));
  EXPECT_EQ(got.at("backbone.conv1.weight").shape, (TensorShape{64, 3, 7, 7}));
  EXPECT_TRUE(throws_with([&] { read_expected(f, want, nullptr); },
                          {path_, "2 unexpected", "'aaa.unknown'", "'head.extra'"}));
  EXPECT_TRUE(throws_with(
      [&] {
        read_expected(f, {{"head.low.bn.weight", {8, 6}}}, &unknown);
      },
      {path_, "'head.low.bn.weight'", "[48]", "[8, 6]"}));
}

// ---- corrupt files: each gives its own error ----

const char* const kGoodHeader = R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
                                R"("b":{"dtype":"F16","shape":[3],"data_offsets":[16,22]}})";

TEST_F(SafetensorsTest, GoodRawFileOpens) {  // the base the corruptions below start from
  write_bytes(file("good.safetensors"), raw_file(kGoodHeader, 22));
  SafetensorsFile f(file("good.safetensors"));
  EXPECT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.read_floats("b").size(), 3u);
}

TEST_F(SafetensorsTest, RejectsMissingFile) {
  EXPECT_TRUE(throws_with([&] { SafetensorsFile f(file("nope.safetensors")); },
                          {file("nope.safetensors"), "cannot open"}));
}

TEST_F(SafetensorsTest, RejectsFileTooShortForTheLength) {
  EXPECT_TRUE(rejects({}, {"file too short", "0 bytes"}));
  EXPECT_TRUE(rejects({1, 0, 0, 0, 0}, {"file too short", "5 bytes"}));
}

TEST_F(SafetensorsTest, RejectsHeaderLengthBeyondTheFile) {
  EXPECT_TRUE(rejects(raw_file(kGoodHeader, 22, 4000), {"header length 4000", "beyond the end"}));
  EXPECT_TRUE(rejects(raw_file("{}", 0, int64_t(1) << 40), {"exceeds the limit"}));
}

TEST_F(SafetensorsTest, RejectsTruncatedData) {
  std::vector<uint8_t> bytes = raw_file(kGoodHeader, 22);
  bytes.resize(bytes.size() - 4);
  EXPECT_TRUE(rejects(bytes, {"tensor 'b'", "[16, 22]", "outside the 18-byte data section"}));
}

TEST_F(SafetensorsTest, RejectsHeaderThatIsNotJson) {
  EXPECT_TRUE(rejects(raw_file(R"({"a":{"dtype":"F32",)", 0), {"header is not valid JSON"}));
  EXPECT_TRUE(rejects(raw_file("PK\x03\x04 zip?", 0), {"header is not valid JSON"}));
}

TEST_F(SafetensorsTest, RejectsHeaderThatIsNotAnObject) {
  EXPECT_TRUE(rejects(raw_file("[1, 2]", 0), {"header is not a JSON object"}));
  EXPECT_TRUE(rejects(raw_file(R"({"a": 3})", 0), {"tensor 'a'", "not a JSON object"}));
}

TEST_F(SafetensorsTest, RejectsMissingFields) {
  EXPECT_TRUE(rejects(raw_file(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4),
                      {"tensor 'w'", "missing 'dtype'"}));
  EXPECT_TRUE(rejects(raw_file(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", 4),
                      {"tensor 'w'", "missing 'shape'"}));
  EXPECT_TRUE(rejects(raw_file(R"({"w":{"dtype":"F32","shape":[1]}})", 4),
                      {"tensor 'w'", "missing 'data_offsets'"}));
}

TEST_F(SafetensorsTest, RejectsMalformedFields) {
  EXPECT_TRUE(rejects(raw_file(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4),
                      {"tensor 'w'", "not a list of non-negative integers"}));
  EXPECT_TRUE(rejects(raw_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4),
                      {"tensor 'w'", "not a pair of non-negative integers"}));
  EXPECT_TRUE(rejects(raw_file(R"({"w":{"dtype":5,"shape":[1],"data_offsets":[0,4]}})", 4),
                      {"tensor 'w'", "'dtype' is not a string"}));
}

TEST_F(SafetensorsTest, RejectsUnknownDtype) {
  EXPECT_TRUE(rejects(raw_file(R"({"w":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}})", 4),
                      {"tensor 'w'", "unknown dtype 'F17'"}));
}

TEST_F(SafetensorsTest, RejectsOffsetsOutOfBounds) {  // the header lies about where data is
  EXPECT_TRUE(rejects(raw_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})", 16),
                      {"tensor 'w'", "[8, 24]", "outside the 16-byte data section"}));
}

TEST_F(SafetensorsTest, RejectsBeginAfterEnd) {
  EXPECT_TRUE(rejects(raw_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 16),
                      {"tensor 'w'", "[8, 4]", "begin after end"}));
}

TEST_F(SafetensorsTest, RejectsSizeNotMatchingShape) {
  EXPECT_TRUE(rejects(raw_file(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 24),
                      {"tensor 'w'", "hold 20 bytes", "[2, 3]", "F32 needs 24"}));
  EXPECT_TRUE(rejects(raw_file(R"({"w":{"dtype":"BF16","shape":[3],"data_offsets":[0,12]}})", 12),
                      {"tensor 'w'", "BF16 needs 6"}));
}

TEST_F(SafetensorsTest, RejectsOverlappingTensors) {
  EXPECT_TRUE(rejects(raw_file(R"({"p":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                               R"("q":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})",
                               20),
                      {"tensor 'q'", "[12, 20)", "overlap tensor 'p'", "[0, 16)"}));
}

TEST_F(SafetensorsTest, RejectsDuplicateTensorNames) {
  EXPECT_TRUE(rejects(raw_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                               R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                               8),
                      {"tensor 'w'", "more than once"}));
}

TEST_F(SafetensorsTest, RejectsNonStringMetadata) {
  EXPECT_TRUE(rejects(raw_file(R"({"__metadata__":{"num_classes":19}})", 0),
                      {"__metadata__ value of 'num_classes' is not a string"}));
}

// ---- writer ----

TEST_F(SafetensorsTest, WriterRejectsBadTensors) {
  SafetensorsWriter w;
  w.add("x", {2}, ramp(2));
  EXPECT_TRUE(throws_with([&] { w.add("x", {2}, ramp(2)); }, {"'x' added twice"}));
  EXPECT_TRUE(throws_with([&] { w.add("y", {2, 2}, ramp(3)); }, {"'y'", "3 values", "[2, 2]"}));
  EXPECT_TRUE(throws_with([&] { w.add("__metadata__", {1}, ramp(1)); }, {"not a tensor name"}));
  EXPECT_TRUE(throws_with([&] { w.add("z", {1}, ramp(1), FileDType::I32); },
                          {"'z'", "cannot store floats as I32"}));
  EXPECT_TRUE(throws_with([&] { w.add_raw("r", FileDType::F16, {3}, "abcdef", 5); },
                          {"'r'", "5 bytes", "[3]", "F16"}));
  EXPECT_EQ(w.size(), 1u);
}

TEST_F(SafetensorsTest, WriteReplacesTheFileAndLeavesNoTemporary) {
  const std::string path = file("ckpt.safetensors");
  SafetensorsWriter first;
  first.add("x", {2}, ramp(2));
  first.write(path);
  SafetensorsWriter second;
  second.add("x", {3}, ramp(3, 2.0f));
  second.write(path);
  EXPECT_EQ(SafetensorsFile(path).read_floats("x", {3}), ramp(3, 2.0f));
  EXPECT_EQ(listing(), std::vector<std::string>{"ckpt.safetensors"});
}

// Restores the file-size limit and the SIGXFSZ disposition when the test ends.
struct FileSizeLimit {
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved);
    old_handler = signal(SIGXFSZ, SIG_IGN);  // exceeding the limit: EFBIG instead of a signal
    rlimit lim = saved;
    // Lowering the soft limit (not above the hard one) is always permitted, for any user.
    lim.rlim_cur = std::min(bytes, saved.rlim_max);
    ok = setrlimit(RLIMIT_FSIZE, &lim) == 0;
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, old_handler);
  }
  rlimit saved{};
  sighandler_t old_handler;
  bool ok = false;
};

TEST_F(SafetensorsTest, FailedWriteLeavesTheOldFileIntact) {
  const std::string path = file("ckpt.safetensors");
  SafetensorsWriter old_weights;
  old_weights.set_metadata("step", "100");
  old_weights.add("x", {16}, ramp(16));
  old_weights.write(path);
  const std::vector<uint8_t> before = read_bytes(path);

  SafetensorsWriter big;
  big.set_metadata("step", "200");
  big.add("x", {64 * 1024}, ramp(64 * 1024));  // 256 KiB: beyond the limit below
  {
    FileSizeLimit limit(16 * 1024);
    ASSERT_TRUE(limit.ok) << "cannot lower RLIMIT_FSIZE to inject a write failure";
    EXPECT_TRUE(throws_with([&] { big.write(path); },
                            {path, "write failed", "previous file, if any, is unchanged"}));
  }
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_EQ(SafetensorsFile(path).metadata_value("step"), "100");
  EXPECT_EQ(listing(), std::vector<std::string>{"ckpt.safetensors"});  // temporary removed
}

TEST_F(SafetensorsTest, WriteIntoMissingFolderFailsNamingThePath) {
  SafetensorsWriter w;
  w.add("x", {1}, ramp(1));
  const std::string path = file("no/such/folder/w.safetensors");
  EXPECT_TRUE(throws_with([&] { w.write(path); }, {path, "temporary file"}));
}

TEST_F(SafetensorsTest, FailedRenameRemovesTheTemporary) {
  const std::string path = file("taken");
  std::filesystem::create_directory(path);  // rename(file, folder) fails: EISDIR
  SafetensorsWriter w;
  w.add("x", {1}, ramp(1));
  EXPECT_TRUE(throws_with([&] { w.write(path); }, {path, "rename"}));
  EXPECT_EQ(listing(), std::vector<std::string>{"taken"});
}

TEST(SafetensorsDType, NamesSizesAndParsing) {
  EXPECT_EQ(parse_dtype("BF16"), FileDType::BF16);
  EXPECT_STREQ(dtype_name(FileDType::F16), "F16");
  EXPECT_EQ(dtype_bytes(FileDType::F64), 8u);
  EXPECT_EQ(dtype_bytes(FileDType::BOOL), 1u);
  EXPECT_TRUE(converts_to_float(FileDType::BF16));
  EXPECT_FALSE(converts_to_float(FileDType::I64));
  EXPECT_TRUE(throws_with([] { parse_dtype("f32"); }, {"unknown dtype 'f32'"}));
  EXPECT_EQ(shape_text({}), "[]");
  EXPECT_EQ(shape_text({4, 1, 3, 3}), "[4, 1, 3, 3]");
  EXPECT_EQ(shape_numel({}), 1);
  EXPECT_EQ(shape_numel({5, 0, 2}), 0);
}

}  // namespace
}  // namespace farsee::weights
