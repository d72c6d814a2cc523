// farsee-make-dataset: synthetic street scenes written in the Cityscapes layout for farsee-train,
// or as plain PNGs for farsee-infer demos (--samples); the file layout and the seeding are
// tools/data/synthetic_dataset.h's. The same flags give byte-identical files.
#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "tools/cli/flags.h"
#include "tools/data/image_io.h"
#include "tools/data/synthetic_dataset.h"
#include "tools/video/synthetic_drive.h"

using namespace farsee;

namespace {

const char* kUsage = R"(usage: farsee-make-dataset --out DIR [options]

Writes deterministic synthetic street scenes with exact Cityscapes ground truth.

  --out DIR        output directory (created if missing; required)
  --train N        training images (default 0)
  --val M          validation images (default 0)
  --size HxW       image size (default 1024x2048, Cityscapes' own)
  --seed S         seed of every scene (default 0)
  --train-ids      also write *_gtFine_labelTrainIds.png (19 trainIds, 255 ignored)
  --samples N      instead of the Cityscapes layout: N plain images DIR/synthetic_<k>.png for
                   farsee-infer (default size 512x1024 in this mode)
  --labels         with --samples: also DIR/gt/synthetic_<k>_gt_labelTrainIds.png
  --video N        instead: a clip DIR/street.mp4 of N frames (30 fps; default size 512x1024) of
                   a camera driving down one generated street (--seed), and each frame's
                   ground truth DIR/gt/<frame:06d>_gt_labelTrainIds.png; score it with
                   farsee-infer DIR/street.mp4 --ground-truth DIR/gt
  --jobs N         scenes made in parallel (default: the number of CPUs); the files do not
                   depend on it
  --help           this text
)";

struct Options {
  tools::SyntheticDatasetOptions data;
  int samples = -1;
  int video = 0;  // --video N: frames
  bool labels = false;
  bool size_given = false;
};

// nullopt after --help.
std::optional<Options> parse_options(int argc, char** argv) {
  Options o;
  o.data.jobs = std::max(1, int(std::thread::hardware_concurrency()));
  tools::Flags flags("farsee-make-dataset", kUsage);
  flags.text("--out", o.data.out);
  flags.integer("--train", o.data.train, 0);
  flags.integer("--val", o.data.val, 0);
  flags.integer("--video", o.video, 1);
  flags.integer("--samples", o.samples, 1);
  flags.value("--size", [&](const std::string& v) {
    std::tie(o.data.height, o.data.width) = tools::parse_size(v, "--size");
    FARSEE_REQUIRE(o.data.height >= 32 && o.data.width >= 32,
                   "--size " << o.data.height << "x" << o.data.width << ": at least 32x32");
    o.size_given = true;
  });
  flags.value("--seed", [&](const std::string& v) {
    o.data.seed = uint64_t(tools::parse_int(v, "--seed", 0));
  });
  flags.integer("--jobs", o.data.jobs, 1);
  flags.set_true("--train-ids", o.data.train_ids);
  flags.set_true("--labels", o.labels);
  if (!flags.parse(argc, argv)) return std::nullopt;
  FARSEE_REQUIRE(!o.data.out.empty(), "missing --out DIR (see --help)");
  return o;
}

// --video N: the generated drive (tools/video/synthetic_drive.h).
int write_video(const Options& o) {
  const tools::SyntheticDatasetOptions& d = o.data;
  FARSEE_REQUIRE(d.train == 0 && d.val == 0 && o.samples < 0 && !o.labels,
                 "--video writes a clip and its ground truth: no --train/--val/--samples/--labels");
  tools::video::DriveOptions v;
  v.out = d.out;
  v.frames = o.video;
  if (o.size_given) v.height = d.height, v.width = d.width;
  v.seed = d.seed;
  v.jobs = d.jobs;
  tools::video::write_synthetic_drive(v);
  return 0;
}

int run(Options o) {
  if (o.video > 0) return write_video(o);
  tools::SyntheticDatasetOptions& d = o.data;
  if (o.samples > 0) {
    FARSEE_REQUIRE(d.train == 0 && d.val == 0, "--samples writes plain images: no --train/--val");
    if (!o.size_given) std::tie(d.height, d.width) = std::make_pair(512, 1024);
    for (const std::string& image :
         tools::write_synthetic_samples(d.out, o.samples, d.height, d.width, d.seed, o.labels)) {
      std::printf("%s\n", image.c_str());
    }
    return 0;
  }
  FARSEE_REQUIRE(!o.labels,
                 "--labels belongs to --samples (the Cityscapes layout always has labels)");
  FARSEE_REQUIRE(d.train + d.val > 0,
                 "nothing to write: give --train N and/or --val M (see --help)");
  tools::write_synthetic_cityscapes(d);
  std::printf("farsee-make-dataset: %d train + %d val images of %dx%d (seed %llu) in %s\n", d.train,
              d.val, d.height, d.width, static_cast<unsigned long long>(d.seed), d.out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return tools::run_program("farsee-make-dataset", [&] {
    std::optional<Options> o = parse_options(argc, argv);
    return o ? run(std::move(*o)) : 0;
  });
}
