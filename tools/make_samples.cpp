// farsee-make-samples: a deterministic synthetic street-scene generator (DESIGN.md section 8) for
// demos, tests and smoke training. Each scene is painted back to front from coloured shapes: sky
// (vertical gradient), buildings with window grids, trees, a perspective road with lane markings
// between two sidewalks, poles with traffic signs, cars and pedestrians; then per-pixel noise. The
// painter records the Cityscapes trainId of every pixel, so each image comes with its exact ground
// truth. Same seed and size -> byte-identical files on every machine (own integer RNG, no libm in
// the pixel values beyond exactly rounded operations).
//
//   <out>/synthetic_<k>.png                        RGB image
//   <out>/gt/synthetic_<k>_gt_labelTrainIds.png    uint8 trainIds (with --labels; a separate
//                                                  folder, so <out> holds only the images)
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <tuple>
#include <vector>

#include "tools/cityscapes_palette.h"
#include "tools/cli.h"
#include "tools/image_io.h"

using namespace farsee;

namespace {

const char* kUsage = R"(usage: farsee-make-samples [options]

Writes synthetic street scenes (and optionally their trainId label maps) as PNG.

  --out DIR        output directory (created if missing; default samples)
  --count N        number of scenes (default 3)
  --size HxW       image size (default 512x1024)
  --seed S         first scene's seed (default 1); scene k uses seed S + k
  --labels         also write gt/<name>_gt_labelTrainIds.png
  --help           this text
)";

enum TrainId : uint8_t {
  kRoad = 0,
  kSidewalk = 1,
  kBuilding = 2,
  kPole = 5,
  kTrafficSign = 7,
  kVegetation = 8,
  kSky = 10,
  kPerson = 11,
  kCar = 13
};

struct Rng {
  uint64_t state;
  uint32_t next() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return uint32_t(state >> 33);
  }
  int range(int lo, int hi) { return lo + int(next() % uint32_t(hi - lo + 1)); }  // [lo, hi]
};

struct Rgb {
  int r, g, b;
};

class Canvas {
 public:
  Canvas(int h, int w) : h_(h), w_(w), rgb_(size_t(h) * w * 3, 0), label_(size_t(h) * w, 255) {}
  int h() const { return h_; }
  int w() const { return w_; }
  void set(int y, int x, Rgb c, uint8_t label) {
    if (y < 0 || y >= h_ || x < 0 || x >= w_) return;
    const size_t i = size_t(y) * w_ + x;
    rgb_[i * 3 + 0] = uint8_t(std::clamp(c.r, 0, 255));
    rgb_[i * 3 + 1] = uint8_t(std::clamp(c.g, 0, 255));
    rgb_[i * 3 + 2] = uint8_t(std::clamp(c.b, 0, 255));
    label_[i] = label;
  }
  void rect(int y0, int x0, int y1, int x1, Rgb c, uint8_t label) {  // [y0, y1) x [x0, x1)
    for (int y = std::max(y0, 0); y < std::min(y1, h_); ++y) {
      for (int x = std::max(x0, 0); x < std::min(x1, w_); ++x) set(y, x, c, label);
    }
  }
  void ellipse(int cy, int cx, int ry, int rx, Rgb c, uint8_t label) {
    for (int y = cy - ry; y <= cy + ry; ++y) {
      for (int x = cx - rx; x <= cx + rx; ++x) {
        const int64_t dy = y - cy, dx = x - cx;
        if (dy * dy * rx * rx + dx * dx * ry * ry <= int64_t(rx) * rx * ry * ry)
          set(y, x, c, label);
      }
    }
  }
  void noise(Rng& rng, int amplitude) {
    for (uint8_t& v : rgb_)
      v = uint8_t(std::clamp(int(v) + rng.range(-amplitude, amplitude), 0, 255));
  }
  const std::vector<uint8_t>& rgb() const { return rgb_; }
  const std::vector<uint8_t>& labels() const { return label_; }

 private:
  int h_, w_;
  std::vector<uint8_t> rgb_, label_;
};

Rgb shade(Rgb c, int delta) {
  return {c.r + delta, c.g + delta, c.b + delta};
}

