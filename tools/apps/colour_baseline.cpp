// farsee-colour-baseline: the colour-only baseline the shipped weights are measured against
// (weights/shipped/README.md). Every pixel is labelled by its colour alone: the class whose mean RGB,
// fitted on a training split, is nearest (squared Euclidean distance in RGB, ties to the lower
// trainId). Its predictions are written as farsee-infer writes its own (<stem>_labels.png with
// trainIds), so farsee-eval scores both the same way:
//
//   farsee-colour-baseline --data DIR --fit-split train --split val --out DIR/colour
//   (or --fit-data TRAIN_DIR: fit on one dataset, label another)
//   farsee-eval --data DIR --split val --predictions DIR/colour
//
// The fit sums integer RGB per trainId over every non-void pixel (uint64: exact, so the means do
// not depend on the order or the threads). A scene generator whose classes colour alone separates
// would give this baseline a mIoU close to the network's; the weights' README reports both.
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tools/cli/cli.h"
#include "tools/data/dataset.h"
#include "tools/data/image_io.h"
#include "tools/cityscapes/metrics.h"
#include "tools/data/parallel_for.h"

using namespace farsee;

namespace {

const char* kUsage = R"(usage: farsee-colour-baseline --data DIR --out DIR [options]

Labels every pixel by its colour alone: the class whose mean RGB over the training split is
nearest. Writes <stem>_labels.png (Cityscapes trainIds) for every image of --split into --out;
score them with  farsee-eval --data DIR --split SPLIT --predictions OUT.

  --data DIR        Cityscapes-layout dataset root (required)
  --out DIR         where the predictions go (created if missing; required)
  --fit-split NAME  split the class mean colours are fitted on (default train)
  --fit-data DIR    dataset root of --fit-split (default: --data), e.g. to fit on one dataset's
                    training scenes and label another's held-out ones
  --split NAME      split to label (default val)
  --max-fit N       fit on the first N images of --fit-split only (default: all)
  --jobs N          threads (default: the number of CPUs); the results do not depend on it
  --help            this text
)";

constexpr int kClasses = tools::kCityscapesClasses;

struct ColourSums {
  std::array<uint64_t, kClasses * 3> rgb{};
  std::array<uint64_t, kClasses> pixels{};
  void add(const ColourSums& o) {
    for (size_t i = 0; i < rgb.size(); ++i) rgb[i] += o.rgb[i];
    for (size_t i = 0; i < pixels.size(); ++i) pixels[i] += o.pixels[i];
  }
};

}  // namespace

