// Smoke tests of the programs as a user runs them: farsee-make-dataset -> farsee-infer (tiny
// preset, random weights, reference executor, small input) writes every output, and the bad
// arguments each fail with a non-zero exit and a message naming the argument or file;
// farsee-bench writes its JSON schema. The programs are found next to this test binary
// (<build>/tools/); a build without them skips with the reason.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace {

namespace fs = std::filesystem;

fs::path tools_dir() {
  return fs::read_symlink("/proc/self/exe").parent_path().parent_path() / "tools";
}

struct Result {
  int exit_code;
  std::string output;  // stdout and stderr
};

Result run(const std::string& command) {
  Result r{-1, ""};
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

class Programs : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* p : {"farsee-infer", "farsee-bench", "farsee-make-dataset"}) {
      if (!fs::exists(tools_dir() / p)) GTEST_SKIP() << (tools_dir() / p) << " is not built";
    }
    dir_ = fs::path(::testing::TempDir()) /
           ("farsee_programs_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }
  std::string tool(const char* name) const { return (tools_dir() / name).string(); }
  // farsee-infer with the tiny preset on the CPU plus `args`.
  Result infer(const std::string& args) const {
    return run(tool("farsee-infer") +
               " --preset tiny-paper --executor reference --input-size 64x96 --out " +
               (dir_ / "out").string() + " " + args);
  }
  Result make_samples() const {
    return run(tool("farsee-make-dataset") + " --samples 2 --size 72x120 --labels --out " +
               (dir_ / "samples").string());
  }

  fs::path dir_;
};

#define EXPECT_MENTIONS(text, part) \
  EXPECT_NE((text).find(part), std::string::npos) << "output: " << (text) << "\nmissing: " << (part)

TEST_F(Programs, InferWritesEveryOutput) {
  ASSERT_EQ(make_samples().exit_code, 0);
  const Result r = infer("--random-weights 3 --overlay --output-size 80x100 --save-logits " +
                         (dir_ / "logits.npy").string() + " " + (dir_ / "samples").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (int k = 0; k < 2; ++k) {
    for (const char* suffix : {"_labels.png", "_color.png", "_overlay.png"}) {
      const fs::path f = dir_ / "out" / ("synthetic_" + std::to_string(k) + suffix);
      EXPECT_TRUE(fs::exists(f)) << f;
    }
  }
  EXPECT_MENTIONS(r.output, "ms");  // per-image latency
  // .npy: float32 (2, 5, 80, 100) after a 128-byte header.
  std::ifstream npy(dir_ / "logits.npy", std::ios::binary);
  std::string header(128, '\0');
  npy.read(&header[0], 128);
  EXPECT_EQ(header.compare(0, 6, "\x93NUMPY"), 0);
  EXPECT_MENTIONS(header, "'descr': '<f4'");
  EXPECT_MENTIONS(header, "'shape': (2, 5, 80, 100)");
  EXPECT_EQ(fs::file_size(dir_ / "logits.npy"), 128u + 2u * 5 * 80 * 100 * 4);
  // No temporary files left behind (atomic writes).
  for (const auto& e : fs::directory_iterator(dir_ / "out")) {
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
  }
}

TEST_F(Programs, InferLoadsAWeightFile) {
  ASSERT_EQ(make_samples().exit_code, 0);
  const std::string weights =
      std::string(FARSEE_TEST_DATA_DIR) + "/net/tiny-paper.weights.safetensors";
  const Result r = infer("--weights " + weights + " --precision fp16 " +
                         (dir_ / "samples" / "synthetic_1.png").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir_ / "out" / "synthetic_1_labels.png"));
}

TEST_F(Programs, InferErrorsNameTheCulprit) {
  ASSERT_EQ(make_samples().exit_code, 0);
  const std::string image = (dir_ / "samples" / "synthetic_0.png").string();
  Result r = infer("--random-weights 1 --input-size 50x96 " + image);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_MENTIONS(r.output, "--input-size");
  r = infer("--random-weights 1 --input-size 64by96 " + image);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_MENTIONS(r.output, "64by96");
  r = infer(image);  // no weights
  EXPECT_NE(r.exit_code, 0);
  EXPECT_MENTIONS(r.output, "--weights");
  const std::string missing = (dir_ / "nope.safetensors").string();
  r = infer("--weights " + missing + " " + image);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_MENTIONS(r.output, missing);
  const std::string rtseg =
      std::string(FARSEE_TEST_DATA_DIR) + "/net/tiny-rtseg.weights.safetensors";
  r = infer("--weights " + rtseg + " " + image);  // other preset's weights
  EXPECT_NE(r.exit_code, 0);
  EXPECT_MENTIONS(r.output, "tiny-rtseg");
  const fs::path fake = dir_ / "fake.png";
  std::ofstream(fake) << "not an image";
  r = infer("--random-weights 1 " + fake.string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_MENTIONS(r.output, fake.string());
  r = infer("--random-weights 1 " + (dir_ / "absent.png").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_MENTIONS(r.output, "absent.png");
  r = infer("--random-weights 1 --precision fp8 " + image);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_MENTIONS(r.output, "fp8");
  r = infer("--random-weights 1 --executor gpu " + image);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_MENTIONS(r.output, "gpu");
  r = infer("--random-weights 1 --frobnicate " + image);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_MENTIONS(r.output, "--frobnicate");
}

TEST_F(Programs, BenchWritesJson) {
  const fs::path json = dir_ / "bench.json";
  const Result r = run(tool("farsee-bench") +
                       " --preset tiny-rtseg --executor reference --sizes 64x64,32x96 --batches 1,2"
                       " --precision fp32,fp16 --runs 3 --warmup 1 --json " +
                       json.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream f(json);
  const nlohmann::json doc = nlohmann::json::parse(f);
  EXPECT_EQ(doc["tool"], "farsee-bench");
  EXPECT_EQ(doc["executor"], "reference");
  ASSERT_EQ(doc["results"].size(), 8u);  // 2 sizes x 2 batches x 2 precisions
  for (const auto& row : doc["results"]) {
    for (const char* key : {"size", "height", "width", "batch", "precision", "mode", "runs",
                            "median_ms", "p10_ms", "p90_ms", "images_per_s", "arena_bytes"}) {
      EXPECT_TRUE(row.contains(key)) << key;
    }
    EXPECT_LE(row["p10_ms"].get<double>(), row["median_ms"].get<double>());
    EXPECT_LE(row["median_ms"].get<double>(), row["p90_ms"].get<double>());
    EXPECT_EQ(row["runs"], 3);
  }
  const Result bad = run(tool("farsee-bench") + " --executor reference --sizes 64x60");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_MENTIONS(bad.output, "64x60");
}

}  // namespace
