// farsee-infer: semantic segmentation of images with FarSee-Net.
//
// For every input image (files, or every PNG/JPG/BMP in a directory): RGB in [0, 1] is resized to
// the network input size with bilinear interpolation (half-pixel centres, no antialiasing: exactly
// PyTorch's F.interpolate(mode='bilinear', align_corners=False)), normalised with the ImageNet
// mean/std, run through the network, and the logits are resized (bilinear, the preset's
// align_corners) to the output size and reduced by argmax on the executor. Writes, atomically,
//   <out>/<name>_labels.png   uint8 Cityscapes trainIds (--ids label: labelIds, for submission)
//   <out>/<name>_color.png    Cityscapes palette
//   <out>/<name>_overlay.png  (--overlay) half image, half palette
// and with --save-logits FILE.npy all images' logits at the output size, float32, shape
// (N, C, H, W) in PyTorch order. Prints the latency of every image.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/core/runtime.h"
#include "kernels/reference/resize.h"
#include "net/farsee_net.h"
#include "tools/cityscapes_palette.h"
#include "tools/cli.h"
#include "tools/image_io.h"
#include "tools/metrics.h"

namespace fs = std::filesystem;
using namespace farsee;

namespace {

const char* kUsage = R"(usage: farsee-infer [options] IMAGE|DIR [IMAGE|DIR ...]

Segments images with FarSee-Net and writes <name>_labels.png (trainIds) and <name>_color.png.

  --weights FILE          safetensors weights (tools/convert_weights.py); required unless
                          --random-weights is given
  --random-weights SEED   deterministic random weights (smoke tests and demos: the labels are
                          meaningless)
  --preset NAME           paper (default) | rtseg | tiny-paper | tiny-rtseg
  --config FILE.json      network configuration (overrides --preset)
  --input-size HxW        network input size, multiples of 32 (default 512x1024); the image is
                          resized to it (bilinear, align_corners=False)
  --output-size HxW       size of the label maps (default: each image's own size)
  --precision fp32|fp16   activation precision (default fp32)
  --executor E            auto (default: cuda if a GPU is usable, else reference) | cuda |
                          reference | emu (emu: the CUDA kernels emulated on the CPU, very slow)
  --out DIR               output directory (default farsee_out; created if missing)
  --ids train|label       what <name>_labels.png holds: trainIds 0..18 (default) or Cityscapes
                          labelIds (the benchmark's submission format; 19-class networks only)
  --overlay               also write <name>_overlay.png
  --save-logits FILE.npy  float32 logits of all images at the output size, shape (N, C, H, W)
  --help                  this text
)";

struct Options {
  std::string weights;
  std::optional<uint64_t> random_seed;
  std::string preset = "paper";
  std::string config_file;
  int input_h = 512, input_w = 1024;
  int output_h = 0, output_w = 0;
  DType precision = DType::F32;
  std::string executor = "auto";
  std::string out_dir = "farsee_out";
  bool label_ids = false;
  bool overlay = false;
  std::string save_logits;
  std::vector<std::string> inputs;
};

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

std::vector<std::string> collect_images(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const std::string& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      std::vector<std::string> found;
      for (const auto& entry : fs::directory_iterator(in)) {
        if (entry.is_regular_file() && is_image_file(entry.path())) {
          found.push_back(entry.path().string());
        }
      }
      std::sort(found.begin(), found.end());
      FARSEE_REQUIRE(!found.empty(), "directory '" << in << "' holds no PNG/JPG/BMP images");
      files.insert(files.end(), found.begin(), found.end());
    } else {
      FARSEE_REQUIRE(fs::exists(in, ec), "input '" << in << "' does not exist");
      files.push_back(in);
    }
  }
  FARSEE_REQUIRE(!files.empty(), "no input images (see --help)");
  return files;
}

