// farsee-infer: semantic segmentation of images with FarSee-Net.
//
// For every input image (files, or every PNG/JPG/BMP in a directory; with --recursive, under it),
// through the public API (farsee::Segmenter, net/api/farsee/farsee.h): RGB in [0, 1] is resized to
// the network input size with bilinear interpolation (half-pixel centres, no antialiasing: exactly
// PyTorch's F.interpolate(mode='bilinear', align_corners=False)), normalised with the ImageNet
// mean/std (net/preprocess.h, shared with farsee-eval and the training loader), run through the
// network, and the logits are resized (bilinear, the preset's align_corners) to the output size and
// reduced by argmax on the executor. Writes, atomically, under --out, keeping each image's path
// relative to the folder given on the command line (a file given by itself: its name):
//   <out>/<rel>_labels.png   uint8 Cityscapes trainIds (--ids label: labelIds, for submission)
//   <out>/<rel>_color.png    Cityscapes palette
//   <out>/<rel>_overlay.png  (--overlay) half image, half palette
//   <out>/<rel>_logits.npy   (--save-logits) float32 logits at the output size, (1, C, H, W),
//                            written per image (never held for the whole batch)
// Two inputs that would write the same names are refused before anything runs, naming both;
// files under --out are never taken as inputs. A bad image (unreadable, too large) is reported
// with its reason and the batch goes on; the run ends with "N segmented, M failed" and exits 1 if
// any failed. Prints the latency of every image.
// Videos and cameras (an input with a video extension, /dev/videoN, --camera N) go to the video
// mode, tools/video/video_cli.h (DESIGN.md section 15); its flags are parsed there.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <new>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "net/api/farsee/farsee.h"
#include "net/preprocess.h"
#include "tools/cityscapes/metrics.h"
#include "tools/cityscapes/palette.h"
#include "tools/cli/flags.h"
#include "tools/data/image_io.h"
#include "tools/video/video_cli.h"

namespace fs = std::filesystem;
using namespace farsee;

namespace {

const char* kUsage = R"(usage: farsee-infer [options] IMAGE|DIR [IMAGE|DIR ...]

Segments images with FarSee-Net and writes <name>_labels.png (trainIds) and <name>_color.png
under --out; an image found in a directory DIR keeps its path relative to DIR (DIR/a/b.png ->
<out>/a/b_labels.png with --recursive). Outputs under --out are never taken as inputs.

