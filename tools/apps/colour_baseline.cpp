// farsee-colour-baseline: the colour-only baseline the shipped weights are measured against
// (weights/shipped/README.md; the model: tools/data/colour_baseline.h). Its predictions are
// written as farsee-infer writes its own (<stem>_labels.png with trainIds), so farsee-eval scores
// both the same way:
//
//   farsee-colour-baseline --data DIR --fit-split train --split val --out DIR/colour
//   (or --fit-data TRAIN_DIR: fit on one dataset, label another)
//   farsee-eval --data DIR --split val --predictions DIR/colour
//
// The weights' README reports both this baseline's mIoU and the network's.
#include "tools/data/colour_baseline.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tools/cityscapes/metrics.h"
#include "tools/cli/flags.h"
#include "tools/data/dataset.h"
#include "tools/data/image_io.h"
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

struct Options {
  std::string data, out, fit_data, fit_split = "train", split = "val";
  int max_fit = 0;
  int jobs = std::max(1, int(std::thread::hardware_concurrency()));
};

// nullopt after --help.
std::optional<Options> parse_options(int argc, char** argv) {
  Options o;
  tools::Flags flags("farsee-colour-baseline", kUsage);
  flags.text("--data", o.data);
  flags.text("--out", o.out);
  flags.text("--fit-data", o.fit_data);
  flags.text("--fit-split", o.fit_split);
  flags.text("--split", o.split);
  flags.integer("--max-fit", o.max_fit, 1);
  flags.integer("--jobs", o.jobs, 1);
  if (!flags.parse(argc, argv)) return std::nullopt;
  FARSEE_REQUIRE(!o.data.empty(), "--data DIR is required (see --help)");
  FARSEE_REQUIRE(!o.out.empty(), "--out DIR is required (see --help)");
  if (o.fit_data.empty()) o.fit_data = o.data;
  return o;
}

int run(const Options& o) {
  std::vector<tools::SamplePaths> fit = tools::list_cityscapes(o.fit_data, o.fit_split);
  if (o.max_fit > 0 && size_t(o.max_fit) < fit.size()) fit.resize(size_t(o.max_fit));
  const tools::ColourMeans model =
      tools::fit_colour_means(fit, o.jobs, "--fit-split " + o.fit_split);
  // The means of the classes seen in the fit split, for the record.
  std::printf("farsee-colour-baseline: class mean colours over %zu '%s' images of %s\n", fit.size(),
              o.fit_split.c_str(), o.fit_data.c_str());
  for (size_t k = 0; k < model.classes.size(); ++k) {
    const auto& m = model.means[k];
    std::printf("  %-14s RGB %6.1f %6.1f %6.1f  (%llu pixels)\n",
                tools::cityscapes_class_names()[size_t(model.classes[k])], m[0], m[1], m[2],
                static_cast<unsigned long long>(model.pixels[k]));
  }
  std::error_code ec;
  std::filesystem::create_directories(o.out, ec);
  FARSEE_REQUIRE(std::filesystem::is_directory(o.out), "--out: cannot create '" << o.out << "'");
  const std::vector<tools::SamplePaths> todo = tools::list_cityscapes(o.data, o.split);
  tools::parallel_for(int(todo.size()), o.jobs, [&](int i, int) {
    const tools::SamplePaths& s = todo[size_t(i)];
    const tools::Image pred = tools::label_by_colour(model, tools::read_rgb(s.image));
    // Named as farsee-infer names its label maps: <image stem>_labels.png.
    const std::string name = std::filesystem::path(s.image).stem().string() + "_labels.png";
    tools::write_png((std::filesystem::path(o.out) / name).string(), pred);
  });
  std::printf("farsee-colour-baseline: %zu label maps (trainIds) of split '%s' in %s\n",
              todo.size(), o.split.c_str(), o.out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return tools::run_program("farsee-colour-baseline", [&] {
    const std::optional<Options> o = parse_options(argc, argv);
    return o ? run(*o) : 0;
  });
}