int main(int argc, char** argv) {
  return tools::run_program("farsee-colour-baseline", [&] {
    std::string data, out, fit_data, fit_split = "train", split = "val";
    int max_fit = 0;
    int jobs = std::max(1, int(std::thread::hardware_concurrency()));
    tools::ArgParser args(argc, argv);
    while (args.next()) {
      FARSEE_REQUIRE(!args.positional(),
                     "unexpected argument '" << args.current() << "' (see --help)");
      if (args.is("--help")) {
        std::cout << kUsage;
        return 0;
      } else if (args.is("--data")) {
        data = args.value();
      } else if (args.is("--out")) {
        out = args.value();
      } else if (args.is("--fit-data")) {
        fit_data = args.value();
      } else if (args.is("--fit-split")) {
        fit_split = args.value();
      } else if (args.is("--split")) {
        split = args.value();
      } else if (args.is("--max-fit")) {
        max_fit = tools::parse_int(args.value(), "--max-fit", 1);
      } else if (args.is("--jobs")) {
        jobs = tools::parse_int(args.value(), "--jobs", 1);
      } else {
        FARSEE_REQUIRE(false, "unknown option '" << args.current() << "' (see --help)");
      }
    }
    FARSEE_REQUIRE(!data.empty(), "--data DIR is required (see --help)");
    FARSEE_REQUIRE(!out.empty(), "--out DIR is required (see --help)");

    if (fit_data.empty()) fit_data = data;
    std::vector<tools::SamplePaths> fit = tools::list_cityscapes(fit_data, fit_split);
    if (max_fit > 0 && size_t(max_fit) < fit.size()) fit.resize(size_t(max_fit));
    std::vector<ColourSums> per_thread(static_cast<size_t>(jobs));
    tools::parallel_for(int(fit.size()), jobs, [&](int i, int thread) {
      const tools::DecodedSample d = tools::decode_sample(fit[size_t(i)], kClasses);
      ColourSums& sums = per_thread[size_t(thread)];
      for (size_t p = 0; p < d.label.data.size(); ++p) {
        const int c = d.label.data[p];
        if (c >= kClasses) continue;
        for (int ch = 0; ch < 3; ++ch) sums.rgb[size_t(c) * 3 + ch] += d.image.data[p * 3 + ch];
        ++sums.pixels[size_t(c)];
      }
    });
    ColourSums total;
    for (const ColourSums& s : per_thread) total.add(s);

    // Only classes seen in the fit split take part; their means, printed for the record.
    std::vector<int> classes;
    std::vector<std::array<double, 3>> means;
    const auto& names = tools::cityscapes_class_names();
    std::printf("farsee-colour-baseline: class mean colours over %zu '%s' images of %s\n",
                fit.size(), fit_split.c_str(), fit_data.c_str());
    for (int c = 0; c < kClasses; ++c) {
      if (total.pixels[size_t(c)] == 0) continue;
      std::array<double, 3> m{};
      for (int ch = 0; ch < 3; ++ch) {
        m[size_t(ch)] = double(total.rgb[size_t(c) * 3 + ch]) / double(total.pixels[size_t(c)]);
      }
      classes.push_back(c);
      means.push_back(m);
      std::printf("  %-14s RGB %6.1f %6.1f %6.1f  (%llu pixels)\n", names[size_t(c)], m[0], m[1],
                  m[2], static_cast<unsigned long long>(total.pixels[size_t(c)]));
    }
    FARSEE_REQUIRE(!classes.empty(), "--fit-split " << fit_split << ": no labelled pixel in "
                                                    << fit.size() << " images");

    std::error_code ec;
    std::filesystem::create_directories(out, ec);
    FARSEE_REQUIRE(std::filesystem::is_directory(out), "--out: cannot create '" << out << "'");
    const std::vector<tools::SamplePaths> todo = tools::list_cityscapes(data, split);
    tools::parallel_for(int(todo.size()), jobs, [&](int i, int) {
      const tools::SamplePaths& s = todo[size_t(i)];
      const tools::Image rgb = tools::read_rgb(s.image);
      tools::Image pred;
      pred.width = rgb.width;
      pred.height = rgb.height;
      pred.channels = 1;
      pred.data.resize(size_t(rgb.width) * size_t(rgb.height));
      for (size_t p = 0; p < pred.data.size(); ++p) {
        double best = INFINITY;
        int best_class = classes[0];
        for (size_t k = 0; k < classes.size(); ++k) {
          double d = 0.0;
          for (int ch = 0; ch < 3; ++ch) {
            const double diff = double(rgb.data[p * 3 + size_t(ch)]) - means[k][size_t(ch)];
            d += diff * diff;
          }
          if (d < best) {
            best = d;
            best_class = classes[k];
          }
        }
        pred.data[p] = uint8_t(best_class);
      }
      // Named as farsee-infer names its label maps: <image stem>_labels.png.
      const std::string name = std::filesystem::path(s.image).stem().string() + "_labels.png";
      tools::write_png((std::filesystem::path(out) / name).string(), pred);
    });
    std::printf("farsee-colour-baseline: %zu label maps (trainIds) of split '%s' in %s\n",
                todo.size(), split.c_str(), out.c_str());
    return 0;
  });
}