void paint_scene(Canvas& cv, Rng& rng) {
  const int H = cv.h(), W = cv.w();
  const int horizon = H * rng.range(38, 48) / 100;
  // Sky: a vertical gradient from deep to pale blue.
  for (int y = 0; y < horizon; ++y) {
    const int t = y * 60 / std::max(horizon, 1);
    for (int x = 0; x < W; ++x) cv.set(y, x, Rgb{70 + t, 120 + t, 190 + t / 2}, kSky);
  }
  // Buildings along the horizon, with window grids.
  for (int x = 0; x < W;) {
    const int bw = W * rng.range(8, 20) / 100;
    const int top = horizon - H * rng.range(10, 35) / 100;
    const int grey = rng.range(60, 150);
    const Rgb wall{grey + rng.range(-10, 25), grey, grey - rng.range(0, 20)};
    cv.rect(top, x, horizon + 2, x + bw, wall, kBuilding);
    const int cell = std::max(4, W / 80);
    for (int wy = top + cell; wy + cell < horizon; wy += 2 * cell) {
      for (int wx = x + cell; wx + cell < x + bw; wx += 2 * cell) {
        cv.rect(wy, wx, wy + cell, wx + cell, shade(wall, -40), kBuilding);
      }
    }
    x += bw + rng.range(0, W / 40);
  }
  // Trees in front of the buildings.
  const int trees = rng.range(2, 5);
  for (int i = 0; i < trees; ++i) {
    const int cx = rng.range(0, W - 1), r = H * rng.range(5, 10) / 100;
    cv.rect(horizon - r / 2, cx - r / 8, horizon + r / 3, cx + r / 8, Rgb{90, 70, 40}, kVegetation);
    cv.ellipse(horizon - r, cx, r, r * 5 / 4,
               Rgb{60 + rng.range(0, 40), 120 + rng.range(0, 40), 40}, kVegetation);
  }
  // Road: a trapezoid narrowing to a vanishing point, sidewalks outside it.
  const int vanish_x = W / 2 + rng.range(-W / 10, W / 10);
  for (int y = horizon; y < H; ++y) {
    const int depth = y - horizon;  // 0 at the horizon
    const int half_road = W / 40 + depth * W / (H - horizon) * 55 / 100;
    const int half_walk = half_road + W / 60 + depth * W / (H - horizon) / 4;
    for (int x = 0; x < W; ++x) {
      const int d = std::abs(x - vanish_x);
      if (d <= half_road) {
        cv.set(y, x, Rgb{100 - depth * 30 / H, 95 - depth * 30 / H, 105 - depth * 30 / H}, kRoad);
      } else if (d <= half_walk) {
        cv.set(y, x, Rgb{200, 150, 190}, kSidewalk);
      } else {
        cv.set(y, x, Rgb{170, 150, 200}, kSidewalk);
      }
    }
    // Dashed centre line (part of the road).
    if ((depth / std::max(1, H / 40)) % 2 == 0) {
      const int half_line = 1 + depth * W / (H - horizon) / 200;
      for (int x = vanish_x - half_line; x <= vanish_x + half_line; ++x) {
        cv.set(y, x, Rgb{235, 235, 235}, kRoad);
      }
    }
  }
  // Poles with traffic signs on the sidewalks.
  for (int side : {-1, 1}) {
    const int y_base = horizon + (H - horizon) * rng.range(30, 60) / 100;
    const int depth = y_base - horizon;
    const int x = vanish_x + side * (W / 40 + depth * W / (H - horizon) * 70 / 100);
    const int height = depth * 2, half = std::max(1, depth / 30);
    cv.rect(y_base - height, x - half, y_base, x + half + 1, Rgb{150, 150, 150}, kPole);
    const int s = std::max(3, depth / 6);
    cv.rect(y_base - height, x - s, y_base - height + 2 * s, x + s, Rgb{225, 215, 20},
            kTrafficSign);
  }
  // Cars on the road, farther ones first.
  const int cars = rng.range(1, 4);
  std::vector<int> car_rows;
  for (int i = 0; i < cars; ++i)
    car_rows.push_back(horizon + (H - horizon) * rng.range(15, 85) / 100);
  std::sort(car_rows.begin(), car_rows.end());
  for (int y_base : car_rows) {
    const int depth = y_base - horizon;
    const int half_road = W / 40 + depth * W / (H - horizon) * 55 / 100;
    const int cw = std::max(6, depth * W / (H - horizon) * 35 / 100);
    const int ch = cw * 11 / 20;
    const int cx = vanish_x + rng.range(-half_road + cw / 2,
                                        std::max(-half_road + cw / 2, half_road - cw / 2));
    const Rgb body{rng.range(20, 220), rng.range(20, 120), rng.range(40, 220)};
    cv.rect(y_base - ch, cx - cw / 2, y_base - ch / 4, cx + cw / 2, body, kCar);
    cv.rect(y_base - ch - ch / 3, cx - cw / 3, y_base - ch + 1, cx + cw / 3, shade(body, -30),
            kCar);
    cv.rect(y_base - ch - ch / 4, cx - cw / 4, y_base - ch, cx + cw / 4, Rgb{60, 80, 100}, kCar);
    for (int wx : {cx - cw / 3, cx + cw / 3}) {
      cv.ellipse(y_base - ch / 4, wx, std::max(2, ch / 5), std::max(2, ch / 5), Rgb{25, 25, 25},
                 kCar);
    }
  }
  // Pedestrians on the sidewalks.
  const int people = rng.range(1, 4);
  for (int i = 0; i < people; ++i) {
    const int y_base = horizon + (H - horizon) * rng.range(20, 90) / 100;
    const int depth = y_base - horizon;
    const int side = rng.range(0, 1) ? 1 : -1;
    const int x = vanish_x + side * (W / 40 + depth * W / (H - horizon) * 62 / 100);
    const int ph = std::max(8, depth * 7 / 10), pw = std::max(3, ph / 5);
    const Rgb coat{rng.range(30, 200), rng.range(30, 200), rng.range(30, 200)};
    cv.ellipse(y_base - ph / 2, x, ph / 2 - ph / 8, pw / 2 + 1, coat, kPerson);
    cv.ellipse(y_base - ph + ph / 10, x, ph / 10 + 1, ph / 10 + 1, Rgb{225, 190, 160}, kPerson);
  }
  cv.noise(rng, 6);
}

}  // namespace