Options parse_options(int argc, char** argv) {
  Options o;
  tools::ArgParser args(argc, argv);
  while (args.next()) {
    if (args.positional()) {
      o.inputs.push_back(args.current());
    } else if (args.is("--help")) {
      std::cout << kUsage;
      std::exit(0);
    } else if (args.is("--weights")) {
      o.weights = args.value();
    } else if (args.is("--random-weights")) {
      o.random_seed = uint64_t(tools::parse_int(args.value(), "--random-weights", 0));
    } else if (args.is("--preset")) {
      o.preset = args.value();
    } else if (args.is("--config")) {
      o.config_file = args.value();
    } else if (args.is("--input-size")) {
      std::tie(o.input_h, o.input_w) = tools::parse_size(args.value(), "--input-size");
    } else if (args.is("--output-size")) {
      std::tie(o.output_h, o.output_w) = tools::parse_size(args.value(), "--output-size");
    } else if (args.is("--precision")) {
      o.precision = tools::parse_precision(args.value());
    } else if (args.is("--executor")) {
      o.executor = args.value();
    } else if (args.is("--out")) {
      o.out_dir = args.value();
    } else if (args.is("--ids")) {
      const std::string v = args.value();
      FARSEE_REQUIRE(v == "train" || v == "label", "--ids: '" << v << "' is not train or label");
      o.label_ids = v == "label";
    } else if (args.is("--overlay")) {
      args.no_value();
      o.overlay = true;
    } else if (args.is("--save-logits")) {
      o.save_logits = args.value();
    } else {
      FARSEE_REQUIRE(false, "unknown option '" << args.current() << "' (see --help)");
    }
  }
  FARSEE_REQUIRE(o.weights.empty() || !o.random_seed,
                 "--weights and --random-weights exclude each other");
  FARSEE_REQUIRE(!o.weights.empty() || o.random_seed,
                 "missing --weights FILE (or --random-weights SEED for a smoke test)");
  FARSEE_REQUIRE(o.input_h % 32 == 0 && o.input_w % 32 == 0,
                 "--input-size " << o.input_h << "x" << o.input_w
                                 << ": height and width must be multiples of 32");
  FARSEE_REQUIRE(!o.inputs.empty(), "no input images given (see --help)");
  return o;
}

// Interleaved float image [h][w][c] resized to out_h x out_w (PyTorch bilinear).
std::vector<float> resize(const std::vector<float>& src, int h, int w, int c, int out_h, int out_w,
                          bool align_corners) {
  if (h == out_h && w == out_w) return src;
  std::vector<float> dst(size_t(out_h) * out_w * c);
  const TensorView x = make_view(const_cast<float*>(src.data()), DType::F32, Shape4{1, h, w, c});
  const TensorView y = make_view(dst.data(), DType::F32, Shape4{1, out_h, out_w, c});
  reference::resize_bilinear_fwd(align_corners, x, y);
  return dst;
}

std::string stem_of(const std::string& path) {
  return fs::path(path).stem().string();
}

