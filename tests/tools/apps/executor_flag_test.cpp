// --executor in the programs: "emu" (the emulated CUDA kernels) is a test-only executor that the
// programs do not link, so every program refuses it up front with a message saying what it offers
// (rather than failing at the first op), an unknown name gets the same list, and no --help text
// offers emu. The programs run as child processes from <build>/bin/ (FARSEE_PROGRAM_DIR).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/mentions.h"
#include "tests/support/run_program.h"
#include "tests/support/temp_dir.h"

namespace {

namespace fs = std::filesystem;

using Result = farsee::test::ProgramResult;
Result run(const std::string& command) {
  return farsee::test::run_program(command);
}

std::string tool(const char* name) {
  return (fs::path(FARSEE_PROGRAM_DIR) / name).string();
}

class ExecutorFlag : public ::testing::Test {
 protected:
  // A one-image Cityscapes-layout dataset (train and val) for farsee-eval and farsee-train.
  std::string dataset() const {
    const std::string data = (dir_ / "data").string();
    const Result made =
        run(tool("farsee-make-dataset") + " --train 1 --val 1 --size 64x64 --out " + data);
    EXPECT_EQ(made.exit_code, 0) << made.output;
    return data;
  }
  // The command line of each program that takes --executor, with `executor` and arguments that
  // are otherwise valid.
  std::vector<std::string> commands(const std::string& executor) const {
    const std::string data = dataset();
    const std::string image =
        data + "/leftImg8bit/val/synthheim/synthheim_000000_000019_leftImg8bit.png";
    const std::string e = " --executor " + executor;
    return {
        tool("farsee-infer") + " --preset tiny-paper --random-weights 1 --input-size 64x64 --out " +
            (dir_ / "out").string() + e + " " + image,
        tool("farsee-bench") + " --preset tiny-paper --sizes 64x64 --batches 1 --runs 1" + e,
        tool("farsee-eval") + " --data " + data + " --weights " + (dir_ / "none").string() +
            " --input-size 64x64" + e,
        tool("farsee-train") + " --data " + data + " --preset tiny-paper --input-size 64x64" +
            " --batch 1 --steps 1 --save " + (dir_ / "w.safetensors").string() + e,
    };
  }

  farsee::test::TempDir dir_{"farsee_executor_flag"};
};

TEST_F(ExecutorFlag, EveryProgramRefusesEmuSayingWhatItOffers) {
  for (const std::string& command : commands("emu")) {
    SCOPED_TRACE(command);
    const Result r = run(command);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_MENTIONS(r.output, "--executor emu: emu is a test-only executor");
    EXPECT_MENTIONS(r.output, "the programs offer auto, cuda, cpu, reference");
    EXPECT_EQ(r.output.find("Segmentation fault"), std::string::npos) << r.output;
  }
}

TEST_F(ExecutorFlag, UnknownExecutorListsTheChoices) {
  for (const std::string& command : commands("gpu")) {
    SCOPED_TRACE(command);
    const Result r = run(command);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_MENTIONS(r.output, "--executor: 'gpu' is not one of auto, cuda, cpu, reference");
  }
}

// farsee-train's usage text is checked once it no longer offers emu (tools/train/train_cli.cpp).
TEST(ExecutorHelp, NoUsageTextOffersEmu) {
  for (const char* program : {"farsee-infer", "farsee-bench", "farsee-eval", "farsee-train"}) {
    const Result r = run(tool(program) + " --help");
    EXPECT_EQ(r.exit_code, 0) << program << ": " << r.output;
    EXPECT_MENTIONS(r.output, "--executor");
    EXPECT_EQ(r.output.find("emu"), std::string::npos) << program << " --help: " << r.output;
  }
}

}  // namespace