  --weights FILE          safetensors weights (tools/pytorch/convert_weights.py); required unless
                          --random-weights is given
  --random-weights SEED   deterministic random weights (smoke tests and demos: the labels are
                          meaningless)
  --preset NAME           paper | rtseg | tiny-paper | tiny-rtseg (default: the network the
                          weights file records, else paper; one that contradicts the file's is
                          an error)
  --config FILE.json      network configuration (overrides --preset)
  --input-size HxW        network input size, multiples of 32 (default: the size the weights file
                          records it was trained at, else 512x1024); the image is resized to it
                          (bilinear, align_corners=False)
  --output-size HxW       size of the label maps (default: each image's own size)
  --max-megapixels N      refuse images, input and output sizes above N megapixels (default 64;
                          the image header is checked before decoding)
  --precision P           fp32 (default) | tf32 (fp32 storage, convolutions in TF32 on tensor
                          cores, as PyTorch's default fp32; cuda and reference executors, the
                          cpu executor refuses it) | fp16
  --executor E            auto (default: cuda if a GPU is usable, else cpu) | cuda | cpu (fast
                          fp32 CPU code; fp16 runs the reference's code) | reference (the slow
                          double-precision oracle)
  --out DIR               output directory (default farsee_out; created if missing)
  --ids train|label       what <name>_labels.png holds: trainIds 0..18 (default) or Cityscapes
                          labelIds (the benchmark's submission format; 19-class networks only)
  --recursive             also segment the images in the subfolders of a DIR given
  --overlay               also write <name>_overlay.png
  --save-logits           also write <name>_logits.npy: float32 logits at the output size, shape
                          (1, C, H, W), one file per image
  --help                  this text
)";

struct Options {
  std::string weights;
  std::optional<uint64_t> random_seed;
  std::string preset;  // empty: the weights file's (farsee::SegmenterOptions)
  std::string config_file;
  int input_h = 0, input_w = 0;  // 0: the weights file's
  int output_h = 0, output_w = 0;
  int64_t max_pixels = tools::kDefaultMaxPixels;
  std::string precision = "fp32";
  std::string executor = "auto";
  std::string out_dir = "farsee_out";
  bool label_ids = false;
  bool overlay = false;
  bool recursive = false;
  bool save_logits = false;
  std::vector<std::string> inputs;
  tools::video::VideoFlags video;  // video mode (tools/video/video_cli.h)
};

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

// One image to segment and where its outputs go: <out>/<base>_labels.png, ...
struct Input {
  std::string path;  // as found (relative to the current directory if given so)
  fs::path base;     // path relative to the folder given on the command line, without extension
};

// `p` lies inside directory `dir` (both canonical).
bool is_inside(const fs::path& p, const fs::path& dir) {
  auto d = dir.begin(), q = p.begin();
  for (; d != dir.end(); ++d, ++q) {
    if (q == p.end() || *q != *d) return false;
  }
  return true;
}

fs::path canonical_or_self(const fs::path& p) {
  std::error_code ec;
  const fs::path c = fs::weakly_canonical(fs::absolute(p, ec), ec);
  return ec ? p : c;
}

// A file name farsee-infer writes: <name>_labels.png, _color.png, _overlay.png.
bool is_output_name(const fs::path& p) {
  const std::string name = p.filename().string();
  for (const char* suffix : {"_labels.png", "_color.png", "_overlay.png"}) {
    const size_t n = std::strlen(suffix);
    if (name.size() > n && name.compare(name.size() - n, n, suffix) == 0) return true;
  }
  return false;
}

// The images named on the command line: files as given, directories searched (sorted; their
// subfolders too when `recursive`). Files under --out are never inputs: when --out is a folder
// inside the searched directory, nothing under it is taken; when --out is the directory itself or
// one above it (the outputs then lie beside the images), the files there named like outputs
// (*_labels.png, *_color.png, *_overlay.png) are skipped. Two inputs with the same output names
// are refused, naming both.
std::vector<Input> collect_images(const std::vector<std::string>& inputs,
                                  const std::string& out_dir, bool recursive) {
  const fs::path out = canonical_or_self(out_dir);
  std::vector<Input> found_all;
  for (const std::string& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      std::vector<Input> found;
      int skipped = 0;
      // --out at or above the searched directory: only output-named files are ours.
      const bool out_contains_dir = is_inside(canonical_or_self(in), out);
      fs::recursive_directory_iterator it(in, fs::directory_options::skip_permission_denied, ec);
      FARSEE_REQUIRE(!ec, "cannot read directory '" << in << "': " << ec.message());
      for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
        FARSEE_REQUIRE(!ec, "cannot read directory '" << in << "': " << ec.message());
        if (!recursive && it->is_directory(ec)) it.disable_recursion_pending();
        if (!it->is_regular_file(ec) || !is_image_file(it->path())) continue;
        if (is_inside(canonical_or_self(it->path()), out) &&
            (!out_contains_dir || is_output_name(it->path()))) {
          ++skipped;
          continue;
        }
        const fs::path rel = it->path().lexically_relative(in);
        found.push_back({it->path().string(), rel.parent_path() / rel.stem()});
      }
      std::sort(found.begin(), found.end(),
                [](const Input& x, const Input& y) { return x.path < y.path; });
      if (skipped) {
        std::cerr << "farsee-infer: " << in << ": skipped " << skipped << " file(s) under --out '"
                  << out_dir << "' (outputs are never taken as inputs)\n";
      }
      FARSEE_REQUIRE(!found.empty(),
                     "directory '" << in << "' holds no PNG/JPG/BMP images"
                                   << (skipped ? " apart from outputs under --out '" + out_dir + "'"
                                               : std::string()));
      found_all.insert(found_all.end(), found.begin(), found.end());
    } else {
      FARSEE_REQUIRE(fs::path(in).extension() != ".npy",
                     "input '" << in
                               << "' is a .npy file: --save-logits takes no value (it writes "
                                  "<name>_logits.npy next to each image's labels)");
      FARSEE_REQUIRE(fs::exists(in, ec), "input '" << in << "' does not exist");
      found_all.push_back({in, fs::path(in).stem()});
    }
  }
  FARSEE_REQUIRE(!found_all.empty(), "no input images (see --help)");
  std::map<std::string, std::string> owner;  // output base -> input
  for (const Input& i : found_all) {
    const std::string key = i.base.lexically_normal().generic_string();
    const auto [it, inserted] = owner.emplace(key, i.path);
    FARSEE_REQUIRE(inserted, "inputs '" << it->second << "' and '" << i.path
                                        << "' would both be written as '"
                                        << (fs::path(out_dir) / key).string()
                                        << "_labels.png' (outputs keep each image's path "
                                           "relative to the folder given on the command line): "
                                           "rename one, give their common parent folder, or "
                                           "segment them in separate runs with different --out");
  }
  return found_all;
}

