// farsee-eval: the Cityscapes evaluation (cityscapesScripts' evalPixelLevelSemanticLabeling
// protocol, tools/cityscapes/metrics.h) of label maps or of FarSee-Net itself.
//
// Ground truth: every <data>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png.
//   --predictions DIR: one single-channel 8-bit PNG per ground-truth image, named
//     <city>_<seq>_<frame>*.png, anywhere under DIR (farsee-infer's *_color.png and *_overlay.png
//     pictures are skipped); --ids train: trainIds 0..18 (255: void, a wrong prediction on an
//     evaluated pixel); --ids label: Cityscapes labelIds 0..33, mapped to trainIds.
//     Every prediction file is checked before anything is read: a ground-truth image without a
//     prediction, two predictions for one image, and a PNG that belongs to no ground-truth image
//     are errors naming the files; so are a prediction of another size than its ground truth and
//     an id out of range (naming the file, the pixel and the id).
//   --weights FILE: runs the network on <data>/leftImg8bit/<split>/<city>/*_leftImg8bit.png, each
//     resized to --input-size as farsee-infer does, labels at the ground truth's full size.
// --data FILE: a pack of the split (tools/data/pack.h) instead: its trainId labels are the ground
//   truth (frames named by the label files recorded in it), its images the network's input.
// Prints the per-class IoU table, the mIoU, the pixel accuracy and the confusion matrix;
// --json FILE writes {"miou", "iou": {class name: IoU or null}, "accuracy"} (fractions).
#include "tools/eval/eval_cli.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <tuple>

#include "kernels/core/check.h"
#include "net/api/weights_metadata.h"
#include "net/farsee_net.h"
#include "net/preprocess.h"
#include "tools/cityscapes/metrics.h"
#include "tools/cli/flags.h"
#include "tools/data/dataset.h"
#include "tools/data/image_io.h"
#include "tools/data/pack.h"
#include "tools/eval/evaluate.h"