int main(int argc, char** argv) {
  return tools::run_program("farsee-make-samples", [&] {
    std::string out = "samples";
    int count = 3, seed = 1;
    int h = 512, w = 1024;
    bool labels = false;
    tools::ArgParser args(argc, argv);
    while (args.next()) {
      if (args.is("--help")) {
        std::cout << kUsage;
        return 0;
      } else if (args.is("--out")) {
        out = args.value();
      } else if (args.is("--count")) {
        count = tools::parse_int(args.value(), "--count", 1);
      } else if (args.is("--size")) {
        std::tie(h, w) = tools::parse_size(args.value(), "--size");
        FARSEE_REQUIRE(h >= 32 && w >= 32, "--size: at least 32x32");
      } else if (args.is("--seed")) {
        seed = tools::parse_int(args.value(), "--seed", 0);
      } else if (args.is("--labels")) {
        args.no_value();
        labels = true;
      } else {
        FARSEE_REQUIRE(false, "unknown argument '" << args.current() << "' (see --help)");
      }
    }
    std::error_code ec;
    std::filesystem::create_directories(out, ec);
    FARSEE_REQUIRE(std::filesystem::is_directory(out), "--out: cannot create '" << out << "'");
    if (labels) {
      std::filesystem::create_directories(out + "/gt", ec);
      FARSEE_REQUIRE(std::filesystem::is_directory(out + "/gt"),
                     "--out: cannot create '" << out << "/gt'");
    }
    for (int k = 0; k < count; ++k) {
      Rng rng{uint64_t(seed + k) * 0x9e3779b97f4a7c15ull + 1};
      Canvas canvas(h, w);
      paint_scene(canvas, rng);
      const std::string name = "synthetic_" + std::to_string(k);
      const std::string base = out + "/" + name;
      tools::write_png(base + ".png", tools::Image{w, h, 3, canvas.rgb()});
      if (labels) {
        tools::write_png(out + "/gt/" + name + "_gt_labelTrainIds.png",
                         tools::Image{w, h, 1, canvas.labels()});
      }
      std::printf("%s.png\n", base.c_str());
    }
    return 0;
  });
}