// --max-megapixels: a positive number of megapixels, at most 10^6.
int64_t parse_max_pixels(const std::string& text) {
  char* end = nullptr;
  const double mp = std::strtod(text.c_str(), &end);
  FARSEE_REQUIRE(!text.empty() && *end == '\0' && mp > 0 && mp <= 1e6,
                 "--max-megapixels: '" << text << "' is not a number in (0, 1000000]");
  return int64_t(mp * 1e6);
}

// nullopt after --help.
std::optional<Options> parse_options(int argc, char** argv) {
  Options o;
  tools::Flags flags("farsee-infer", std::string(kUsage) + tools::video::kVideoUsage);
  flags.positionals("inputs", o.inputs);
  flags.text("--weights", o.weights);
  flags.value("--random-weights", [&](const std::string& v) {
    o.random_seed = uint64_t(tools::parse_int(v, "--random-weights", 0));
  });
  flags.text("--preset", o.preset);
  flags.text("--config", o.config_file);
  flags.value("--input-size", [&](const std::string& v) {
    std::tie(o.input_h, o.input_w) = tools::parse_size(v, "--input-size");
  });
  flags.value("--output-size", [&](const std::string& v) {
    std::tie(o.output_h, o.output_w) = tools::parse_size(v, "--output-size");
  });
  flags.value("--precision", [&](const std::string& v) {
    (void)tools::parse_precision(v);  // checked here, with the other flags
    o.precision = v;
  });
  flags.text("--executor", o.executor);
  flags.text("--out", o.out_dir);
  flags.value("--ids", [&](const std::string& v) {
    FARSEE_REQUIRE(v == "train" || v == "label", "--ids: '" << v << "' is not train or label");
    o.label_ids = v == "label";
  });
  flags.set_true("--overlay", o.overlay);
  flags.set_true("--recursive", o.recursive);
  flags.value("--max-megapixels",
              [&](const std::string& v) { o.max_pixels = parse_max_pixels(v); });
  flags.set_true("--save-logits", o.save_logits);
  tools::video::add_video_flags(flags, o.video);
  if (!flags.parse(argc, argv)) return std::nullopt;
  FARSEE_REQUIRE(o.weights.empty() || !o.random_seed,
                 "--weights and --random-weights exclude each other");
  FARSEE_REQUIRE(!o.weights.empty() || o.random_seed,
                 "missing --weights FILE (or --random-weights SEED for a smoke test)");
  FARSEE_REQUIRE(o.input_h % 32 == 0 && o.input_w % 32 == 0,
                 "--input-size " << o.input_h << "x" << o.input_w
                                 << ": height and width must be multiples of 32");
  for (const auto& [flag, h, w] : {std::tuple{"--input-size", o.input_h, o.input_w},
                                   std::tuple{"--output-size", o.output_h, o.output_w}}) {
    FARSEE_REQUIRE(int64_t(h) * w <= o.max_pixels,
                   flag << " " << tools::format_pixels(h, w) << " is above the limit of "
                        << double(o.max_pixels) / 1e6
                        << " megapixels (--max-megapixels to raise it)");
  }
  FARSEE_REQUIRE(!o.inputs.empty() || !o.video.cameras.empty(),
                 "no input images given (see --help)");
  return o;
}

