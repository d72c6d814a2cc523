// Bad weight files through the network's loading path (load_parameters -> FarSeeNet): each broken
// file gives an error that names the file and, where there is one, the tensor, never a crash or a
// silently wrong network. The broken files are derived from the tiny-paper fixture.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "net/farsee_net.h"
#include "tests/support/mentions.h"
#include "weights/safetensors.h"

namespace farsee::net {
namespace {

const std::string kWeights =
    std::string(FARSEE_TEST_DATA_DIR) + "/net/tiny-paper.weights.safetensors";
const char* kPreset = "tiny-paper";

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)),
                              std::istreambuf_iterator<char>());
}

class BadWeights : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "farsee_bad_weights_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".safetensors";
  }
  void TearDown() override { std::remove(path_.c_str()); }

  void write_bytes(const std::vector<uint8_t>& bytes) {
    std::ofstream f(path_, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  }
  // Rewrites the fixture through `edit` (which may drop, add or reshape tensors).
  void write_edited(const std::function<void(HostTensors&)>& edit) {
    const weights::SafetensorsFile src(kWeights);
    HostTensors tensors;
    for (const auto& name : src.names()) {
      tensors[name] = weights::FloatTensor{src.info(name).shape, src.read_floats(name)};
    }
    edit(tensors);
    weights::SafetensorsWriter w;
    w.set_metadata("preset", kPreset);
    for (const auto& kv : tensors) w.add(kv.first, kv.second.shape, kv.second.data);
    w.write(path_);
  }
  // Edits the JSON header of the fixture, keeping its data section.
  void write_with_header(const std::function<void(nlohmann::json&)>& edit) {
    const std::vector<uint8_t> bytes = read_bytes(kWeights);
    uint64_t header_len = 0;
    std::memcpy(&header_len, bytes.data(), 8);
    nlohmann::json header =
        nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + header_len);
    edit(header);
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');
    std::vector<uint8_t> out(8);
    const uint64_t len = text.size();
    std::memcpy(out.data(), &len, 8);
    out.insert(out.end(), text.begin(), text.end());
    out.insert(out.end(), bytes.begin() + 8 + header_len, bytes.end());
    write_bytes(out);
  }

  // The error of loading path_ into a network (empty if it loads).
  std::string load_error(DType dtype = DType::F32, Executor executor = Executor::Reference) {
    try {
      const FarSeeConfig config = preset_config(kPreset);
      const HostTensors params = load_parameters(path_, config);
      Context ctx;
      ctx.executor = executor;
      FarSeeNet net(config, params, ctx, dtype);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  std::string path_;
};

TEST_F(BadWeights, FixtureLoads) {
  write_bytes(read_bytes(kWeights));
  EXPECT_EQ(load_error(), "");
}

TEST_F(BadWeights, MissingFile) {
  path_ += ".does-not-exist";
  const std::string e = load_error();
  EXPECT_MENTIONS(e, path_);
}

TEST_F(BadWeights, TruncatedFile) {
  std::vector<uint8_t> bytes = read_bytes(kWeights);
  ASSERT_GT(bytes.size(), 1000u);
  bytes.resize(bytes.size() - 1000);
  write_bytes(bytes);
  const std::string e = load_error();
  EXPECT_MENTIONS(e, path_);
  // Cut inside the 8-byte length and inside the header too.
  write_bytes(std::vector<uint8_t>(bytes.begin(), bytes.begin() + 5));
  EXPECT_MENTIONS(load_error(), path_);
  write_bytes(std::vector<uint8_t>(bytes.begin(), bytes.begin() + 100));
  EXPECT_MENTIONS(load_error(), path_);
}

TEST_F(BadWeights, WrongShape) {
  write_edited([](HostTensors& t) {
    auto& w = t.at("head.low.conv.weight");  // [6, 16, 1, 1] -> [16, 6, 1, 1]: same size
    std::swap(w.shape[0], w.shape[1]);
  });
  const std::string e = load_error();
  EXPECT_MENTIONS(e, "head.low.conv.weight");
  EXPECT_MENTIONS(e, "[16, 6, 1, 1]");
  EXPECT_MENTIONS(e, "[6, 16, 1, 1]");
}

TEST_F(BadWeights, MissingTensor) {
  write_edited([](HostTensors& t) { t.erase("head.aspp2.branch3.dw.bn.running_var"); });
  const std::string e = load_error();
  EXPECT_MENTIONS(e, "head.aspp2.branch3.dw.bn.running_var");
  EXPECT_MENTIONS(e, path_);
}

TEST_F(BadWeights, UnknownTensorIsReported) {
  write_edited([](HostTensors& t) { t["head.extra.weight"] = weights::FloatTensor{{2}, {1, 2}}; });
  EXPECT_MENTIONS(load_error(), "head.extra.weight");
  std::vector<std::string> unknown;
  EXPECT_NO_THROW(load_parameters(path_, preset_config(kPreset), &unknown));
  EXPECT_EQ(unknown, std::vector<std::string>{"head.extra.weight"});
}

TEST_F(BadWeights, HeaderOffsetsPastTheEnd) {
  write_with_header([](nlohmann::json& h) {
    // Move the last tensor of the data section 4 bytes beyond the end.
    std::string last;
    uint64_t last_end = 0;
    for (auto it = h.begin(); it != h.end(); ++it) {
      if (it.key() == "__metadata__") continue;
      const uint64_t end = it.value()["data_offsets"][1];
      if (end > last_end) {
        last_end = end;
        last = it.key();
      }
    }
    auto& off = h[last]["data_offsets"];
    off[0] = off[0].get<uint64_t>() + 4;
    off[1] = off[1].get<uint64_t>() + 4;
  });
  EXPECT_MENTIONS(load_error(), path_);
}

TEST_F(BadWeights, HeaderOffsetsOverlap) {
  write_with_header([](nlohmann::json& h) {
    // head.low.bn.bias claims the bytes of head.low.bn.weight (same size).
    h["head.low.bn.bias"]["data_offsets"] = h["head.low.bn.weight"]["data_offsets"];
  });
  EXPECT_MENTIONS(load_error(), path_);
}

TEST_F(BadWeights, HeaderSizeDisagreesWithShape) {
  write_with_header([](nlohmann::json& h) { h["head.low.bn.bias"]["shape"] = {7}; });
  const std::string e = load_error();
  EXPECT_MENTIONS(e, path_);
  EXPECT_MENTIONS(e, "head.low.bn.bias");
}

TEST_F(BadWeights, OtherPreset) {
  const std::string rtseg =
      std::string(FARSEE_TEST_DATA_DIR) + "/net/tiny-rtseg.weights.safetensors";
  write_bytes(read_bytes(rtseg));
  const std::string e = load_error();
  EXPECT_MENTIONS(e, "tiny-rtseg");
  EXPECT_MENTIONS(e, "tiny-paper");
}

// A NaN or Inf anywhere is an error naming the file, the tensor and the element, whatever the
// tensor's role (conv weight, BN statistic, bias); before, such files loaded silently and produced
// NaN logits (argmax: label 0 everywhere).
TEST_F(BadWeights, NanOrInfNamesTheTensor) {
  const struct {
    const char* tensor;
    size_t index;
    float value;
    const char* shown;
    const char* element;
  } cases[] = {
      {"head.low.conv.weight", 17, NAN, "NaN", "[1, 1, 0, 0]"},  // [6, 16, 1, 1]
      {"backbone.layer2.0.bn1.running_var", 3, INFINITY, "+Inf", "[3]"},
      {"head.up2.conv.bias", 0, -INFINITY, "-Inf", "[0]"},
  };
  for (const auto& c : cases) {
    write_edited([&](HostTensors& t) { t.at(c.tensor).data.at(c.index) = c.value; });
    const std::string e = load_error();
    EXPECT_MENTIONS(e, path_);
    EXPECT_MENTIONS(e, std::string("'") + c.tensor + "'");
    EXPECT_MENTIONS(e, c.shown);
    EXPECT_MENTIONS(e, c.element);
  }
}

// fp16 weights: a folded value beyond fp16's range (65504) would be packed as Inf; it is an error
// naming the tensor, the element and the value (fp32 keeps it and loads).
TEST_F(BadWeights, Fp16OverflowNamesTheTensorAndValue) {
  write_edited([](HostTensors& t) {
    auto& w = t.at("head.aspp1.project.conv.weight");
    w.data.at(5) = 3.0e6f;
  });
  EXPECT_EQ(load_error(DType::F32), "");
  for (Executor e : {Executor::Reference, Executor::Emu}) {
    const std::string err = load_error(DType::F16, e);
    EXPECT_MENTIONS(err, "'head.aspp1.project.conv.weight'");
    EXPECT_MENTIONS(err, "overflows fp16");
    EXPECT_MENTIONS(err, "65504");
    EXPECT_MENTIONS(err, "3e+06");  // the stored value (scaled by its BN into the packed value)
  }
}

TEST(InMemoryWeights, CheckedByTheNetwork) {
  const FarSeeConfig config = preset_config(kPreset);
  HostTensors params = random_parameters(config, 3);
  params.at("head.up2.conv.bias").shape = {4};
  params.at("head.up2.conv.bias").data.resize(4);
  try {
    FarSeeNet net(config, params, Context{}, DType::F32);
    FAIL() << "wrong shape accepted";
  } catch (const Error& e) {
    EXPECT_MENTIONS(std::string(e.what()), "head.up2.conv.bias");
  }
  params.erase("head.up2.conv.bias");
  try {
    FarSeeNet net(config, params, Context{}, DType::F32);
    FAIL() << "missing tensor accepted";
  } catch (const Error& e) {
    EXPECT_MENTIONS(std::string(e.what()), "head.up2.conv.bias");
  }
  params = random_parameters(config, 3);
  params.at("head.aspp2.project.bn.weight").data.at(2) = NAN;
  try {
    FarSeeNet net(config, params, Context{}, DType::F32);
    FAIL() << "NaN accepted";
  } catch (const Error& e) {
    EXPECT_MENTIONS(std::string(e.what()), "'head.aspp2.project.bn.weight' holds NaN at [2]");
  }
}

}  // namespace
}  // namespace farsee::net
