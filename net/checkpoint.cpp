#include "net/checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "kernels/core/check.h"
#include "net/json_number.h"
#include "weights/safetensors.h"

namespace farsee::tools {
namespace fs = std::filesystem;

namespace {
constexpr int kFormat = 1;
constexpr const char* kMomentumPrefix = "momentum.";
}  // namespace

namespace {

// A writer holding the network's metadata and `state` (weights and BN running statistics, in
// parameter_specs order) stored as `dtype`: a weight file, and the first part of a checkpoint.
weights::SafetensorsWriter weight_writer(const net::FarSeeConfig& config,
                                         const net::HostTensors& state, weights::FileDType dtype,
                                         const net::WeightsMetadata& trained) {
  constexpr float kHalfMax = 65504.0f;  // the largest finite fp16
  weights::SafetensorsWriter w;
  net::WeightsMetadata meta = trained;
  meta.config = config;
  net::set_weights_metadata(w, meta);
  w.set_metadata("generator", "farsee-train");
  for (const net::ParamSpec& spec : net::parameter_specs(config)) {
    const net::HostTensor& t = state.at(spec.name);
    if (dtype == weights::FileDType::F16) {
      for (size_t i = 0; i < t.data.size(); ++i) {
        FARSEE_REQUIRE(std::fabs(t.data[i]) <= kHalfMax, "--save-dtype fp16: tensor '"
                                                             << spec.name << "' holds " << t.data[i]
                                                             << " at index " << i
                                                             << ", beyond fp16's range (+-65504)");
      }
    }
    w.add(spec.name, t.shape, t.data, dtype);
  }
  return w;
}

}  // namespace

void write_weights(const std::string& path, const net::FarSeeConfig& config,
                   const net::HostTensors& state, weights::FileDType dtype,
                   const net::WeightsMetadata& trained) {
  FARSEE_REQUIRE(dtype == weights::FileDType::F32 || dtype == weights::FileDType::F16,
                 "write_weights: weights are stored as fp32 or fp16");
  weight_writer(config, state, dtype, trained).write(path);
}

void write_checkpoint(const std::string& path, const Checkpoint& c) {
  weights::SafetensorsWriter w =
      weight_writer(c.config, c.state, weights::FileDType::F32, c.trained);
  nlohmann::json meta;
  meta["format"] = kFormat;
  meta["step"] = c.step;
  meta["info"] = c.info;
  w.set_metadata("checkpoint", meta.dump());
  for (const net::ParamSpec& spec : net::parameter_specs(c.config)) {
    auto it = c.momenta.find(spec.name);
    if (it == c.momenta.end()) continue;  // running statistics have none
    w.add(kMomentumPrefix + spec.name, it->second.shape, it->second.data);
  }
  if (!path.empty()) {
    const fs::path parent = fs::path(path).parent_path();
    if (!parent.empty()) fs::create_directories(parent);
  }
  w.write(path);
}

Checkpoint read_checkpoint(const std::string& path) {
  const weights::SafetensorsFile file(path);
  const std::string meta_text = file.metadata_value("checkpoint");
  FARSEE_REQUIRE(!meta_text.empty(), "'" << path
                                         << "' is not a farsee-train checkpoint (no 'checkpoint' "
                                            "metadata)");
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(meta_text);
  } catch (const std::exception& e) {
    FARSEE_REQUIRE(false, "'" << path << "': unreadable checkpoint metadata: " << e.what());
  }
  const int format = meta.is_object() && meta.contains("format")
                         ? net::json_integer<int>(meta["format"], path + ": checkpoint format")
                         : 0;
  FARSEE_REQUIRE(format == kFormat, "'" << path << "': checkpoint format " << format
                                        << " is not the supported " << kFormat);
  Checkpoint c;
  c.config = net::config_from_json_text(file.metadata_value("config"));
  c.trained = net::read_weights_metadata(file);
  c.step = net::json_integer<int64_t>(meta.at("step"), path + ": checkpoint step");
  c.info = meta.value("info", nlohmann::json::object());
  std::vector<weights::ExpectedTensor> expected;
  const std::vector<net::ParamSpec> specs = net::parameter_specs(c.config);
  for (const net::ParamSpec& spec : specs) expected.push_back({spec.name, spec.shape});
  for (const net::ParamSpec& spec : specs) {
    auto ends_with = [&](const char* suffix) {
      const std::string t(suffix);
      return spec.name.size() >= t.size() &&
             spec.name.compare(spec.name.size() - t.size(), t.size(), t) == 0;
    };
    const bool running = ends_with(".running_mean") || ends_with(".running_var");
    if (!running) expected.push_back({kMomentumPrefix + spec.name, spec.shape});
  }
  std::map<std::string, weights::FloatTensor> all = weights::read_expected(file, expected, nullptr);
  for (auto& [name, t] : all) {
    if (name.compare(0, 9, kMomentumPrefix) == 0) {
      c.momenta.emplace(name.substr(9), std::move(t));
    } else {
      c.state.emplace(name, std::move(t));
    }
  }
  return c;
}

std::string checkpoint_file_name(int64_t step) {
  char name[64];
  std::snprintf(name, sizeof(name), "ckpt-%08lld.safetensors", static_cast<long long>(step));
  return name;
}

std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    const std::string prefix = "ckpt-", suffix = ".safetensors";
    if (name.size() <= prefix.size() + suffix.size() || name.compare(0, 5, prefix) != 0 ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    const std::string digits = name.substr(5, name.size() - 5 - suffix.size());
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) continue;
    out.emplace_back(std::stoll(digits), e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string resolve_checkpoint(const std::string& dir_or_file) {
  std::error_code ec;
  if (!fs::is_directory(dir_or_file, ec)) {
    FARSEE_REQUIRE(fs::exists(dir_or_file, ec),
                   "--resume: '" << dir_or_file << "' is neither a checkpoint file nor a folder");
    return dir_or_file;
  }
  const auto all = list_checkpoints(dir_or_file);
  FARSEE_REQUIRE(!all.empty(),
                 "--resume: folder '" << dir_or_file << "' holds no ckpt-*.safetensors checkpoint");
  return all.back().second;
}

std::vector<std::string> prune_checkpoints(const std::string& dir, int keep_last) {
  std::vector<std::string> removed;
  auto all = list_checkpoints(dir);
  const size_t keep = size_t(std::max(keep_last, 0));
  for (size_t i = 0; i + keep < all.size(); ++i) {
    std::error_code ec;
    if (fs::remove(all[i].second, ec)) removed.push_back(all[i].second);
  }
  return removed;
}

}  // namespace farsee::tools