// Writes `labels` (and the overlay) as PNGs under <out>/<base>.
void write_label_images(const Options& o, const tools::Image& image, const LabelMap& labels,
                        const std::string& b) {
  const int out_h = labels.height, out_w = labels.width;
  std::string step = "writing the labels";
  try {
    std::vector<uint8_t> ids = labels.data;
    if (o.label_ids) {
      for (uint8_t& v : ids) v = tools::cityscapes_label_ids()[v];
    }
    tools::write_png(b + "_labels.png", tools::Image{out_w, out_h, 1, ids});
    step = "colouring the " + tools::format_pixels(out_h, out_w) + " labels";
    const std::vector<uint8_t> color = tools::colorize_labels(labels.data);
    tools::write_png(b + "_color.png", tools::Image{out_w, out_h, 3, color});
    if (!o.overlay) return;
    step = "blending the overlay";
    std::vector<float> shown = tools::allocate<float>(
        color.size(), "the image at the output size (" + std::to_string(out_h) + "x" +
                          std::to_string(out_w) + " RGB)");
    net::rgb8_to_unit(image.data.data(), image.height, image.width, shown.data(), out_h, out_w);
    std::vector<uint8_t> blend =
        tools::allocate<uint8_t>(color.size(), "the overlay image (" + std::to_string(out_h) + "x" +
                                                   std::to_string(out_w) + " RGB)");
    for (size_t i = 0; i < blend.size(); ++i) {
      blend[i] = uint8_t(std::clamp(0.5f * shown[i] * 255.f + 0.5f * color[i] + 0.5f, 0.f, 255.f));
    }
    tools::write_png(b + "_overlay.png", tools::Image{out_w, out_h, 3, blend});
  } catch (const std::bad_alloc&) {
    FARSEE_REQUIRE(false, "out of memory while " << step);
  }
}

// Segments one image, writing its outputs; throws (with the reason) when it cannot.
void segment(const Options& o, Segmenter& segmenter, const Input& in) {
  const auto t0 = std::chrono::steady_clock::now();
  const tools::Image image = tools::read_rgb(in.path, o.max_pixels);
  const LabelMap labels =
      segmenter.segment(image.data.data(), image.height, image.width, o.output_h, o.output_w);
  const int out_h = labels.height, out_w = labels.width;

  const fs::path base = fs::path(o.out_dir) / in.base;
  std::error_code ec;
  fs::create_directories(base.parent_path(), ec);
  FARSEE_REQUIRE(fs::is_directory(base.parent_path()),
                 "cannot create directory '" << base.parent_path().string() << "'");
  const std::string b = base.string();
  write_label_images(o, image, labels, b);
  if (o.save_logits) {
    const std::vector<float> logits = segmenter.last_logits();
    tools::write_npy(b + "_logits.npy", {1, segmenter.num_classes(), out_h, out_w}, logits);
  }
  const double total_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s: %dx%d -> %s_labels.png (%dx%d): network %.2f ms, total %.2f ms\n",
              in.path.c_str(), image.height, image.width, b.c_str(), out_h, out_w,
              segmenter.last_network_ms(), total_ms);
  std::fflush(stdout);
}

