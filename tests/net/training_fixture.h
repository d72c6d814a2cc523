// Shared by the training tests: the fixtures of tools/pytorch/make_train_fixtures.py
// (tests/fixtures/train/) and the initial weights both sides generate instead of storing them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "net/config.h"
#include "net/graph.h"
#include "net/parameters.h"
#include "net/trainer.h"
#include "tools/data/dataset.h"
#include "weights/safetensors.h"

namespace farsee::net::train_test {

// Every tensor of `a` equal bit for bit to the same-named one of `b`; else the first differing
// name in *first_diff.
inline bool bitwise_equal(const HostTensors& a, const HostTensors& b, std::string* first_diff) {
  for (const auto& [name, t] : a) {
    const std::vector<float>& o = b.at(name).data;
    if (o.size() != t.data.size() ||
        std::memcmp(o.data(), t.data.data(), o.size() * sizeof(float)) != 0) {
      *first_diff = name;
      return false;
    }
  }
  return true;
}

inline const std::string& train_data_dir() {
  static const std::string dir = std::string(FARSEE_TEST_DATA_DIR) + "/train/";
  return dir;
}

inline nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f);
}

// tools/pytorch/make_train_fixtures.py seeded_parameters: tensors in name-sorted order, one
// splitmix64 stream, every value lo + (hi - lo) * u in double rounded to float (conv weights
// He-uniform, BN weight and running_var U(0.5, 1.5), biases and running_mean U(-0.1, 0.1)).
inline HostTensors seeded_parameters(const FarSeeConfig& config, uint64_t seed) {
  std::vector<ParamSpec> specs = parameter_specs(config);
  std::sort(specs.begin(), specs.end(),
            [](const ParamSpec& a, const ParamSpec& b) { return a.name < b.name; });
  auto ends_with = [](const std::string& s, const char* suffix) {
    const std::string t(suffix);
    return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
  };
  uint64_t k = 0;
  HostTensors out;
  for (const ParamSpec& spec : specs) {
    double lo, hi;
    if (spec.shape.size() == 4) {
      const double a = std::sqrt(6.0 / double(spec.shape[1] * spec.shape[2] * spec.shape[3]));
      lo = -a;
      hi = a;
    } else if (ends_with(spec.name, ".running_var") || ends_with(spec.name, ".weight")) {
      lo = 0.5;
      hi = 1.5;
    } else {
      lo = -0.1;
      hi = 0.1;
    }
    HostTensor t;
    t.shape = spec.shape;
    t.data.resize(size_t(weights::shape_numel(spec.shape)));
    for (float& v : t.data) {
      ++k;
      uint64_t z = seed + k * 0x9e3779b97f4a7c15ull;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      z = z ^ (z >> 31);
      const double u = double(z >> 11) * (1.0 / 9007199254740992.0);
      v = float(lo + (hi - lo) * u);
    }
    out.emplace(spec.name, std::move(t));
  }
  return out;
}

// max |got - want| / max |want| over one tensor.
inline double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    err = std::max(err, std::fabs(double(got[i]) - double(want[i])));
    scale = std::max(scale, std::fabs(double(want[i])));
  }
  return scale > 0 ? err / scale : err;
}

// The tiny fixture's run (tiny-paper, 5 classes, its seeded initial weights), its first two
// training batches at h x w (batch 2, in file order, not augmented) and the trainer tests' SGD.
struct TinyRun {
  FarSeeConfig config;
  HostTensors init;
  std::vector<tools::Batch> batches;
  int n = 2, h = 64, w = 128;
  SgdArgs sgd;
};

inline TinyRun make_tiny_run(int h, int w) {
  TinyRun r;
  r.h = h;
  r.w = w;
  {
    const nlohmann::json m = read_json(train_data_dir() + "tiny.json");
    r.config = config_from_json_text(m["config"].dump());  // tiny-paper, 5 classes
    r.init = seeded_parameters(r.config, m["init_seed"].get<uint64_t>());
    tools::DatasetOptions d;
    d.input_h = r.h;
    d.input_w = r.w;
    d.batch = r.n;
    d.shuffle = false;
    d.augment = false;
    d.num_classes = r.config.num_classes;
    const tools::CityscapesDataset data(train_data_dir() + "cityscapes", "train", d);
    for (int k = 0; k < 2; ++k) r.batches.push_back(data.batch(k));
    r.sgd.lr = 0.01f;
    r.sgd.momentum = 0.9f;
    r.sgd.weight_decay = 1e-4f;
  }
  return r;
}

// make_tiny_run(h, w), made once per size in this process and shared by the tests (thread-safe).
inline const TinyRun& tiny_run(int h, int w) {
  static std::mutex m;
  static std::map<std::pair<int, int>, std::unique_ptr<const TinyRun>> runs;
  std::lock_guard<std::mutex> lock(m);
  std::unique_ptr<const TinyRun>& r = runs[{h, w}];
  if (!r) r = std::make_unique<const TinyRun>(make_tiny_run(h, w));
  return *r;
}

}  // namespace farsee::net::train_test
