// farsee-make-dataset: synthetic street scenes (tools/data/synthetic_scenes.h) written in the
// Cityscapes layout for farsee-train, or as plain PNGs for farsee-infer demos (--samples).
//
//   <out>/leftImg8bit/<split>/<city>/<city>_<seq:06d>_000019_leftImg8bit.png
//   <out>/gtFine/<split>/<city>/<city>_<seq:06d>_000019_gtFine_labelIds.png   (labelIds)
//   <out>/gtFine/<split>/<city>/..._gtFine_labelTrainIds.png                  (--train-ids)
// --samples N:
//   <out>/synthetic_<k>.png, and with --labels <out>/gt/synthetic_<k>_gt_labelTrainIds.png (a
//   separate folder, so <out> holds only the images)
//
// Image k of a split has scene seed mix(seed, split, k): the same flags give byte-identical files,
// and a split's first images do not depend on how many are asked for.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "tools/cli/cli.h"
#include "tools/data/dataset.h"
#include "tools/data/image_io.h"
#include "tools/data/parallel_for.h"
#include "tools/data/synthetic_scenes.h"

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
  --jobs N         scenes made in parallel (default: the number of CPUs); the files do not
                   depend on it
  --help           this text
)";

// Cities of the synthetic splits (Cityscapes-like folder names without '_').
const std::vector<std::string> kTrainCities = {"synthburg", "synthdorf", "synthfurt"};
const std::vector<std::string> kValCities = {"synthheim", "synthstadt"};

uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t scene_seed(uint64_t seed, int split, int k) {
  return mix(mix(seed) ^ mix(uint64_t(split) * 0x100000000ull + uint64_t(k)));
}

void make_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  FARSEE_REQUIRE(std::filesystem::is_directory(dir),
                 "--out: cannot create '" << dir.string() << "'");
}

std::vector<uint8_t> to_train_ids(const std::vector<uint8_t>& label_ids) {
  const auto& table = tools::cityscapes_train_ids();
  std::vector<uint8_t> out(label_ids.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = table[label_ids[i]];
  return out;
}

std::string stem(const std::string& city, int seq) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%s_%06d_000019", city.c_str(), seq);
  return buffer;
}

}  // namespace

int main(int argc, char** argv) {
  return tools::run_program("farsee-make-dataset", [&] {
    std::string out;
    int train = 0, val = 0, samples = -1;
    uint64_t seed = 0;
    int h = 0, w = 0;
    int jobs = std::max(1, int(std::thread::hardware_concurrency()));
    bool train_ids = false, labels = false;
    tools::ArgParser args(argc, argv);
    while (args.next()) {
      FARSEE_REQUIRE(!args.positional(),
                     "unexpected argument '" << args.current() << "' (see --help)");
      if (args.is("--help")) {
        std::cout << kUsage;
        return 0;
      } else if (args.is("--out")) {
        out = args.value();
      } else if (args.is("--train")) {
        train = tools::parse_int(args.value(), "--train", 0);
      } else if (args.is("--val")) {
        val = tools::parse_int(args.value(), "--val", 0);
      } else if (args.is("--samples")) {
        samples = tools::parse_int(args.value(), "--samples", 1);
      } else if (args.is("--size")) {
        std::tie(h, w) = tools::parse_size(args.value(), "--size");
        FARSEE_REQUIRE(h >= 32 && w >= 32, "--size " << h << "x" << w << ": at least 32x32");
      } else if (args.is("--seed")) {
        seed = uint64_t(tools::parse_int(args.value(), "--seed", 0));
      } else if (args.is("--jobs")) {
        jobs = tools::parse_int(args.value(), "--jobs", 1);
      } else if (args.is("--train-ids")) {
        args.no_value();
        train_ids = true;
      } else if (args.is("--labels")) {
        args.no_value();
        labels = true;
      } else {
        FARSEE_REQUIRE(false, "unknown option '" << args.current() << "' (see --help)");
      }
    }
    FARSEE_REQUIRE(!out.empty(), "missing --out DIR (see --help)");
    namespace fs = std::filesystem;
    if (samples > 0) {
      FARSEE_REQUIRE(train == 0 && val == 0, "--samples writes plain images: no --train/--val");
      if (h == 0) std::tie(h, w) = std::make_pair(512, 1024);
      make_dir(out);
      if (labels) make_dir(fs::path(out) / "gt");
      for (int k = 0; k < samples; ++k) {
        const tools::SyntheticScene s = tools::make_synthetic_scene(h, w, scene_seed(seed, 2, k));
        const std::string name = "synthetic_" + std::to_string(k);
        const std::string image = (fs::path(out) / (name + ".png")).string();
        tools::write_png(image, tools::Image{w, h, 3, s.rgb});
        if (labels) {
          tools::write_png((fs::path(out) / "gt" / (name + "_gt_labelTrainIds.png")).string(),
                           tools::Image{w, h, 1, to_train_ids(s.label_ids)});
        }
        std::printf("%s\n", image.c_str());
      }
      return 0;
    }
    FARSEE_REQUIRE(!labels,
                   "--labels belongs to --samples (the Cityscapes layout always has labels)");
    FARSEE_REQUIRE(train + val > 0, "nothing to write: give --train N and/or --val M (see --help)");
    if (h == 0) std::tie(h, w) = std::make_pair(1024, 2048);
    struct Job {
      int split, k;
      std::string city;
    };
    std::vector<Job> list;
    for (int split = 0; split < 2; ++split) {
      const std::vector<std::string>& cities = split == 0 ? kTrainCities : kValCities;
      const int count = split == 0 ? train : val;
      for (int k = 0; k < count; ++k) {
        list.push_back({split, k, cities[size_t(k) % cities.size()]});
        if (k < int(cities.size())) {
          for (const char* top : {"leftImg8bit", "gtFine"})
            make_dir(fs::path(out) / top / (split == 0 ? "train" : "val") / list.back().city);
        }
      }
    }
    tools::parallel_for(int(list.size()), jobs, [&](int i, int) {
      const Job& job = list[size_t(i)];
      const std::string split_name = job.split == 0 ? "train" : "val";
      const int cities = int((job.split == 0 ? kTrainCities : kValCities).size());
      const std::string base = stem(job.city, job.k / cities);
      const fs::path image_dir = fs::path(out) / "leftImg8bit" / split_name / job.city;
      const fs::path label_dir = fs::path(out) / "gtFine" / split_name / job.city;
      const tools::SyntheticScene s =
          tools::make_synthetic_scene(h, w, scene_seed(seed, job.split, job.k));
      tools::write_png((image_dir / (base + "_leftImg8bit.png")).string(),
                       tools::Image{w, h, 3, s.rgb});
      tools::write_png((label_dir / (base + "_gtFine_labelIds.png")).string(),
                       tools::Image{w, h, 1, s.label_ids});
      if (train_ids) {
        tools::write_png((label_dir / (base + "_gtFine_labelTrainIds.png")).string(),
                         tools::Image{w, h, 1, to_train_ids(s.label_ids)});
      }
    });
    std::printf("farsee-make-dataset: %d train + %d val images of %dx%d (seed %llu) in %s\n", train,
                val, h, w, static_cast<unsigned long long>(seed), out.c_str());
    return 0;
  });
}
