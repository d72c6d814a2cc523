// The network fixtures written by tools/pytorch/make_net_fixtures.py (Python's safetensors writer)
// read back through the C++ reader: names in state_dict order, shapes, dtypes, metadata and
// per-tensor checksums agree with the fixture's JSON manifest. Also the cross-language check of the
// format.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "weights/safetensors.h"

namespace farsee::weights {
namespace {

using nlohmann::json;

json load_manifest(const std::string& preset) {
  const std::string path = std::string(FARSEE_TEST_DATA_DIR) + "/net/" + preset + ".json";
  std::ifstream f(path);
  EXPECT_TRUE(f) << "missing fixture manifest " << path
                 << " (regenerate: /usr/bin/python3 tools/pytorch/make_net_fixtures.py)";
  return json::parse(f);
}

class NetFixtureFiles : public ::testing::TestWithParam<std::string> {};

TEST_P(NetFixtureFiles, WeightsMatchTheManifest) {
  const json m = load_manifest(GetParam());
  const std::string path =
      std::string(FARSEE_TEST_DATA_DIR) + "/net/" + m["weights_file"].get<std::string>();
  SafetensorsFile f(path);
  EXPECT_EQ(f.metadata_value("preset"), GetParam());
  EXPECT_EQ(f.metadata_value("num_classes"), std::to_string(m["config"]["num_classes"].get<int>()));
  EXPECT_EQ(json::parse(f.metadata_value("config")), m["config"]);

  const json& params = m["parameters"];
  ASSERT_EQ(f.tensors().size(), params.size());
  std::vector<std::string> expected_names;
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string name = params[i]["name"].get<std::string>();
    expected_names.push_back(name);
    EXPECT_EQ(f.tensors()[i].name, name) << "state_dict order, index " << i;
    const TensorInfo& t = f.expect(name, params[i]["shape"].get<TensorShape>());
    EXPECT_EQ(t.dtype, FileDType::F32) << name;
    double sum = 0, abs_sum = 0;
    for (float v : f.read_floats(name)) {
      sum += v;
      abs_sum += std::fabs(v);
    }
    // Python summed the same float32 values in double in another order: only the rounding of
    // the double sums differs (~1e-16 relative per add over <= 300k values).
    const double tol = 1e-9 * (1.0 + params[i]["abs_sum"].get<double>());
    EXPECT_NEAR(sum, params[i]["sum"].get<double>(), tol) << name;
    EXPECT_NEAR(abs_sum, params[i]["abs_sum"].get<double>(), tol) << name;
  }
  EXPECT_TRUE(f.report_unexpected(expected_names).empty());
}

TEST_P(NetFixtureFiles, InputsAndOutputsMatchTheManifest) {
  const json m = load_manifest(GetParam());
  const std::string path =
      std::string(FARSEE_TEST_DATA_DIR) + "/net/" + m["io_file"].get<std::string>();
  SafetensorsFile f(path);
  EXPECT_EQ(f.metadata_value("layout"), "NCHW");
  const json& shapes = m["io_shapes"];
  EXPECT_EQ(f.tensors().size(), shapes.size());
  for (auto it = shapes.begin(); it != shapes.end(); ++it) {
    const std::vector<float> v = f.read_floats(it.key(), it.value().get<TensorShape>());
    float max_abs = 0;
    for (float x : v) {
      ASSERT_TRUE(std::isfinite(x)) << it.key();
      max_abs = std::max(max_abs, std::fabs(x));
    }
    EXPECT_FLOAT_EQ(max_abs, m["io_max_abs"][it.key()].get<float>()) << it.key();
  }
  const int n = m["config"]["num_classes"].get<int>();
  const auto size = m["input_size"].get<std::vector<int64_t>>();
  EXPECT_EQ(f.info("input").shape, (TensorShape{1, 3, size[0], size[1]}));
  EXPECT_EQ(f.info("logits").shape, (TensorShape{1, n, size[0], size[1]}));
}

INSTANTIATE_TEST_SUITE_P(Presets, NetFixtureFiles, ::testing::Values("tiny-paper", "tiny-rtseg"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s) c = c == '-' ? '_' : c;
                           return s;
                         });

}  // namespace
}  // namespace farsee::weights
