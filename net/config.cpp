#include "net/config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "kernels/core/check.h"
#include "net/json_number.h"

namespace farsee::net {

using nlohmann::json;

FarSeeConfig paper_config(int num_classes) {
  FarSeeConfig c;
  c.preset = "paper";
  c.num_classes = num_classes;
  return c;
}

FarSeeConfig rtseg_config(int num_classes) {
  FarSeeConfig c;
  c.preset = "rtseg";
  c.num_classes = num_classes;
  c.low_level_stage = 3;
  c.aspp1 = AsppConfig{256, {6, 12, 18}, 0};
  c.up1_factor = 2;
  c.up1_channels = 512;
  c.up1_bn_relu = false;
  c.low_channels = 48;
  c.aspp2 = AsppConfig{128, {6, 12}, 0};
  c.head_convs = {{1, 512}, {3, 512}};
  c.up2_factor = 4;
  c.logits_bias = false;
  c.align_corners = true;
  return c;
}

namespace {

// Mirrors tools/pytorch/reference (make_net_fixtures.py): the tiny variant divides every channel
// count by kTinyWidthDivisor and predicts kTinyClasses classes.
constexpr int kTinyWidthDivisor = 8;
constexpr int kTinyClasses = 5;

int divide_width(int channels, const char* what) {
  FARSEE_REQUIRE(channels % kTinyWidthDivisor == 0, "tiny_config: " << what << " = " << channels
                                                                    << " not divisible by "
                                                                    << kTinyWidthDivisor);
  return channels / kTinyWidthDivisor;
}

}  // namespace

FarSeeConfig tiny_config(const std::string& base_preset) {
  FarSeeConfig c;
  if (base_preset == "paper") {
    c = paper_config(kTinyClasses);
  } else if (base_preset == "rtseg") {
    c = rtseg_config(kTinyClasses);
  } else {
    FARSEE_REQUIRE(false,
                   "tiny_config: base preset '" << base_preset << "' is not one of paper, rtseg");
  }
  c.preset = "tiny-" + base_preset;
  c.stem_channels = divide_width(c.stem_channels, "stem_channels");
  for (int& ch : c.stage_channels) ch = divide_width(ch, "stage_channels");
  for (AsppConfig* a : {&c.aspp1, &c.aspp2}) {
    a->width = divide_width(a->width, "aspp width");
    if (a->project_channels > 0) a->project_channels = divide_width(a->project_channels, "project");
  }
  c.up1_channels = divide_width(c.up1_channels, "up1_channels");
  c.low_channels = divide_width(c.low_channels, "low_channels");
  for (auto& h : c.head_convs) h.channels = divide_width(h.channels, "head_convs");
  return c;
}

FarSeeConfig preset_config(const std::string& name) {
  if (name == "paper") return paper_config();
  if (name == "rtseg") return rtseg_config();
  if (name == "tiny-paper") return tiny_config("paper");
  if (name == "tiny-rtseg") return tiny_config("rtseg");
  FARSEE_REQUIRE(false,
                 "preset '" << name << "' is not one of paper, rtseg, tiny-paper, tiny-rtseg");
}

bool FarSeeConfig::operator==(const FarSeeConfig& o) const {
  auto aspp_eq = [](const AsppConfig& a, const AsppConfig& b) {
    return a.width == b.width && a.rates == b.rates && a.project_channels == b.project_channels;
  };
  return preset == o.preset && num_classes == o.num_classes && stem_channels == o.stem_channels &&
         stage_channels == o.stage_channels && stage_blocks == o.stage_blocks &&
         low_level_stage == o.low_level_stage && aspp_eq(aspp1, o.aspp1) &&
         up1_factor == o.up1_factor && up1_channels == o.up1_channels &&
         up1_bn_relu == o.up1_bn_relu && low_channels == o.low_channels &&
         aspp_eq(aspp2, o.aspp2) && head_convs == o.head_convs && up2_factor == o.up2_factor &&
         logits_bias == o.logits_bias && align_corners == o.align_corners;
}

void FarSeeConfig::validate() const {
  auto positive = [](int v, const char* what) {
    FARSEE_REQUIRE(v > 0, "FarSeeConfig: " << what << " = " << v << " must be positive");
  };
  positive(num_classes, "num_classes");
  FARSEE_REQUIRE(num_classes <= 255,
                 "FarSeeConfig: num_classes = " << num_classes << " (uint8 labels allow <= 255)");
  positive(stem_channels, "stem_channels");
  for (int i = 0; i < 4; ++i) {
    positive(stage_channels[i], "stage_channels[i]");
    positive(stage_blocks[i], "stage_blocks[i]");
  }
  FARSEE_REQUIRE(low_level_stage >= 1 && low_level_stage <= 3,
                 "FarSeeConfig: low_level_stage = " << low_level_stage << " must be 1, 2 or 3");
  for (const AsppConfig* a : {&aspp1, &aspp2}) {
    positive(a->width, "aspp width");
    FARSEE_REQUIRE(!a->rates.empty(), "FarSeeConfig: an F-ASPP block needs at least one rate");
    for (int r : a->rates) positive(r, "aspp rate");
    FARSEE_REQUIRE(a->project_channels >= 0,
                   "FarSeeConfig: aspp project_channels = " << a->project_channels);
  }
  positive(up1_factor, "up1_factor");
  positive(up1_channels, "up1_channels");
  positive(low_channels, "low_channels");
  positive(up2_factor, "up2_factor");
  for (const auto& h : head_convs) {
    FARSEE_REQUIRE(h.kernel == 1 || h.kernel == 3,
                   "FarSeeConfig: head conv kernel " << h.kernel << " must be 1 or 3");
    positive(h.channels, "head conv channels");
  }
  // The sub-pixel x up1_factor must bring the stride-32 map exactly to the low-level stride, and
  // the logits stride must be a whole number.
  FARSEE_REQUIRE(high_level_stride() == low_level_stride() * up1_factor,
                 "FarSeeConfig: up1_factor " << up1_factor << " maps stride 32 to stride "
                                             << high_level_stride() / up1_factor
                                             << ", but the low-level map (layer" << low_level_stage
                                             << ") has stride " << low_level_stride());
  FARSEE_REQUIRE(low_level_stride() % up2_factor == 0,
                 "FarSeeConfig: up2_factor " << up2_factor
                                             << " does not divide the low-level stride "
                                             << low_level_stride());
}

// ---- JSON ----

namespace {

json aspp_to_json(const AsppConfig& a) {
  return json{{"width", a.width}, {"rates", a.rates}, {"project_channels", a.project_channels}};
}

// Every number of an int field (or of its array) whole and in int's range, naming the field
// (get<int>() itself would cast 1e40 or wrap 2^40).
void require_ints(const json& v, const std::string& what) {
  if (!v.is_array()) {
    json_integer<int>(v, what);
    return;
  }
  for (size_t i = 0; i < v.size(); ++i)
    json_integer<int>(v[i], what + "[" + std::to_string(i) + "]");
}

template <typename T>
T get_field(const json& j, const char* key, const std::string& where) {
  if constexpr (!std::is_same_v<T, bool> && !std::is_same_v<T, std::string>) {
    if (j.is_object() && j.contains(key)) {
      require_ints(j.at(key), where + ": field '" + key + "'");
    }
  }
  try {
    return j.at(key).get<T>();
  } catch (const json::exception& e) {
    FARSEE_REQUIRE(false, where << ": field '" << key << "': " << e.what());
  }
}

void reject_unknown_keys(const json& j, const std::set<std::string>& known,
                         const std::string& where) {
  FARSEE_REQUIRE(j.is_object(), where << ": expected a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    FARSEE_REQUIRE(known.count(it.key()), where << ": unknown field '" << it.key() << "'");
  }
}

AsppConfig aspp_from_json(const json& j, AsppConfig a, const std::string& where) {
  reject_unknown_keys(j, {"width", "rates", "project_channels"}, where);
  if (j.contains("width")) a.width = get_field<int>(j, "width", where);
  if (j.contains("rates")) a.rates = get_field<std::vector<int>>(j, "rates", where);
  if (j.contains("project_channels")) {
    a.project_channels = get_field<int>(j, "project_channels", where);
  }
  return a;
}

}  // namespace

std::string config_to_json_text(const FarSeeConfig& c) {
  json head = json::array();
  for (const auto& h : c.head_convs)
    head.push_back({{"kernel", h.kernel}, {"channels", h.channels}});
  json j{{"preset", c.preset},
         {"num_classes", c.num_classes},
         {"stem_channels", c.stem_channels},
         {"stage_channels", c.stage_channels},
         {"stage_blocks", c.stage_blocks},
         {"low_level_stage", c.low_level_stage},
         {"aspp1", aspp_to_json(c.aspp1)},
         {"up1_factor", c.up1_factor},
         {"up1_channels", c.up1_channels},
         {"up1_bn_relu", c.up1_bn_relu},
         {"low_channels", c.low_channels},
         {"aspp2", aspp_to_json(c.aspp2)},
         {"head_convs", head},
         {"up2_factor", c.up2_factor},
         {"logits_bias", c.logits_bias},
         {"align_corners", c.align_corners}};
  return j.dump(2);
}

FarSeeConfig config_from_json_text(const std::string& text) {
  const std::string where = "FarSee config JSON";
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    FARSEE_REQUIRE(false, where << ": " << e.what());
  }
  reject_unknown_keys(
      j,
      {"preset", "num_classes", "stem_channels", "stage_channels", "stage_blocks",
       "low_level_stage", "aspp1", "up1_factor", "up1_channels", "up1_bn_relu", "low_channels",
       "aspp2", "head_convs", "up2_factor", "logits_bias", "align_corners"},
      where);
  // Start from the named preset; every other field overrides it.
  FarSeeConfig c = preset_config(j.contains("preset") ? get_field<std::string>(j, "preset", where)
                                                      : std::string("paper"));
  if (j.contains("num_classes")) c.num_classes = get_field<int>(j, "num_classes", where);
  if (j.contains("stem_channels")) c.stem_channels = get_field<int>(j, "stem_channels", where);
  if (j.contains("stage_channels")) {
    c.stage_channels = get_field<std::array<int, 4>>(j, "stage_channels", where);
  }
  if (j.contains("stage_blocks")) {
    c.stage_blocks = get_field<std::array<int, 4>>(j, "stage_blocks", where);
  }
  if (j.contains("low_level_stage"))
    c.low_level_stage = get_field<int>(j, "low_level_stage", where);
  if (j.contains("aspp1")) c.aspp1 = aspp_from_json(j["aspp1"], c.aspp1, where + " aspp1");
  if (j.contains("up1_factor")) c.up1_factor = get_field<int>(j, "up1_factor", where);
  if (j.contains("up1_channels")) c.up1_channels = get_field<int>(j, "up1_channels", where);
  if (j.contains("up1_bn_relu")) c.up1_bn_relu = get_field<bool>(j, "up1_bn_relu", where);
  if (j.contains("low_channels")) c.low_channels = get_field<int>(j, "low_channels", where);
  if (j.contains("aspp2")) c.aspp2 = aspp_from_json(j["aspp2"], c.aspp2, where + " aspp2");
  if (j.contains("head_convs")) {
    const json& h = j["head_convs"];
    FARSEE_REQUIRE(h.is_array(), where << ": head_convs must be an array");
    c.head_convs.clear();
    for (const json& e : h) {
      reject_unknown_keys(e, {"kernel", "channels"}, where + " head_convs");
      c.head_convs.push_back({get_field<int>(e, "kernel", where + " head_convs"),
                              get_field<int>(e, "channels", where + " head_convs")});
    }
  }
  if (j.contains("up2_factor")) c.up2_factor = get_field<int>(j, "up2_factor", where);
  if (j.contains("logits_bias")) c.logits_bias = get_field<bool>(j, "logits_bias", where);
  if (j.contains("align_corners")) c.align_corners = get_field<bool>(j, "align_corners", where);
  c.validate();
  return c;
}

FarSeeConfig load_config_json(const std::string& path) {
  std::ifstream f(path);
  FARSEE_REQUIRE(f, "cannot open config file '" << path << "'");
  std::stringstream s;
  s << f.rdbuf();
  try {
    return config_from_json_text(s.str());
  } catch (const Error& e) {
    FARSEE_REQUIRE(false, path << ": " << e.what());
  }
}

}  // namespace farsee::net
