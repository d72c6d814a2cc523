#include "net/parameters.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "kernels/core/check.h"
#include "weights/batchnorm_fold.h"
#include "weights/conv_layout.h"

namespace farsee::net {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

const HostTensor& tensor(const HostTensors& params, const std::string& name) {
  auto it = params.find(name);
  FARSEE_REQUIRE(it != params.end(), "missing parameter tensor '" << name << "'");
  return it->second;
}

// splitmix64: a tiny, fully specified generator (std:: distributions differ between libraries).
struct Rng {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  double normal() {  // Box-Muller
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

// Throws naming the tensor (and `where`: the file) at its first NaN or Inf.
void check_finite(const std::string& name, const HostTensor& t, const std::string& where) {
  for (size_t i = 0; i < t.data.size(); ++i) {
    if (std::isfinite(t.data[i])) continue;
    // The index in the tensor's own shape, e.g. [3, 0, 1, 2].
    std::string index;
    size_t rest = i;
    for (size_t d = t.shape.size(); d-- > 0;) {
      const size_t extent = size_t(std::max<int64_t>(t.shape[d], 1));
      index = std::to_string(rest % extent) + (index.empty() ? "" : ", ") + index;
      rest /= extent;
    }
    FARSEE_REQUIRE(false, where << "parameter tensor '" << name << "' holds "
                                << (std::isnan(t.data[i]) ? "NaN"
                                    : t.data[i] > 0       ? "+Inf"
                                                          : "-Inf")
                                << " at [" << index << "] (shape " << weights::shape_text(t.shape)
                                << "): the weights are corrupt or diverged");
  }
}

}  // namespace

std::vector<std::string> check_parameters(const FarSeeConfig& config, const HostTensors& params) {
  std::set<std::string> expected;
  for (const ParamSpec& spec : parameter_specs(config)) {
    expected.insert(spec.name);
    auto it = params.find(spec.name);
    FARSEE_REQUIRE(it != params.end(), "missing parameter tensor '"
                                           << spec.name << "' (expected shape "
                                           << weights::shape_text(spec.shape) << ", preset "
                                           << config.preset << ")");
    FARSEE_REQUIRE(it->second.shape == spec.shape,
                   "parameter tensor '" << spec.name << "' has shape "
                                        << weights::shape_text(it->second.shape) << ", expected "
                                        << weights::shape_text(spec.shape) << " (preset "
                                        << config.preset << ")");
    FARSEE_REQUIRE(int64_t(it->second.data.size()) == weights::shape_numel(spec.shape),
                   "parameter tensor '" << spec.name << "' holds " << it->second.data.size()
                                        << " values for shape " << weights::shape_text(spec.shape));
    check_finite(spec.name, it->second, "");
  }
  std::vector<std::string> unknown;
  for (const auto& kv : params) {
    if (!expected.count(kv.first) && !ends_with(kv.first, ".num_batches_tracked")) {
      unknown.push_back(kv.first);
    }
  }
  return unknown;
}

HostTensors load_parameters(const std::string& path, const FarSeeConfig& config,
                            std::vector<std::string>* unknown) {
  const weights::SafetensorsFile file(path);
  const std::string file_preset = file.metadata_value("preset");
  FARSEE_REQUIRE(file_preset.empty() || file_preset == config.preset,
                 "weights file '" << path << "' was made for preset '" << file_preset
                                  << "', but the network is configured as preset '" << config.preset
                                  << "'");
  std::vector<weights::ExpectedTensor> expected;
  for (const ParamSpec& spec : parameter_specs(config)) expected.push_back({spec.name, spec.shape});
  // BN's num_batches_tracked is training state: tolerated, never reported.
  std::vector<std::string> extra;
  HostTensors params = weights::read_expected(file, expected, &extra);
  for (const auto& [name, t] : params) check_finite(name, t, "weights file '" + path + "': ");
  std::vector<std::string> really_unknown;
  for (const auto& name : extra) {
    if (!ends_with(name, ".num_batches_tracked")) really_unknown.push_back(name);
  }
  if (unknown) {
    *unknown = really_unknown;
  } else if (!really_unknown.empty()) {
    std::string list;
    for (const auto& n : really_unknown) list += (list.empty() ? "'" : ", '") + n + "'";
    FARSEE_REQUIRE(false, "weights file '" << path << "' holds " << really_unknown.size()
                                           << " tensor(s) that preset '" << config.preset
                                           << "' does not use: " << list);
  }
  return params;
}

HostTensors random_parameters(const FarSeeConfig& config, uint64_t seed) {
  Rng rng{seed};
  HostTensors out;
  for (const ParamSpec& spec : parameter_specs(config)) {
    HostTensor t;
    t.shape = spec.shape;
    t.data.resize(size_t(weights::shape_numel(spec.shape)));
    if (spec.shape.size() == 4) {  // conv weight: He-normal over fan-in
      const double stddev = std::sqrt(2.0 / double(spec.shape[1] * spec.shape[2] * spec.shape[3]));
      for (float& v : t.data) v = float(stddev * rng.normal());
    } else if (ends_with(spec.name, ".running_var")) {
      for (float& v : t.data) v = float(rng.uniform(0.5, 1.5));
    } else if (ends_with(spec.name, ".running_mean")) {
      for (float& v : t.data) v = float(rng.uniform(-0.1, 0.1));
    } else if (ends_with(spec.name, ".weight")) {  // BN gamma
      for (float& v : t.data) v = float(rng.uniform(0.5, 1.0));
    } else {  // BN beta, conv bias
      for (float& v : t.data) v = float(rng.uniform(-0.1, 0.1));
    }
    out.emplace(spec.name, std::move(t));
  }
  return out;
}

FoldedLayer fold_layer(const Layer& layer, const HostTensors& params) {
  FoldedLayer f;
  f.weight.reserve(size_t(layer.K) * layer.R * layer.S * layer.C);
  f.bias.reserve(size_t(layer.K));
  for (const ParamUnit& u : layer.units) {
    const std::string weight_name = u.conv + ".weight";
    const HostTensor& w = tensor(params, weight_name);
    // Depthwise [C][1][3][3] comes out as [C][3][3][1] = [C][3][3].
    std::vector<float> rows = weights::oihw_to_krsc(w.data, w.shape, weight_name);
    const float* conv_bias = u.conv_bias ? tensor(params, u.conv + ".bias").data.data() : nullptr;
    std::vector<float> bias(size_t(u.out_channels), 0.f);
    if (!u.bn.empty()) {
      const weights::FoldedBatchNorm bn = weights::fold_batchnorm(
          tensor(params, u.bn + ".weight").data.data(), tensor(params, u.bn + ".bias").data.data(),
          tensor(params, u.bn + ".running_mean").data.data(),
          tensor(params, u.bn + ".running_var").data.data(), u.out_channels, weights::kBatchNormEps,
          conv_bias);
      weights::scale_output_rows(rows, u.out_channels, bn.scale);
      bias = bn.bias;
    } else if (conv_bias) {
      bias.assign(conv_bias, conv_bias + u.out_channels);
    }
    f.weight.insert(f.weight.end(), rows.begin(), rows.end());
    f.bias.insert(f.bias.end(), bias.begin(), bias.end());
  }
  FARSEE_REQUIRE(f.bias.size() == size_t(layer.K),
                 "fold_layer: units of " << layer.name << " do not add up to K = " << layer.K);
  return f;
}

}  // namespace farsee::net
