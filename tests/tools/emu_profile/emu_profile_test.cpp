// farsee-emu-profile (tools/emu_profile/) as a user runs it: a tiny fp16 forward under emu writes
// the JSON schema of issue 20 (rows with step, kernel, launches, bytes, efficiencies, bank-conflict
// ways, barriers, MMAs; total_launches), the rows add up to the total, every graph step appears,
// and a bad argument fails naming it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "tests/support/run_program.h"

namespace {

namespace fs = std::filesystem;

std::string profiler() {
  return (fs::path(FARSEE_PROGRAM_DIR) / "farsee-emu-profile").string();
}

TEST(EmuProfile, TinyForwardWritesTheRowsAndTheirTotal) {
  const fs::path json_path = fs::path(::testing::TempDir()) /
                             ("farsee_emu_profile_" + std::to_string(::getpid()) + ".json");
  const auto r = farsee::test::run_program(profiler() +
                                           " --preset tiny-paper --sizes 32x32 --precision fp16"
                                           " --json " +
                                           json_path.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("head.up1"), std::string::npos) << r.output;
  std::ifstream in(json_path);
  ASSERT_TRUE(in.good()) << json_path;
  const nlohmann::json j = nlohmann::json::parse(in);
  fs::remove(json_path);
  const auto& rows = j.at("rows");
  ASSERT_GT(rows.size(), 20u);
  int64_t launches = 0, read = 0, write = 0, mma = 0;
  std::set<std::string> steps;
  for (const auto& row : rows) {
    for (const char* f :
         {"step", "kernel", "launches", "read_bytes", "write_bytes", "load_efficiency",
          "store_efficiency", "bank_conflict_ways", "barriers", "mma"}) {
      ASSERT_TRUE(row.contains(f)) << "row without " << f << ": " << row.dump();
    }
    EXPECT_GE(row["launches"].get<int64_t>(), 1) << row.dump();
    EXPECT_GT(row["read_bytes"].get<int64_t>(), 0) << row.dump();
    for (const char* f : {"load_efficiency", "store_efficiency"}) {
      const double e = row[f].get<double>();
      EXPECT_TRUE(e > 0.0 && e <= 1.0) << f << " = " << e << " in " << row.dump();
    }
    EXPECT_GE(row["bank_conflict_ways"].get<double>(), 1.0) << row.dump();
    launches += row["launches"].get<int64_t>();
    read += row["read_bytes"].get<int64_t>();
    write += row["write_bytes"].get<int64_t>();
    mma += row["mma"].get<int64_t>();
    steps.insert(row["step"].get<std::string>());
  }
  // fp16 fuses the stem's max-pool into the stem conv: one launch, one row (issue 20: 30 launches).
  EXPECT_EQ(rows.front()["step"], "backbone.conv1+maxpool");
  EXPECT_EQ(launches, 30);
  EXPECT_EQ(rows.back()["step"], "output.resize_argmax");
  EXPECT_EQ(steps.count("(between steps)"), 0u) << "a launch outside every step";
  EXPECT_EQ(j.at("total_launches").get<int64_t>(), launches);
  EXPECT_EQ(j.at("total").at("read_bytes").get<int64_t>(), read);
  EXPECT_EQ(j.at("total").at("write_bytes").get<int64_t>(), write);
  EXPECT_GT(mma, 0) << "fp16 convs run on the tensor-core kernel";
}

TEST(EmuProfile, BadArgumentsFailNamingThem) {
  auto r = farsee::test::run_program(profiler() + " --precision fp8");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("--precision"), std::string::npos) << r.output;
  r = farsee::test::run_program(profiler() + " --sizes 30x32");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("32"), std::string::npos) << r.output;
}

}  // namespace
