#include "tools/data/synthetic_dataset.h"

#include <cstdio>
#include <filesystem>

#include "kernels/core/check.h"
#include "tools/cityscapes/metrics.h"
#include "tools/data/image_io.h"
#include "tools/data/parallel_for.h"
#include "tools/data/splitmix.h"
#include "tools/data/synthetic_scenes.h"

namespace farsee::tools {
namespace {

namespace fs = std::filesystem;

// Cities of the synthetic splits (Cityscapes-like folder names without '_').
const std::vector<std::string> kTrainCities = {"synthburg", "synthdorf", "synthfurt"};
const std::vector<std::string> kValCities = {"synthheim", "synthstadt"};

// split: 0 train, 1 val, 2 plain samples.
uint64_t scene_seed(uint64_t seed, int split, int k) {
  return splitmix64(splitmix64(seed) ^ splitmix64(uint64_t(split) * 0x100000000ull + uint64_t(k)));
}

void make_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  FARSEE_REQUIRE(fs::is_directory(dir), "--out: cannot create '" << dir.string() << "'");
}

std::string stem(const std::string& city, int seq) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%s_%06d_000019", city.c_str(), seq);
  return buffer;
}

struct Job {
  int split, k;
  std::string city;
};

// Every image of both splits, round-robin over the split's cities; creates their folders.
std::vector<Job> list_jobs(const SyntheticDatasetOptions& o) {
  std::vector<Job> list;
  for (int split = 0; split < 2; ++split) {
    const std::vector<std::string>& cities = split == 0 ? kTrainCities : kValCities;
    const int count = split == 0 ? o.train : o.val;
    for (int k = 0; k < count; ++k) {
      list.push_back({split, k, cities[size_t(k) % cities.size()]});
      if (k < int(cities.size())) {
        for (const char* top : {"leftImg8bit", "gtFine"})
          make_dir(fs::path(o.out) / top / (split == 0 ? "train" : "val") / list.back().city);
      }
    }
  }
  return list;
}

void write_job(const SyntheticDatasetOptions& o, const Job& job) {
  const int h = o.height, w = o.width;
  const std::string split_name = job.split == 0 ? "train" : "val";
  const int cities = int((job.split == 0 ? kTrainCities : kValCities).size());
  const std::string base = stem(job.city, job.k / cities);
  const fs::path image_dir = fs::path(o.out) / "leftImg8bit" / split_name / job.city;
  const fs::path label_dir = fs::path(o.out) / "gtFine" / split_name / job.city;
  const SyntheticScene s = make_synthetic_scene(h, w, scene_seed(o.seed, job.split, job.k));
  write_png((image_dir / (base + "_leftImg8bit.png")).string(), Image{w, h, 3, s.rgb});
  write_png((label_dir / (base + "_gtFine_labelIds.png")).string(), Image{w, h, 1, s.label_ids});
  if (o.train_ids) {
    write_png((label_dir / (base + "_gtFine_labelTrainIds.png")).string(),
              Image{w, h, 1, to_train_ids(s.label_ids)});
  }
}

}  // namespace

std::vector<uint8_t> to_train_ids(const std::vector<uint8_t>& label_ids) {
  const auto& table = cityscapes_train_ids();
  std::vector<uint8_t> out(label_ids.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = table[label_ids[i]];
  return out;
}

void write_synthetic_cityscapes(const SyntheticDatasetOptions& o) {
  FARSEE_REQUIRE(o.train + o.val > 0, "nothing to write: give --train N and/or --val M");
  const std::vector<Job> list = list_jobs(o);
  parallel_for(int(list.size()), o.jobs, [&](int i, int) { write_job(o, list[size_t(i)]); });
}

std::vector<std::string> write_synthetic_samples(const std::string& out, int count, int height,
                                                 int width, uint64_t seed, bool labels) {
  make_dir(out);
  if (labels) make_dir(fs::path(out) / "gt");
  std::vector<std::string> images;
  for (int k = 0; k < count; ++k) {
    const SyntheticScene s = make_synthetic_scene(height, width, scene_seed(seed, 2, k));
    const std::string name = "synthetic_" + std::to_string(k);
    images.push_back((fs::path(out) / (name + ".png")).string());
    write_png(images.back(), Image{width, height, 3, s.rgb});
    if (labels) {
      write_png((fs::path(out) / "gt" / (name + "_gt_labelTrainIds.png")).string(),
                Image{width, height, 1, to_train_ids(s.label_ids)});
    }
  }
  return images;
}

}  // namespace farsee::tools
