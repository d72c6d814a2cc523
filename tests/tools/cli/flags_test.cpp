// tools/cli/flags.h, the programs' flag parsing on CLI11: both value forms, the last occurrence
// wins, checked integers name the flag, switches refuse a value, unknown options and stray
// arguments are named, --help prints the usage and stops, positionals keep their order.
#include "tools/cli/flags.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace farsee::tools {
namespace {

struct Parsed {
  std::string out;
  int jobs = 1;
  bool labels = false;
  std::vector<std::string> inputs;
};

// The error's text ("" when the arguments parse); help: whether parse() returned true.
std::string parse(const std::vector<std::string>& args, Parsed& p, bool* parsed = nullptr,
                  bool positionals = false) {
  Flags flags("test", "usage: test\n");
  flags.text("-o,--out", p.out);
  flags.integer("--jobs", p.jobs, 1);
  flags.set_true("--labels", p.labels);
  if (positionals) flags.positionals("inputs", p.inputs);
  try {
    const bool ok = flags.parse(args);
    if (parsed) *parsed = ok;
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Flags, BothValueFormsAndTheLastOneWins) {
  Parsed p;
  EXPECT_EQ(parse({"-o", "a", "--jobs=3", "--labels", "--out=b", "--jobs", "4"}, p), "");
  EXPECT_EQ(p.out, "b");
  EXPECT_EQ(p.jobs, 4);
  EXPECT_TRUE(p.labels);
  Parsed empty;  // "--out=" is the empty value, not the next argument
  EXPECT_EQ(parse({"--out=", "--jobs", "2"}, empty), "");
  EXPECT_EQ(empty.out, "");
  EXPECT_EQ(empty.jobs, 2);
  Parsed dashed;  // a value that looks like an option is still the value
  EXPECT_EQ(parse({"--out", "--jobs"}, dashed), "");
  EXPECT_EQ(dashed.out, "--jobs");
}

TEST(Flags, ErrorsNameTheFlagAndTheText) {
  Parsed p;
  EXPECT_NE(parse({"--jobs", "0"}, p).find("--jobs: '0' is not an integer >= 1"),
            std::string::npos);
  EXPECT_NE(parse({"--jobs", "2x"}, p).find("'2x'"), std::string::npos);
  EXPECT_NE(parse({"--jobs"}, p).find("--jobs: 1 required VALUE missing"), std::string::npos);
  EXPECT_NE(parse({"--labels=true"}, p).find("--labels takes no value"), std::string::npos);
  EXPECT_NE(parse({"--bogus=1", "x"}, p).find("unknown option '--bogus'"), std::string::npos);
  EXPECT_NE(parse({"--jobs", "2", "-z"}, p).find("unknown option '-z'"), std::string::npos);
  EXPECT_NE(parse({"extra", "--bogus"}, p).find("unexpected argument 'extra'"), std::string::npos);
}

TEST(Flags, HelpPrintsTheUsageAndStops) {
  Parsed p;
  bool parsed = true;
  testing::internal::CaptureStdout();
  EXPECT_EQ(parse({"--jobs", "2", "--help", "--jobs", "0"}, p, &parsed), "");
  EXPECT_EQ(testing::internal::GetCapturedStdout(), "usage: test\n");
  EXPECT_FALSE(parsed);
  EXPECT_NE(parse({"--help=1"}, p).find("--help takes no value"), std::string::npos);
}

TEST(Flags, PositionalsInOrder) {
  Parsed p;
  bool parsed = false;
  EXPECT_EQ(parse({"a", "--jobs", "2", "b", "-", "--", "--c"}, p, &parsed, true), "");
  EXPECT_TRUE(parsed);
  EXPECT_EQ(p.inputs, (std::vector<std::string>{"a", "b", "-", "--c"}));
}

}  // namespace
}  // namespace farsee::tools