SegmenterOptions segmenter_options(const Options& o) {
  SegmenterOptions s;
  s.weights = o.weights;
  s.random_seed = o.random_seed ? int64_t(*o.random_seed) : -1;
  s.preset = o.preset;
  s.config_file = o.config_file;
  s.input_height = o.input_h;
  s.input_width = o.input_w;
  s.precision = o.precision;
  s.executor = o.executor;
  s.max_megapixels = double(o.max_pixels) / 1e6;
  return s;
}

// Creates --out and prints the network's settings and the number of inputs.
void prepare_out_dir(const Options& o, const Segmenter& segmenter, size_t inputs,
                     const char* what) {
  std::error_code ec;
  fs::create_directories(o.out_dir, ec);
  FARSEE_REQUIRE(fs::is_directory(o.out_dir),
                 "--out: cannot create directory '" << o.out_dir << "'");
  std::cout << "farsee-infer: preset " << segmenter.preset() << ", input "
            << segmenter.input_height() << "x" << segmenter.input_width() << ", "
            << segmenter.precision() << ", executor " << segmenter.executor() << ", " << inputs
            << " " << what << "\n";
}

// Video mode (tools/video/video_cli.h): every input is a video or a camera.
int run_videos(const Options& o) {
  tools::video::require_video_support();
  std::vector<std::string> sources = o.inputs;
  sources.insert(sources.end(), o.video.cameras.begin(), o.video.cameras.end());
  for (const std::string& s : sources) {
    FARSEE_REQUIRE(tools::video::is_video_argument(s),
                   "'" << s << "' is not a video: videos and images go in separate runs");
  }
  FARSEE_REQUIRE(o.output_h == 0 && !o.save_logits && !o.overlay,
                 "--output-size, --save-logits and --overlay are for images (a video's overlay "
                 "is always written, at its own size)");
  Segmenter segmenter(segmenter_options(o));
  for (const std::string& note : segmenter.notes()) std::cerr << "farsee-infer: " << note << "\n";
  prepare_out_dir(o, segmenter, sources.size(), "video(s)");
  return tools::video::run_videos(segmenter, sources, o.video, o.out_dir, o.label_ids);
}

int run(const Options& o) {
  if (!o.video.cameras.empty() ||
      std::any_of(o.inputs.begin(), o.inputs.end(), tools::video::is_video_argument)) {
    return run_videos(o);
  }
  const std::vector<Input> images = collect_images(o.inputs, o.out_dir, o.recursive);
  Segmenter segmenter(segmenter_options(o));
  for (const std::string& note : segmenter.notes()) std::cerr << "farsee-infer: " << note << "\n";
  FARSEE_REQUIRE(!o.label_ids || segmenter.num_classes() == tools::kCityscapesClasses,
                 "--ids label: the network has " << segmenter.num_classes()
                                                 << " classes, Cityscapes "
                                                 << tools::kCityscapesClasses);

  prepare_out_dir(o, segmenter, images.size(), "image(s)");

  // A bad image does not end the batch: it is reported with its reason and the rest go on.
  std::vector<std::string> failed;
  for (const Input& in : images) {
    try {
      segment(o, segmenter, in);
    } catch (const std::exception& e) {
      std::fflush(stdout);
      std::fprintf(stderr, "farsee-infer: error: %s: %s\n", in.path.c_str(), e.what());
      failed.push_back(in.path);
    }
  }
  const size_t segmented = images.size() - failed.size();
  std::printf("farsee-infer: %zu segmented, %zu failed\n", segmented, failed.size());
  for (const std::string& f : failed) std::printf("  failed: %s\n", f.c_str());
  std::fflush(stdout);
  return failed.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  return farsee::tools::run_program("farsee-infer", [&] {
    const std::optional<Options> o = parse_options(argc, argv);
    return o ? run(*o) : 0;
  });
}
