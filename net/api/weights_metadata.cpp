// Reading and writing the settings a weights file carries (weights_metadata.h).
#include "net/api/weights_metadata.h"

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "kernels/core/check.h"

namespace farsee::net {

namespace {

// "256x512" -> {256, 512}; throws naming the file and the key otherwise.
void parse_input_size(const std::string& text, const std::string& where, WeightsMetadata& m) {
  const size_t x = text.find('x');
  char* end1 = nullptr;
  char* end2 = nullptr;
  const long h = x == std::string::npos ? 0 : std::strtol(text.c_str(), &end1, 10);
  const long w = x == std::string::npos ? 0 : std::strtol(text.c_str() + x + 1, &end2, 10);
  FARSEE_REQUIRE(
      x != std::string::npos && end1 == text.c_str() + x && *end2 == '\0' && h > 0 && w > 0 &&
          h <= 65536 && w <= 65536 && h % 32 == 0 && w % 32 == 0,
      where << ": metadata 'input_size' is '" << text << "', not HxW with sides multiples of 32");
  m.input_height = int(h);
  m.input_width = int(w);
}

std::string describe(const FarSeeConfig& c) {
  return "preset '" + c.preset + "', " + std::to_string(c.num_classes) + " classes";
}

}  // namespace

WeightsMetadata read_weights_metadata(const weights::SafetensorsFile& file) {
  const std::string where = "weights file '" + file.path() + "'";
  WeightsMetadata m;
  m.preset = file.metadata_value("preset");
  const std::string classes = file.metadata_value("num_classes");
  if (!classes.empty()) {
    char* end = nullptr;
    const long n = std::strtol(classes.c_str(), &end, 10);
    FARSEE_REQUIRE(*end == '\0' && n > 0 && n <= 255,
                   where << ": metadata 'num_classes' is '" << classes << "', not in 1..255");
    m.num_classes = int(n);
  }
  const std::string config = file.metadata_value("config");
  if (!config.empty()) {
    try {
      m.config = config_from_json_text(config);
    } catch (const std::exception& e) {
      FARSEE_REQUIRE(false,
                     where << ": metadata 'config' is not a network configuration: " << e.what());
    }
    FARSEE_REQUIRE(m.num_classes == 0 || m.num_classes == m.config->num_classes,
                   where << ": metadata 'num_classes' (" << m.num_classes << ") and 'config' ("
                         << m.config->num_classes << " classes) disagree");
    m.num_classes = m.config->num_classes;
  }
  const std::string size = file.metadata_value("input_size");
  if (!size.empty()) parse_input_size(size, where, m);
  const std::string names = file.metadata_value("class_names");
  if (!names.empty()) {
    const nlohmann::json j = nlohmann::json::parse(names, nullptr, false);
    bool ok = j.is_array();
    for (size_t i = 0; ok && i < j.size(); ++i) ok = j[i].is_string();
    FARSEE_REQUIRE(ok, where << ": metadata 'class_names' is not a JSON array of strings");
    for (const auto& n : j) m.class_names.push_back(n.get<std::string>());
    const int classes = m.num_classes ? m.num_classes : int(m.class_names.size());
    FARSEE_REQUIRE(int(m.class_names.size()) == classes,
                   where << ": metadata 'class_names' holds " << m.class_names.size()
                         << " names for a network of " << classes << " classes");
  }
  return m;
}

WeightsMetadata read_weights_metadata(const std::string& path) {
  return read_weights_metadata(weights::SafetensorsFile(path));
}

void set_weights_metadata(weights::SafetensorsWriter& w, const WeightsMetadata& m) {
  if (m.config) {
    w.set_metadata("preset", m.config->preset);
    w.set_metadata("num_classes", std::to_string(m.config->num_classes));
    w.set_metadata("config", config_to_json_text(*m.config));
  } else if (!m.preset.empty()) {
    w.set_metadata("preset", m.preset);
    if (m.num_classes > 0) w.set_metadata("num_classes", std::to_string(m.num_classes));
  }
  if (m.input_height > 0) {
    w.set_metadata("input_size",
                   std::to_string(m.input_height) + "x" + std::to_string(m.input_width));
  }
  if (!m.class_names.empty()) w.set_metadata("class_names", nlohmann::json(m.class_names).dump());
}

FarSeeConfig resolve_config(const std::string& config_file, const std::string& preset,
                            const WeightsMetadata& m, const std::string& weights_path,
                            int num_classes) {
  FarSeeConfig c;
  if (!config_file.empty()) {
    c = load_config_json(config_file);
  } else if (!preset.empty()) {
    c = preset_config(preset);
  } else if (m.config) {
    c = *m.config;
  } else {
    c = preset_config(m.preset.empty() ? "paper" : m.preset);
    if (m.num_classes > 0) c.num_classes = m.num_classes;
  }
  if (num_classes > 0) c.num_classes = num_classes;
  if (config_file.empty() && preset.empty() && num_classes <= 0) return c;  // the file's
  const std::string given = config_file.empty()
                                ? describe(c)
                                : "configuration '" + config_file + "' (" + describe(c) + ")";
  // What the file records of its network: its whole configuration, else its preset and classes.
  std::string recorded;
  bool same = true;
  if (m.config) {
    recorded = describe(*m.config);
    same = c == *m.config;
  } else {
    if (!m.preset.empty()) recorded = "made for preset '" + m.preset + "'";
    if (m.num_classes > 0) {
      recorded += (recorded.empty() ? "" : ", ") + std::to_string(m.num_classes) + " classes";
    }
    same = (m.preset.empty() || m.preset == c.preset) &&
           (m.num_classes == 0 || m.num_classes == c.num_classes);
  }
  FARSEE_REQUIRE(same, given << " is not the network of weights file '" << weights_path << "' ("
                             << recorded << ", from its metadata); leave it out to use the file's");
  return c;
}

std::pair<int, int> resolve_input_size(int height, int width, const WeightsMetadata& m) {
  constexpr int kDefaultHeight = 512, kDefaultWidth = 1024;
  if (height > 0 && width > 0) return {height, width};
  if (m.input_height > 0) return {m.input_height, m.input_width};
  return {kDefaultHeight, kDefaultWidth};
}

}  // namespace farsee::net