int run(const Options& o) {
  std::string note;
  const Executor executor = tools::choose_executor(o.executor, &note);
  if (!note.empty()) std::cerr << "farsee-infer: " << note << "\n";
  const net::FarSeeConfig config =
      o.config_file.empty() ? net::preset_config(o.preset) : net::load_config_json(o.config_file);
  const std::vector<std::string> images = collect_images(o.inputs);
  FARSEE_REQUIRE(!o.label_ids || config.num_classes == tools::kCityscapesClasses,
                 "--ids label: the network has " << config.num_classes << " classes, Cityscapes "
                                                 << tools::kCityscapesClasses);

  net::HostTensors params;
  if (o.random_seed) {
    params = net::random_parameters(config, *o.random_seed);
  } else {
    std::vector<std::string> unknown;
    params = net::load_parameters(o.weights, config, &unknown);
    for (const auto& name : unknown) {
      std::cerr << "farsee-infer: warning: " << o.weights << ": unused tensor '" << name << "'\n";
    }
  }
  Context ctx;
  ctx.executor = executor;
  net::FarSeeNet model(config, params, ctx, o.precision);
  params.clear();

  std::error_code ec;
  fs::create_directories(o.out_dir, ec);
  FARSEE_REQUIRE(fs::is_directory(o.out_dir),
                 "--out: cannot create directory '" << o.out_dir << "'");
  std::cout << "farsee-infer: preset " << config.preset << ", input " << o.input_h << "x"
            << o.input_w << ", " << dtype_name(o.precision) << ", executor "
            << executor_name(executor) << ", " << images.size() << " image(s)\n";

  std::vector<float> all_logits;
  int logits_h = 0, logits_w = 0;
  rt::Timer network_timer(executor);
  for (const std::string& path : images) {
    const auto t0 = std::chrono::steady_clock::now();
    const tools::Image image = tools::read_rgb(path);
    const int out_h = o.output_h ? o.output_h : image.height;
    const int out_w = o.output_w ? o.output_w : image.width;
    if (!o.save_logits.empty()) {
      FARSEE_REQUIRE(logits_h == 0 || (logits_h == out_h && logits_w == out_w),
                     "--save-logits stacks all images into one array, but '"
                         << path << "' gives " << out_h << "x" << out_w << " instead of "
                         << logits_h << "x" << logits_w << " (use --output-size)");
      logits_h = out_h;
      logits_w = out_w;
    }
    std::vector<float> rgb(image.data.size());
    for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = float(image.data[i]) / 255.f;
    std::vector<float> input =
        resize(rgb, image.height, image.width, 3, o.input_h, o.input_w, /*align_corners=*/false);
    net::normalise_rgb(input.data(), int64_t(o.input_h) * o.input_w);

    model.prepare(1, o.input_h, o.input_w, out_h, out_w);
    model.set_input(input.data());
    network_timer.record_start(model.context());
    model.forward();
    network_timer.record_stop(model.context());
    const float network_ms = network_timer.elapsed_ms();
    const std::vector<uint8_t> labels = model.labels();

    const std::string base = (fs::path(o.out_dir) / stem_of(path)).string();
    std::vector<uint8_t> ids = labels;
    if (o.label_ids) {
      for (uint8_t& v : ids) v = tools::cityscapes_label_ids()[v];
    }
    tools::write_png(base + "_labels.png", tools::Image{out_w, out_h, 1, ids});
    const std::vector<uint8_t> color = tools::colorize_labels(labels);
    tools::write_png(base + "_color.png", tools::Image{out_w, out_h, 3, color});
    if (o.overlay) {
      const std::vector<float> shown =
          resize(rgb, image.height, image.width, 3, out_h, out_w, /*align_corners=*/false);
      std::vector<uint8_t> blend(color.size());
      for (size_t i = 0; i < blend.size(); ++i) {
        blend[i] =
            uint8_t(std::clamp(0.5f * shown[i] * 255.f + 0.5f * color[i] + 0.5f, 0.f, 255.f));
      }
      tools::write_png(base + "_overlay.png", tools::Image{out_w, out_h, 3, blend});
    }
    if (!o.save_logits.empty()) {
      const std::vector<float> resized = model.resized_logits_nchw(out_h, out_w);
      all_logits.insert(all_logits.end(), resized.begin(), resized.end());
    }
    const double total_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s: %dx%d -> %s_labels.png (%dx%d): network %.2f ms, total %.2f ms\n",
                path.c_str(), image.height, image.width, base.c_str(), out_h, out_w, network_ms,
                total_ms);
    std::fflush(stdout);
  }
  if (!o.save_logits.empty()) {
    tools::write_npy(o.save_logits,
                     {int64_t(images.size()), config.num_classes, logits_h, logits_w}, all_logits);
    std::printf("logits: %s (%zu, %d, %d, %d) float32\n", o.save_logits.c_str(), images.size(),
                config.num_classes, logits_h, logits_w);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return farsee::tools::run_program("farsee-infer", [&] { return run(parse_options(argc, argv)); });
}