namespace farsee::tools {
namespace {

namespace fs = std::filesystem;

const char* kUsage =
    R"(usage: farsee-eval --data DIR|FILE [--split val] (--predictions DIR [--ids train|label] |
                   --weights FILE [--preset P] [--input-size HxW] [--executor E]) [--json FILE]

Cityscapes evaluation (the protocol of cityscapesScripts' evalPixelLevelSemanticLabeling: 19
classes, void ground-truth pixels ignored, a class absent from both ground truth and predictions
left out of the mean) against DIR/gtFine/<split>/<city>/*_gtFine_labelIds.png.

  --data DIR|FILE       Cityscapes root (gtFine/, and leftImg8bit/ for --weights), or a pack
                        of the split (farsee-pack; packed with --size: labels at that size)
  --split NAME          val (default) | train | test | ...
  --predictions DIR     label PNGs named <city>_<seq>_<frame>*.png, anywhere under DIR, one per
                        ground-truth image (*_color.png and *_overlay.png are skipped)
  --ids train|label     what the predictions hold: trainIds 0..18, 255 void (default; what
                        farsee-infer writes) or Cityscapes labelIds 0..33 (the submission format)
  --weights FILE        evaluate FarSee-Net with these safetensors weights instead
  --preset NAME         paper | rtseg | tiny-paper | tiny-rtseg (default: the network the
                        weights file records, else paper)   (with --weights)
  --num-classes N       the network's classes if not the preset's (farsee-train --num-classes);
                        must be 19 for the Cityscapes evaluation   (with --weights)
  --input-size HxW      network input size, multiples of 32 (default: the size the weights file
                        was trained at, else 512x1024)  (with --weights)
                        A --preset or --num-classes that contradicts the network the weights
                        file records is an error naming both.
  --executor E          auto (default: cuda if usable, else cpu) | cuda | cpu | reference
                        (with --weights)
  --json FILE           also write {"miou", "iou": {class: IoU or null}, "accuracy"}
  --help                this text
)";

constexpr const char* kGtSuffix = "_gtFine_labelIds.png";

struct Options {
  std::string data, split = "val";
  std::string predictions;
  bool label_ids = false;
  std::string weights, preset;   // preset empty: the weights file's (its metadata), else paper
  int num_classes = 0;           // 0: the preset's
  int input_h = 0, input_w = 0;  // 0 x 0: the weights file's, else 512x1024
  std::string executor = "auto";
  std::string json;
  bool ids_given = false, network_flag_given = false;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// nullopt after --help (the usage printed).
std::optional<Options> parse(const std::vector<std::string>& args) {
  Options o;
  Flags flags("farsee-eval", kUsage);
  flags.text("--data", o.data);
  flags.text("--split", o.split);
  flags.text("--predictions", o.predictions);
  flags.value("--ids", [&](const std::string& v) {
    FARSEE_REQUIRE(v == "train" || v == "label", "--ids: '" << v << "' is not train or label");
    o.label_ids = v == "label";
    o.ids_given = true;
  });
  flags.text("--weights", o.weights);
  // The network's flags, which --predictions refuses.
  auto network = [&](const std::string& name, std::function<void(const std::string&)> set) {
    flags.value(name, [&o, set](const std::string& v) {
      set(v);
      o.network_flag_given = true;
    });
  };
  network("--preset", [&](const std::string& v) { o.preset = v; });
  network("--num-classes",
          [&](const std::string& v) { o.num_classes = parse_int(v, "--num-classes", 1); });
  network("--input-size", [&](const std::string& v) {
    std::tie(o.input_h, o.input_w) = parse_size(v, "--input-size");
  });
  network("--executor", [&](const std::string& v) { o.executor = v; });
  flags.text("--json", o.json);
  if (!flags.parse(args)) return std::nullopt;
  FARSEE_REQUIRE(!o.data.empty(), "missing --data DIR (the Cityscapes root; see --help)");
  FARSEE_REQUIRE(o.predictions.empty() != o.weights.empty(),
                 (o.predictions.empty() ? "give --predictions DIR or --weights FILE"
                                        : "--predictions and --weights exclude each other"));
  FARSEE_REQUIRE(o.weights.empty() || !o.ids_given,
                 "--ids applies to --predictions only (the network gives trainIds)");
  FARSEE_REQUIRE(o.predictions.empty() || !o.network_flag_given,
                 "--preset, --num-classes, --input-size and --executor apply to --weights only");
  FARSEE_REQUIRE(o.input_h % 32 == 0 && o.input_w % 32 == 0,
                 "--input-size " << o.input_h << "x" << o.input_w
                                 << ": height and width must be multiples of 32");
  return o;
}

// "<city>_<seq>_<frame>" of a file name: up to the third '_' (or the extension).
std::string frame_key(const std::string& filename) {
  size_t pos = 0;
  for (int k = 0; k < 3; ++k) {
    pos = filename.find('_', pos);
    if (pos == std::string::npos) return filename.substr(0, filename.rfind('.'));
    if (k < 2) ++pos;
  }
  return filename.substr(0, pos);
}

struct GroundTruth {
  std::string path;
  std::string prefix;  // <city>_<seq>_<frame>
};

std::vector<GroundTruth> list_ground_truth(const std::string& root, const std::string& split) {
  const fs::path dir = fs::path(root) / "gtFine" / split;
  std::error_code ec;
  FARSEE_REQUIRE(fs::is_directory(dir, ec),
                 "--data: '" << dir.string()
                             << "' is not a directory (expected the Cityscapes layout "
                                "gtFine/<split>/<city>/*"
                             << kGtSuffix << ")");
  std::vector<GroundTruth> out;
  for (const auto& city : fs::directory_iterator(dir)) {
    if (!city.is_directory()) continue;
    for (const auto& f : fs::directory_iterator(city.path())) {
      const std::string name = f.path().filename().string();
      if (!f.is_regular_file() || !ends_with(name, kGtSuffix)) continue;
      out.push_back({f.path().string(), frame_key(name)});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const GroundTruth& a, const GroundTruth& b) { return a.path < b.path; });
  FARSEE_REQUIRE(!out.empty(),
                 "--data: no *" << kGtSuffix << " under '" << dir.string() << "/<city>/'");
  return out;
}

// A pack's samples as ground truth: named by the label files recorded in it.
std::vector<GroundTruth> pack_ground_truth(const SampleSource& pack) {
  std::vector<GroundTruth> out;
  for (size_t i = 0; i < pack.size(); ++i) {
    const std::string label = pack.paths(i).label;
    out.push_back({label, frame_key(fs::path(label).filename().string())});
  }
  return out;
}

bool is_png(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  return ext == ".png";
}

// Prediction file for every ground-truth image (same order), or an error naming the files.
std::vector<std::string> match_predictions(const std::string& dir,
                                           const std::vector<GroundTruth>& gts,
                                           const std::string& split) {
  std::error_code ec;
  FARSEE_REQUIRE(fs::is_directory(dir, ec), "--predictions: '" << dir << "' is not a directory");
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < gts.size(); ++i) {
    const auto [it, fresh] = index.emplace(gts[i].prefix, i);
    FARSEE_REQUIRE(fresh, "ground truth '" << gts[i].path << "' and '" << gts[it->second].path
                                           << "' are the same frame " << gts[i].prefix);
  }
  std::vector<std::string> found;
  for (const auto& f : fs::recursive_directory_iterator(dir)) {
    const std::string name = f.path().filename().string();
    if (!f.is_regular_file() || !is_png(f.path())) continue;
    if (ends_with(name, "_color.png") || ends_with(name, "_overlay.png")) continue;
    found.push_back(f.path().string());
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> matched(gts.size());
  for (const std::string& path : found) {
    const std::string key = frame_key(fs::path(path).filename().string());
    const auto it = index.find(key);
    FARSEE_REQUIRE(it != index.end(), "extra prediction file '"
                                          << path << "': no ground-truth image '" << key
                                          << kGtSuffix << "' in split '" << split
                                          << "' (expected names <city>_<seq>_<frame>*.png)");
    std::string& slot = matched[it->second];
    FARSEE_REQUIRE(slot.empty(), "duplicate prediction files for ground truth '"
                                     << gts[it->second].path << "': '" << slot << "' and '" << path
                                     << "'");
    slot = path;
  }
  size_t missing = 0;
  std::string first;
  for (size_t i = 0; i < gts.size(); ++i) {
    if (!matched[i].empty()) continue;
    if (missing++ == 0) first = gts[i].path;
  }
  FARSEE_REQUIRE(missing == 0,
                 "missing prediction file: nothing under '"
                     << dir << "' is named " << frame_key(fs::path(first).filename().string())
                     << "*.png for ground truth '" << first << "' (" << missing << " of "
                     << gts.size() << " ground-truth images have no prediction)");
  return matched;
}

// A single-channel 8-bit PNG (what cityscapesScripts reads as a 2-D array).
Image read_label_png(const std::string& path, const char* what) {
  const ImageInfo info = read_image_info(path);
  FARSEE_REQUIRE(info.channels == 1 && info.bit_depth <= 8,
                 what << " '" << path << "' is not a single-channel 8-bit PNG (it has "
                      << info.channels << " channel(s)" << (info.bit_depth > 8 ? ", 16 bits" : "")
                      << "): label maps hold one id per pixel");
  return read_grey(path);
}

// Cityscapes labelIds -> trainIds; an id >= 34 is an error naming the file and pixel.
std::vector<uint8_t> label_to_train(const Image& im, const std::string& path, const char* what) {
  const auto& table = cityscapes_train_ids();
  std::vector<uint8_t> out(im.data.size());
  for (size_t i = 0; i < out.size(); ++i) {
    const int id = im.data[i];
    FARSEE_REQUIRE(id < kCityscapesLabelIds,
                   what << " '" << path << "' holds labelId " << id << " at pixel (y "
                        << i / size_t(im.width) << ", x " << i % size_t(im.width)
                        << "); Cityscapes labelIds are 0.." << kCityscapesLabelIds - 1);
    out[i] = table[size_t(id)];
  }
  return out;
}

void check_train_ids(const std::vector<uint8_t>& ids, int width, const std::string& path) {
  for (size_t i = 0; i < ids.size(); ++i) {
    const int id = ids[i];
    FARSEE_REQUIRE(id < kCityscapesClasses || id == kIgnoreId,
                   "prediction '" << path << "' holds trainId " << id << " at pixel (y "
                                  << i / size_t(width) << ", x " << i % size_t(width)
                                  << "); trainIds are 0.." << kCityscapesClasses - 1
                                  << " or 255 (with --ids label: labelIds 0.."
                                  << kCityscapesLabelIds - 1 << ")");
  }
}

// Ground truth i as trainIds: its labelIds PNG, or a pack's sample (already trainIds).
Image ground_truth_ids(const GroundTruth& gt, const SampleSource* pack, size_t i) {
  if (pack) return pack->label(i, kCityscapesClasses);
  Image image = read_label_png(gt.path, "ground truth");
  image.data = label_to_train(image, gt.path, "ground truth");
  return image;
}

void add_predictions(const Options& o, const std::vector<GroundTruth>& gts,
                     const SampleSource* pack, ConfusionMatrix& matrix) {
  const std::vector<std::string> preds = match_predictions(o.predictions, gts, o.split);
  for (size_t i = 0; i < gts.size(); ++i) {
    const Image gt_image = ground_truth_ids(gts[i], pack, i);
    const Image pred_image = read_label_png(preds[i], "prediction");
    FARSEE_REQUIRE(pred_image.width == gt_image.width && pred_image.height == gt_image.height,
                   "prediction '" << preds[i] << "' is " << pred_image.height << "x"
                                  << pred_image.width << " but its ground truth '" << gts[i].path
                                  << "' is " << gt_image.height << "x" << gt_image.width
                                  << " (HxW)");
    const std::vector<uint8_t>& gt = gt_image.data;
    std::vector<uint8_t> pred;
    if (o.label_ids) {
      pred = label_to_train(pred_image, preds[i], "prediction");
    } else {
      pred = pred_image.data;
      check_train_ids(pred, pred_image.width, preds[i]);
    }
    matrix.add(gt.data(), pred.data(), gt.size());
  }
  std::printf("farsee-eval: %zu prediction(s) from %s (%s) against %s\n", gts.size(),
              o.predictions.c_str(), o.label_ids ? "labelIds" : "trainIds",
              pack ? pack->describe().c_str() : (o.data + "/gtFine/" + o.split).c_str());
}

// Every ground-truth image is evaluated: each needs its camera image.
void check_every_label_has_an_image(const Options& o, const std::vector<GroundTruth>& gts,
                                    const std::vector<SamplePaths>& samples) {
  std::vector<std::string> labels_with_image;
  for (const SamplePaths& s : samples)
    labels_with_image.push_back(fs::path(s.label).lexically_normal().string());
  std::sort(labels_with_image.begin(), labels_with_image.end());
  for (const GroundTruth& g : gts) {
    FARSEE_REQUIRE(std::binary_search(labels_with_image.begin(), labels_with_image.end(),
                                      fs::path(g.path).lexically_normal().string()),
                   "ground truth '"
                       << g.path << "' has no image " << g.prefix << "_leftImg8bit.png under '"
                       << (fs::path(o.data) / "leftImg8bit" / o.split).string() << "/<city>/'");
  }
}

// One image as a batch of one: the network input and the ground truth at its own size.
Batch network_sample(const Options& o, const SamplePaths& s) {
  const Image image = read_rgb(s.image);
  const Image gt_image = read_label_png(s.label, "ground truth");
  Batch b;
  b.n = 1;
  b.h = o.input_h;
  b.w = o.input_w;
  b.label_h = gt_image.height;
  b.label_w = gt_image.width;
  b.labels = label_to_train(gt_image, s.label, "ground truth");
  b.input.resize(size_t(o.input_h) * o.input_w * 3);
  // The network input as farsee-infer makes it (net/preprocess.h); labels at the ground truth's
  // size.
  net::preprocess_rgb8(image.data.data(), image.height, image.width, b.input.data(), o.input_h,
                       o.input_w);
  return b;
}

// The network and input size of --weights: the flags given, else the settings the weights file
// records (net/api/weights_metadata.h), else paper at 512x1024; a flag that contradicts the
// file's network is an error naming both. Sets o's input size.
net::FarSeeConfig network_of(Options& o) {
  const net::WeightsMetadata m = net::read_weights_metadata(o.weights);
  const net::FarSeeConfig config = net::resolve_config("", o.preset, m, o.weights, o.num_classes);
  std::tie(o.input_h, o.input_w) = net::resolve_input_size(o.input_h, o.input_w, m);
  return config;
}

// The same from a pack's sample (its labels already trainIds).
Batch network_sample(const Options& o, const SampleSource& pack, size_t i) {
  const DecodedSample d = pack.decode(i, kCityscapesClasses);
  Batch b;
  b.n = 1;
  b.h = o.input_h;
  b.w = o.input_w;
  b.label_h = d.label.height;
  b.label_w = d.label.width;
  b.labels = d.label.data;
  b.input.resize(size_t(o.input_h) * o.input_w * 3);
  net::preprocess_rgb8(d.image.data.data(), d.image.height, d.image.width, b.input.data(),
                       o.input_h, o.input_w);
  return b;
}

void add_network(const Options& given, const std::vector<GroundTruth>& gts,
                 const SampleSource* pack, ConfusionMatrix& matrix) {
  Options o = given;
  // A bad --executor is refused before anything is read (as by every program).
  std::string note;
  const Executor executor = choose_executor(o.executor, &note);
  if (!note.empty()) std::cerr << "farsee-eval: " << note << "\n";
  const net::FarSeeConfig config = network_of(o);
  std::vector<SamplePaths> samples;
  for (size_t i = 0; pack && i < pack->size(); ++i) samples.push_back(pack->paths(i));
  if (!pack) samples = list_cityscapes(o.data, o.split);
  if (!pack) check_every_label_has_an_image(o, gts, samples);
  FARSEE_REQUIRE(config.num_classes == kCityscapesClasses,
                 "preset " << config.preset << " has " << config.num_classes
                           << " classes; the Cityscapes evaluation needs " << kCityscapesClasses);
  std::vector<std::string> unknown;
  net::HostTensors params = net::load_parameters(o.weights, config, &unknown);
  for (const auto& name : unknown) {
    std::cerr << "farsee-eval: warning: " << o.weights << ": unused tensor '" << name << "'\n";
  }
  Context ctx;
  ctx.executor = executor;
  net::FarSeeNet model(config, params, ctx, DType::F32);
  params.clear();
  std::printf("farsee-eval: preset %s, input %dx%d, executor %s, %zu image(s) of %s/%s\n",
              config.preset.c_str(), o.input_h, o.input_w, executor_name(executor), samples.size(),
              o.data.c_str(), o.split.c_str());
  auto t0 = std::chrono::steady_clock::now();
  auto next = [&](int64_t k) {
    t0 = std::chrono::steady_clock::now();
    return pack ? network_sample(o, *pack, size_t(k)) : network_sample(o, samples[size_t(k)]);
  };
  auto print = [&](int64_t k, const ConfusionMatrix& one) {
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const auto miou = one.mean_iou();
    std::printf("%s: mIoU %s, %.1f ms\n", samples[size_t(k)].image.c_str(),
                miou ? std::to_string(*miou).c_str() : "n/a", ms);
    std::fflush(stdout);
  };
  matrix.merge(evaluate_network(model, int64_t(samples.size()), kCityscapesClasses, next, print));
}

std::string fraction(const std::optional<double>& v) {
  if (!v) return "   n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%6.4f", *v);
  return buf;
}

void report(const ConfusionMatrix& m) {
  const auto& names = cityscapes_class_names();
  const auto ious = m.ious();
  std::printf("\n%-14s %6s\n", "class", "IoU");
  for (int k = 0; k < kCityscapesClasses; ++k) {
    std::printf("%-14s %s\n", names[size_t(k)], fraction(ious[size_t(k)]).c_str());
  }
  int defined = 0;
  for (const auto& v : ious) defined += v ? 1 : 0;
  std::printf("%-14s %s  (mean over %d classes)\n", "mIoU", fraction(m.mean_iou()).c_str(),
              defined);
  std::printf("%-14s %s  (%llu evaluated pixels)\n", "pixel accuracy",
              fraction(m.pixel_accuracy()).c_str(), static_cast<unsigned long long>(m.total()));
  std::printf("\nconfusion matrix (rows: ground truth, columns: prediction; pixels)\n%-14s", "");
  for (int p = 0; p <= kCityscapesClasses; ++p) {
    std::printf(" %10d", p < kCityscapesClasses ? p : int(kIgnoreId));  // trainIds; 255: void
  }
  std::printf("\n%-14s", "");
  for (int p = 0; p <= kCityscapesClasses; ++p) {
    const std::string n = p < kCityscapesClasses ? names[size_t(p)] : "void";
    std::printf(" %10s", n.substr(0, 10).c_str());
  }
  std::printf("\n");
  for (int g = 0; g < kCityscapesClasses; ++g) {
    std::printf("%2d %-11s", g, std::string(names[size_t(g)]).substr(0, 11).c_str());
    for (int p = 0; p <= kCityscapesClasses; ++p) {
      std::printf(" %10llu", static_cast<unsigned long long>(m.count(g, p)));
    }
    std::printf("\n");
  }
}

void write_json(const std::string& path, const ConfusionMatrix& m) {
  const auto opt = [](const std::optional<double>& v) {
    return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr);
  };
  nlohmann::ordered_json j;
  j["miou"] = opt(m.mean_iou());
  nlohmann::ordered_json iou = nlohmann::ordered_json::object();
  const auto ious = m.ious();
  for (int k = 0; k < kCityscapesClasses; ++k) {
    iou[cityscapes_class_names()[size_t(k)]] = opt(ious[size_t(k)]);
  }
  j["iou"] = iou;
  j["accuracy"] = opt(m.pixel_accuracy());
  const std::string text = j.dump(2) + "\n";
  write_file_atomic(path, text.data(), text.size());
}

}  // namespace

int eval_main(const std::vector<std::string>& args) {
  return run_program("farsee-eval", [&] {
    const std::optional<Options> parsed = parse(args);
    if (!parsed) return 0;
    const Options& o = *parsed;
    ConfusionMatrix matrix;
    // --data: a Cityscapes folder or a pack of the split (tools/data/pack.h).
    const std::shared_ptr<const SampleSource> pack =
        is_pack_file(o.data) ? open_samples(o.data, o.split) : nullptr;
    const std::vector<GroundTruth> gts =
        pack ? pack_ground_truth(*pack) : list_ground_truth(o.data, o.split);
    if (!o.predictions.empty()) {
      add_predictions(o, gts, pack.get(), matrix);
    } else {
      add_network(o, gts, pack.get(), matrix);
    }
    report(matrix);
    if (!o.json.empty()) {
      write_json(o.json, matrix);
      std::printf("\nwrote %s\n", o.json.c_str());
    }
    return 0;
  });
}

}  // namespace farsee::tools
