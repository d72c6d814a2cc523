#include "tools/data/synthetic_scenes.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "kernels/core/check.h"
#include "tools/data/splitmix.h"

namespace farsee::tools {
namespace {

using namespace label_id;

struct Rng {
  uint64_t state;
  uint64_t next() { return state = splitmix64(state); }
  float uniform() { return float(next() >> 40) * (1.0f / 16777216.0f); }  // [0, 1)
  float range(float lo, float hi) { return lo + (hi - lo) * uniform(); }
  int irange(int lo, int hi) { return lo + int(next() % uint64_t(hi - lo + 1)); }  // [lo, hi]
  bool chance(float p) { return uniform() < p; }
};

struct Rgb {
  float r, g, b;
};
Rgb operator*(Rgb c, float s) {
  return {c.r * s, c.g * s, c.b * s};
}
Rgb operator+(Rgb c, float d) {
  return {c.r + d, c.g + d, c.b + d};
}
Rgb lerp(Rgb a, Rgb b, float t) {
  return {a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t};
}

// Hash of a lattice point -> [-1, 1].
float lattice(int64_t x, int64_t y, uint64_t seed) {
  const uint64_t h = splitmix64(
      seed ^ splitmix64(uint64_t(x) * 0x9e3779b97f4a7c15ull ^ uint64_t(y) * 0xc2b2ae3d27d4eb4full));
  return float(h >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

// Value noise in [-1, 1] with a smooth (cubic) interpolation between lattice points.
float value_noise(float x, float y, uint64_t seed) {
  const float fx = std::floor(x), fy = std::floor(y);
  const int64_t ix = int64_t(fx), iy = int64_t(fy);
  float tx = x - fx, ty = y - fy;
  tx = tx * tx * (3 - 2 * tx);
  ty = ty * ty * (3 - 2 * ty);
  const float a = lattice(ix, iy, seed), b = lattice(ix + 1, iy, seed);
  const float c = lattice(ix, iy + 1, seed), d = lattice(ix + 1, iy + 1, seed);
  return (a + (b - a) * tx) + ((c + (d - c) * tx) - (a + (b - a) * tx)) * ty;
}

float fbm(float x, float y, uint64_t seed) {
  return 0.6f * value_noise(x, y, seed) + 0.3f * value_noise(2.03f * x, 2.03f * y, seed + 1) +
         0.1f * value_noise(4.1f * x, 4.1f * y, seed + 2);
}

float frac(float v) {
  return v - std::floor(v);
}

class Canvas {
 public:
  Canvas(int h, int w) : h_(h), w_(w), rgb_(size_t(h) * w), label_(size_t(h) * w, kUnlabeled) {}
  int h() const { return h_; }
  int w() const { return w_; }
  void set(int y, int x, Rgb c, uint8_t label) {
    if (y < 0 || y >= h_ || x < 0 || x >= w_) return;
    rgb_[size_t(y) * w_ + x] = c;
    label_[size_t(y) * w_ + x] = label;
  }
  Rgb& at(int y, int x) { return rgb_[size_t(y) * w_ + x]; }
  uint8_t label(int y, int x) const { return label_[size_t(y) * w_ + x]; }
  // Fills pixels whose centre lies in [y0, y1) x [x0, x1) (fractional bounds) with colour(y, x).
  template <typename F>
  void rect(float y0, float x0, float y1, float x1, uint8_t label, F&& colour) {
    const int ya = std::max(0, int(std::ceil(y0 - 0.5f))),
              yb = std::min(h_, int(std::ceil(y1 - 0.5f)));
    const int xa = std::max(0, int(std::ceil(x0 - 0.5f))),
              xb = std::min(w_, int(std::ceil(x1 - 0.5f)));
    for (int y = ya; y < yb; ++y) {
      for (int x = xa; x < xb; ++x) set(y, x, colour(y, x), label);
    }
  }
  template <typename F>
  void ellipse(float cy, float cx, float ry, float rx, uint8_t label, F&& colour) {
    ry = std::max(ry, 0.5f);
    rx = std::max(rx, 0.5f);
    const int ya = std::max(0, int(std::floor(cy - ry))),
              yb = std::min(h_ - 1, int(std::ceil(cy + ry)));
    const int xa = std::max(0, int(std::floor(cx - rx))),
              xb = std::min(w_ - 1, int(std::ceil(cx + rx)));
    for (int y = ya; y <= yb; ++y) {
      for (int x = xa; x <= xb; ++x) {
        const float dy = (float(y) + 0.5f - cy) / ry, dx = (float(x) + 0.5f - cx) / rx;
        if (dy * dy + dx * dx <= 1.0f) set(y, x, colour(y, x), label);
      }
    }
  }
  const std::vector<Rgb>& rgb() const { return rgb_; }
  const std::vector<uint8_t>& labels() const { return label_; }

 private:
  int h_, w_;
  std::vector<Rgb> rgb_;
  std::vector<uint8_t> label_;
};

// Palettes. Road and sidewalk greys overlap on purpose; walls share the building palette.
Rgb grey_surface(Rng& r) {
  const float g = r.range(55, 160), t = r.range(-8, 8);
  return {g + t, g, g - t + r.range(-4, 6)};
}
Rgb facade_colour(Rng& r) {
  static const Rgb palette[] = {{190, 175, 150}, {150, 150, 150}, {160, 90, 70},   {225, 220, 205},
                                {90, 90, 95},    {200, 170, 120}, {120, 130, 140}, {170, 150, 160}};
  const Rgb c = palette[r.irange(0, 7)];
  return {c.r + r.range(-25, 25), c.g + r.range(-25, 25), c.b + r.range(-25, 25)};
}
Rgb any_colour(Rng& r) {
  if (r.chance(0.35f)) return grey_surface(r) + r.range(-40, 60);  // greys like the road
  return {r.range(10, 240), r.range(10, 240), r.range(10, 240)};
}
Rgb green(Rng& r, bool dry) {
  if (dry) return {r.range(110, 160), r.range(110, 150), r.range(60, 90)};
  return {r.range(40, 110), r.range(80, 150), r.range(25, 70)};
}

struct Block {  // one stretch of a side plane along the street
  float z0, z1, height;
  bool vegetation;
  Rgb colour;
  float floor_h, window_w, window_fill;
  uint64_t seed;
};
struct Barrier {  // a wall or fence in front of a side plane
  float z0, z1, height;
  bool fence;
  Rgb colour;
  float bar_period;
};
struct Side {
  float x_plane;              // lateral position of the facades (camera-height units, signed)
  float curb, walk, terrain;  // |X| where road ends / sidewalk ends / terrain ends
  std::vector<Block> blocks;
  std::vector<Barrier> barriers;
  bool shaded;
};

class ScenePainter {
 public:
  // camera_z: how far the camera has driven down the street (camera-height units; 0: the still
  // scenes). The street and its objects depend on the seed only, so consecutive camera_z are
  // frames of one drive.
  ScenePainter(int h, int w, uint64_t seed, float camera_z = 0)
      : cv_(h, w), rng_{splitmix64(seed) ^ 0x5ce7e5ull}, camera_z_(camera_z) {}

  SyntheticScene paint() {
    setup();
    background();
    sprites();
    finish();
    SyntheticScene s;
    s.height = cv_.h();
    s.width = cv_.w();
    s.rgb.resize(size_t(s.height) * s.width * 3);
    for (size_t i = 0; i < cv_.rgb().size(); ++i) {
      const Rgb c = cv_.rgb()[i];
      s.rgb[i * 3 + 0] = uint8_t(std::clamp(int(c.r + 0.5f), 0, 255));
      s.rgb[i * 3 + 1] = uint8_t(std::clamp(int(c.g + 0.5f), 0, 255));
      s.rgb[i * 3 + 2] = uint8_t(std::clamp(int(c.b + 0.5f), 0, 255));
    }
    s.label_ids = cv_.labels();
    return s;
  }

 private:
  // Camera: ground row y has depth factor g = y - horizon (pixels per camera-height unit at that
  // depth); lateral X projects to x = vx + X g; depth Z = f / g.
  void setup() {
    const int H = cv_.h(), W = cv_.w();
    horizon_ = float(H) * rng_.range(0.30f, 0.50f);
    vx_ = float(W) * rng_.range(0.35f, 0.65f);
    f_ = float(W) * rng_.range(0.7f, 1.3f);
    half_road_ = rng_.range(1.2f, 3.2f);
    lanes_ = rng_.irange(1, 3);
    road_colour_ = grey_surface(rng_);
    marking_ = rng_.chance(0.8f) ? Rgb{230, 230, 225} : Rgb{225, 200, 60};
    crossing_z_ = rng_.chance(0.5f) ? rng_.range(8, 40) : -1.0f;
    for (int s = 0; s < 2; ++s) {
      Side& side = sides_[s];
      side.curb = half_road_;
      side.walk = side.curb + rng_.range(0.8f, 2.6f);
      side.terrain = side.walk + (rng_.chance(0.55f) ? rng_.range(0.5f, 2.5f) : 0.0f);
      side.x_plane = side.terrain + rng_.range(0.0f, 0.3f);
      side.shaded = false;
      float z = 0.5f;
      while (z < 600) {
        Block b;
        b.z0 = z;
        b.z1 = z + rng_.range(4, 30);
        b.vegetation = rng_.chance(0.15f);
        b.height = b.vegetation ? rng_.range(2, 6) : rng_.range(4, 22);
        b.colour = b.vegetation ? green(rng_, rng_.chance(0.2f)) : facade_colour(rng_);
        b.floor_h = rng_.range(1.6f, 2.4f);
        b.window_w = rng_.range(1.0f, 2.5f);
        b.window_fill = rng_.range(0.3f, 0.7f);
        b.seed = rng_.next();
        side.blocks.push_back(b);
        z = b.z1;
      }
      const int barriers = rng_.irange(0, 3);
      for (int i = 0; i < barriers; ++i) {
        Barrier br;
        br.z0 = rng_.range(2, 60);
        br.z1 = br.z0 + rng_.range(3, 25);
        br.height = rng_.range(0.5f, 1.6f);
        br.fence = rng_.chance(0.5f);
        br.colour = br.fence ? any_colour(rng_) * 0.8f : facade_colour(rng_);
        br.bar_period = rng_.range(0.15f, 0.5f);
        side.barriers.push_back(br);
      }
    }
    sides_[rng_.irange(0, 1)].shaded = rng_.chance(0.6f);
    sky_kind_ = rng_.irange(0, 2);  // blue, overcast grey, dusk
    walk_colour_ = rng_.chance(0.5f)
                       ? grey_surface(rng_)
                       : Rgb{rng_.range(120, 200), rng_.range(90, 150), rng_.range(80, 140)};
    tile_ = rng_.range(0.3f, 0.8f);
    noise_seed_ = rng_.next();
  }

  float g_of_row(int y) const { return float(y) + 0.5f - horizon_; }
  float x_of(float X, float g) const { return vx_ + X * g; }
  float ground_y(float g) const { return horizon_ + g; }

  Rgb sky(int y, int x) const {
    const float t = std::clamp((float(y) + 0.5f) / std::max(horizon_, 1.0f), 0.0f, 1.2f);
    const float cloud = fbm(float(x) * 6 / cv_.w(), float(y) * 12 / cv_.w(), noise_seed_ + 7);
    Rgb top, bottom;
    if (sky_kind_ == 0) {
      top = {60, 110, 190};
      bottom = {170, 200, 230};
    } else if (sky_kind_ == 1) {
      top = {150, 155, 160};
      bottom = {200, 200, 200};
    } else {
      top = {90, 90, 140};
      bottom = {240, 160, 90};
    }
    return lerp(top, bottom, t) + cloud * 25;
  }

  Rgb ground(float X, float Z, int y, int x, uint8_t* label) const {
    const float ax = std::fabs(X);
    const Side& side = sides_[X < 0 ? 0 : 1];
    const float grain = lattice(x, y, noise_seed_ + 3) * 6;
    if (ax <= side.curb) {
      *label = kRoad;
      Rgb c = road_colour_ + (fbm(X * 2, Z * 0.5f, noise_seed_ + 11) * 14 + grain);
      // Lane markings: dashed lines between lanes, solid near the edges.
      const float lane_w = 2 * half_road_ / float(lanes_ + 1);
      for (int l = 1; l <= lanes_; ++l) {
        const float lx = -half_road_ + lane_w * float(l);
        if (std::fabs(X - lx) < 0.06f && frac(Z / 6.0f) < 0.5f) c = marking_ + grain;
      }
      if (std::fabs(ax - (half_road_ - 0.25f)) < 0.05f) c = marking_ * 0.95f + grain;
      if (crossing_z_ > 0 && Z > crossing_z_ && Z < crossing_z_ + 2.5f && frac(X / 0.9f) < 0.5f)
        c = marking_ + grain;
      return c;
    }
    if (ax <= side.curb + 0.12f) {  // the curb stone, part of the sidewalk
      *label = kSidewalk;
      return walk_colour_ * 1.15f + (15 + grain);
    }
    if (ax <= side.walk) {
      *label = kSidewalk;
      const bool joint = frac(X / tile_) < 0.06f || frac(Z / tile_) < 0.06f;
      const float tile_shade =
          lattice(int64_t(std::floor(X / tile_)), int64_t(std::floor(Z / tile_)), noise_seed_ + 5) *
          8;
      return walk_colour_ * (joint ? 0.75f : 1.0f) + (tile_shade + grain);
    }
    if (ax <= side.terrain) {
      *label = kTerrain;
      return terrain_colour_ + (fbm(X * 1.5f, Z * 0.7f, noise_seed_ + 13) * 18 + grain);
    }
    *label = kTerrain;  // only reachable in a block gap's ground
    return terrain_colour_ + grain;
  }

  const Block* block_at(const Side& side, float Z) const {
    for (const Block& b : side.blocks) {
      if (Z >= b.z0 && Z < b.z1) return &b;
    }
    return nullptr;
  }

  void background() {
    const int H = cv_.h(), W = cv_.w();
    terrain_colour_ = green(rng_, rng_.chance(0.4f));
    far_height_ = rng_.range(0.5f, 6.0f);
    far_colour_ = facade_colour(rng_) * 0.9f;
    const float g_far = f_ / 600.0f;
    for (int x = 0; x < W; ++x) {
      const float dx = float(x) + 0.5f - vx_;
      const int s = dx < 0 ? 0 : 1;
      const Side& side = sides_[s];
      const float X_plane = s == 0 ? -side.x_plane : side.x_plane;
      const float g_f = dx / X_plane;  // the side plane's depth factor in this column (> 0)
      const float Z_f = f_ / std::max(g_f, 1e-3f) + camera_z_;  // world depth
      const Block* block = block_at(side, Z_f);
      for (int y = 0; y < H; ++y) {
        const float g = g_of_row(y);
        uint8_t label = kSky;
        Rgb c;
        bool done = false;
        if (g > 0) {
          const float X = dx / g;
          if (std::fabs(X) <= side.x_plane) {
            c = ground(X, f_ / g + camera_z_, y, x, &label);
            if (side.shaded && std::fabs(X) > side.x_plane * 0.55f) c = c * 0.6f;
            done = true;
          }
        }
        if (!done && block != nullptr) {
          const float v = (ground_y(g_f) - (float(y) + 0.5f)) / g_f;  // height above ground
          if (v >= 0 && v < block->height) {
            c = facade(*block, Z_f, v, y, x, &label);
            if (side.shaded) c = c * 0.7f;
            done = true;
          }
        }
        if (!done && g > -g_far * far_height_) {  // the skyline at the street's end
          label = kBuilding;
          c = far_colour_ + lattice(x / 3, y / 3, noise_seed_ + 17) * 10;
          done = true;
        }
        if (!done) c = sky(y, x);
        // Walls and fences in front of the side plane.
        for (const Barrier& br : side.barriers) {
          const float X_b = (side.x_plane - 0.05f) * (s == 0 ? -1.0f : 1.0f);
          const float g_b = dx / X_b, Z_b = f_ / std::max(g_b, 1e-3f) + camera_z_;
          if (Z_b < br.z0 || Z_b >= br.z1) continue;
          const float v = (ground_y(g_b) - (float(y) + 0.5f)) / g_b;
          if (v < 0 || v >= br.height) continue;
          if (br.fence) {
            const bool rail = v < 0.08f || v > br.height - 0.1f;
            if (!rail && frac(Z_b / br.bar_period) > 0.3f) continue;  // see-through
            label = kFence;
            c = br.colour + lattice(x, y, noise_seed_ + 19) * 8;
          } else {
            label = kWall;
            const bool course = frac(v / 0.35f) < 0.07f;
            c = br.colour * (course ? 0.85f : 1.0f) + fbm(Z_b * 0.8f, v * 2, noise_seed_ + 23) * 10;
          }
          if (side.shaded) c = c * 0.7f;
        }
        cv_.set(y, x, c, label);
      }
    }
  }

  Rgb facade(const Block& b, float Z, float v, int y, int x, uint8_t* label) const {
    const float grain = lattice(x, y, b.seed) * 5;
    if (b.vegetation) {
      *label = kVegetation;
      const float leaf =
          value_noise(Z * 3, v * 3, b.seed) + 0.5f * value_noise(Z * 9, v * 9, b.seed + 1);
      return b.colour * (0.75f + 0.25f * leaf) + grain;
    }
    *label = kBuilding;
    const float floor_pos = frac(v / b.floor_h), col_pos = frac(Z / b.window_w);
    const bool ground_floor = v < b.floor_h;
    const bool window =
        !ground_floor && floor_pos > 0.3f && floor_pos < 0.8f && col_pos < b.window_fill;
    if (window) {
      const float refl = value_noise(Z * 0.3f, v * 0.3f, b.seed + 2);
      return Rgb{60, 75, 95} + (refl * 30 + grain);
    }
    return b.colour * (ground_floor ? 0.85f : 1.0f) +
           (fbm(Z * 0.5f, v * 0.5f, b.seed + 3) * 10 + grain);
  }

  // A sprite standing on the ground at (X, Z).
  struct Sprite {
    float Z;
    std::function<void()> paint;
  };

  void sprites() {
    std::vector<Sprite> list;
    const int trees = rng_.irange(1, 6), poles = rng_.irange(1, 4), cars = rng_.irange(1, 7);
    const int people = rng_.irange(1, 6), statics = rng_.irange(0, 3);
    for (int i = 0; i < trees; ++i) {
      const int s = rng_.irange(0, 1);
      const float sign = s == 0 ? -1.0f : 1.0f;
      const Side& side = sides_[s];
      const float X =
          sign * rng_.range(side.walk - 0.5f, std::max(side.walk - 0.4f, side.terrain - 0.3f));
      const float Z = rng_.range(3, 120), height = rng_.range(3, 7), crown = rng_.range(1.0f, 2.5f);
      const Rgb leaves = green(rng_, rng_.chance(0.15f));
      const Rgb trunk = {rng_.range(60, 110), rng_.range(45, 80), rng_.range(30, 60)};
      const uint64_t seed = rng_.next();
      const int blobs = rng_.irange(3, 6);
      list.push_back({Z, [=] { tree(X, Z, height, crown, leaves, trunk, blobs, seed); }});
    }
    for (int i = 0; i < poles; ++i) {
      const int s = rng_.irange(0, 1);
      const float X = (s == 0 ? -1.0f : 1.0f) * (sides_[s].curb + rng_.range(0.3f, 0.6f));
      const float Z = rng_.range(3, 80), height = rng_.range(2.5f, 5.0f);
      const int kind = rng_.irange(0, 2);  // sign, traffic light, bare
      const Rgb metal = Rgb{rng_.range(60, 170), rng_.range(60, 170), rng_.range(60, 170)};
      const Rgb plate = sign_colour(rng_);
      const int shape = rng_.irange(0, 2);
      const int lit = rng_.irange(0, 2);
      list.push_back({Z, [=] { pole(X, Z, height, kind, metal, plate, shape, lit); }});
    }
    for (int i = 0; i < cars; ++i) {
      const float lane = rng_.range(-half_road_ + 0.7f, half_road_ - 0.7f);
      const float Z = rng_.range(3.5f, 120);
      const Rgb body = any_colour(rng_);
      const float w = rng_.range(1.1f, 1.4f), h = rng_.range(0.9f, 1.3f);
      const uint64_t seed = rng_.next();
      list.push_back({Z, [=] { car(lane, Z, w, h, body, seed); }});
    }
    for (int i = 0; i < people; ++i) {
      const int s = rng_.irange(0, 1);
      const bool crossing = rng_.chance(0.2f);
      const float X =
          crossing ? rng_.range(-half_road_, half_road_)
                   : (s == 0 ? -1.0f : 1.0f) * rng_.range(sides_[s].curb + 0.3f, sides_[s].walk);
      const float Z = rng_.range(2.5f, 70), h = rng_.range(1.0f, 1.3f);
      const Rgb coat = any_colour(rng_), legs = any_colour(rng_) * 0.7f;
      const Rgb skin = lerp(Rgb{240, 200, 170}, Rgb{90, 60, 40}, rng_.uniform());
      list.push_back({Z, [=] { person(X, Z, h, coat, legs, skin); }});
    }
    for (int i = 0; i < statics; ++i) {
      const int s = rng_.irange(0, 1);
      const float X = (s == 0 ? -1.0f : 1.0f) * rng_.range(sides_[s].curb + 0.3f, sides_[s].walk);
      const float Z = rng_.range(3, 40), h = rng_.range(0.5f, 1.0f), w = rng_.range(0.3f, 0.7f);
      const Rgb c = any_colour(rng_);
      list.push_back({Z, [=] { box(X, Z, w, h, c, kStatic); }});
    }
    std::stable_sort(list.begin(), list.end(),
                     [](const Sprite& a, const Sprite& b) { return a.Z > b.Z; });
    for (const Sprite& s : list) {
      if (s.Z - camera_z_ >= kNearZ) s.paint();  // the ones the camera has passed are gone
    }
  }

  static Rgb sign_colour(Rng& r) {
    static const Rgb c[] = {{200, 30, 30}, {30, 60, 170}, {235, 235, 235}, {230, 200, 30}};
    return c[r.irange(0, 3)];
  }

  // Sprite helpers: a world rectangle [X0, X1] x [v0, v1] (height above ground) at depth Z.
  template <typename F>
  void world_rect(float X0, float X1, float v0, float v1, float Z, uint8_t label, F&& colour) {
    const float g = f_ / (Z - camera_z_);
    cv_.rect(ground_y(g) - v1 * g, x_of(X0, g), ground_y(g) - v0 * g, x_of(X1, g), label, colour);
  }
  template <typename F>
  void world_ellipse(float X, float v, float rx, float ry, float Z, uint8_t label, F&& colour) {
    const float g = f_ / (Z - camera_z_);
    cv_.ellipse(ground_y(g) - v * g, x_of(X, g), ry * g, rx * g, label, colour);
  }
  // A thin world rectangle at least one pixel wide.
  template <typename F>
  void world_bar(float X, float half_w, float v0, float v1, float Z, uint8_t label, F&& colour) {
    const float g = f_ / (Z - camera_z_);
    const float hw = std::max(half_w * g, 0.5f);
    cv_.rect(ground_y(g) - v1 * g, x_of(X, g) - hw, ground_y(g) - v0 * g, x_of(X, g) + hw, label,
             colour);
  }
  auto textured(Rgb c, uint64_t seed, float amp) const {
    return [c, seed, amp](int y, int x) { return c + lattice(x, y, seed) * amp; };
  }

  void tree(float X, float Z, float height, float crown, Rgb leaves, Rgb trunk, int blobs,
            uint64_t seed) {
    world_bar(X, 0.12f, 0, height * 0.6f, Z, kVegetation, textured(trunk, seed, 8));
    Rng r{seed};
    const float g = f_ / (Z - camera_z_);
    const float leaf_scale = std::max(2.0f, 0.15f * g);
    for (int i = 0; i < blobs; ++i) {
      const float bx = X + r.range(-crown, crown) * 0.6f,
                  bv = height - crown + r.range(-0.5f, 1.0f);
      const float rad = crown * r.range(0.5f, 0.9f);
      world_ellipse(bx, bv, rad, rad * 0.9f, Z, kVegetation, [=](int y, int x) {
        const float n = value_noise(float(x) / leaf_scale, float(y) / leaf_scale, seed + 1);
        return leaves * (0.65f + 0.35f * n) + lattice(x, y, seed + 2) * 12;
      });
    }
  }

  void pole(float X, float Z, float height, int kind, Rgb metal, Rgb plate, int shape, int lit) {
    world_bar(X, 0.06f, 0, height, Z, kPole, textured(metal, noise_seed_ + 29, 6));
    if (kind == 0) {  // traffic sign
      const float s = 0.35f, v = height - s;
      const auto colour = textured(plate, noise_seed_ + 31, 6);
      if (shape == 0) {
        world_ellipse(X, v, s, s, Z, kTrafficSign, colour);
      } else if (shape == 1) {
        world_rect(X - s, X + s, v - s * 0.7f, v + s * 0.7f, Z, kTrafficSign, colour);
      } else {  // triangle: rows of shrinking width
        const int steps = 8;
        for (int i = 0; i < steps; ++i) {
          const float w = s * (1.0f - float(i) / steps);
          world_rect(X - w, X + w, v - s + 2 * s * float(i) / steps,
                     v - s + 2 * s * float(i + 1) / steps, Z, kTrafficSign, colour);
        }
      }
    } else if (kind == 1) {  // traffic light
      const float top = height + 0.1f, bottom = height - 0.9f;
      world_rect(X - 0.18f, X + 0.18f, bottom, top, Z, kTrafficLight,
                 textured(Rgb{35, 35, 30}, noise_seed_ + 37, 5));
      const Rgb lamps[3] = {{230, 40, 30}, {240, 190, 40}, {60, 220, 90}};
      for (int i = 0; i < 3; ++i) {
        const Rgb c = i == lit ? lamps[i] : lamps[i] * 0.3f;
        world_ellipse(X, top - 0.17f - 0.33f * float(i), 0.11f, 0.11f, Z, kTrafficLight,
                      [c](int, int) { return c; });
      }
    }
  }

  void car(float X, float Z, float w, float h, Rgb body, uint64_t seed) {
    // Shadow on the ground under the car (the label stays the ground's).
    const float g = f_ / (Z - camera_z_);
    const float sy = ground_y(g), sx = x_of(X, g);
    const int ya = std::max(0, int(sy - 0.12f * g)), yb = std::min(cv_.h() - 1, int(sy + 0.1f * g));
    for (int y = ya; y <= yb; ++y) {
      for (int x = std::max(0, int(sx - 0.7f * w * g));
           x < std::min(cv_.w(), int(sx + 0.7f * w * g)); ++x)
        cv_.at(y, x) = cv_.at(y, x) * 0.55f;
    }
    const float hw = w / 2;
    const auto paint = textured(body, seed, 6);
    world_rect(X - hw, X + hw, 0.2f, h * 0.6f, Z, kCar, paint);                // body
    world_rect(X - hw * 0.85f, X + hw * 0.85f, h * 0.6f, h, Z, kCar, paint);   // cabin
    world_rect(X - hw * 0.75f, X + hw * 0.75f, h * 0.63f, h * 0.93f, Z, kCar,  // window
               textured(Rgb{40, 50, 60} + float(seed % 40), seed + 1, 8));
    world_rect(X - hw, X - hw * 0.6f, 0.4f, 0.5f, Z, kCar, textured(Rgb{200, 30, 20}, seed, 10));
    world_rect(X + hw * 0.6f, X + hw, 0.4f, 0.5f, Z, kCar, textured(Rgb{200, 30, 20}, seed, 10));
    world_rect(X - hw * 0.3f, X + hw * 0.3f, 0.27f, 0.37f, Z, kCar,  // number plate
               textured(Rgb{220, 220, 215}, seed, 5));
    for (float wx : {X - hw * 0.75f, X + hw * 0.75f})
      world_rect(wx - 0.12f, wx + 0.12f, 0.0f, 0.25f, Z, kCar, textured(Rgb{20, 20, 22}, seed, 4));
  }

  void person(float X, float Z, float h, Rgb coat, Rgb legs, Rgb skin) {
    const float s = h / 1.2f;
    const auto leg = textured(legs, noise_seed_ + 41, 6),
               torso = textured(coat, noise_seed_ + 43, 8);
    world_rect(X - 0.12f * s, X - 0.02f * s, 0, 0.55f * s, Z, kPerson, leg);
    world_rect(X + 0.02f * s, X + 0.12f * s, 0, 0.55f * s, Z, kPerson, leg);
    world_ellipse(X, 0.78f * s, 0.17f * s, 0.27f * s, Z, kPerson, torso);
    world_rect(X - 0.22f * s, X - 0.15f * s, 0.55f * s, 0.95f * s, Z, kPerson, torso);  // arms
    world_rect(X + 0.15f * s, X + 0.22f * s, 0.55f * s, 0.95f * s, Z, kPerson, torso);
    world_ellipse(X, 1.1f * s, 0.09f * s, 0.1f * s, Z, kPerson,
                  textured(skin, noise_seed_ + 47, 5));
  }

  void box(float X, float Z, float w, float h, Rgb c, uint8_t label) {
    world_rect(X - w / 2, X + w / 2, 0, h, Z, label, textured(c, noise_seed_ + 53, 8));
  }

  // Lighting, void regions and noise.
  void finish() {
    const int H = cv_.h(), W = cv_.w();
    // The ego vehicle's bonnet (void) in some scenes.
    if (rng_.chance(0.5f)) {
      const float top = float(H) * rng_.range(0.88f, 0.95f),
                  bulge = float(H) * rng_.range(0.01f, 0.04f);
      const Rgb c = any_colour(rng_) * 0.6f;
      for (int x = 0; x < W; ++x) {
        const float t = (float(x) + 0.5f) / float(W) * 2 - 1;
        const float edge = top - bulge * (1 - t * t);
        for (int y = std::max(0, int(edge)); y < H; ++y)
          cv_.set(y, x, c + float(y - H) * 0.5f + lattice(x, y, noise_seed_ + 59) * 4, kEgoVehicle);
      }
    }
    // Rectification borders (void) in some scenes.
    if (rng_.chance(0.3f)) {
      const int bw = std::max(1, W / 150);
      for (int y = 0; y < H; ++y) {
        for (int x = 0; x < bw; ++x) {
          cv_.set(y, x, Rgb{0, 0, 0}, kRectificationBorder);
          cv_.set(y, W - 1 - x, Rgb{0, 0, 0}, kRectificationBorder);
        }
      }
    }
    // Exposure, white balance, a lighting gradient across the image, sensor noise.
    const float exposure = rng_.range(0.6f, 1.3f);
    const Rgb tint{rng_.range(0.85f, 1.15f), rng_.range(0.9f, 1.1f), rng_.range(0.85f, 1.15f)};
    const float grad_x = rng_.range(-0.3f, 0.3f), grad_y = rng_.range(-0.2f, 0.2f);
    const float noise = rng_.range(2, 9);
    for (int y = 0; y < H; ++y) {
      for (int x = 0; x < W; ++x) {
        const float l = exposure * (1 + grad_x * ((float(x) + 0.5f) / W - 0.5f) +
                                    grad_y * ((float(y) + 0.5f) / H - 0.5f));
        Rgb& c = cv_.at(y, x);
        c = {c.r * l * tint.r, c.g * l * tint.g, c.b * l * tint.b};
        const uint64_t h =
            splitmix64(noise_seed_ ^ splitmix64(uint64_t(y) * uint64_t(W) + uint64_t(x)));
        const auto channel = [&](int k) {
          return (float((h >> (k * 16)) & 0xffff) * (1.0f / 65536.0f) - 0.5f) * 2 * noise;
        };
        c = {c.r + channel(0), c.g + channel(1), c.b + channel(2)};
      }
    }
  }

  // Sprites nearer than this (camera-height units) are not drawn (a moving camera passes them).
  static constexpr float kNearZ = 1.5f;

  Canvas cv_;
  Rng rng_;
  float camera_z_ = 0;
  float horizon_ = 0, vx_ = 0, f_ = 0, half_road_ = 0, crossing_z_ = -1, tile_ = 0.5f;
  int lanes_ = 1, sky_kind_ = 0;
  Rgb road_colour_{}, marking_{}, walk_colour_{}, terrain_colour_{}, far_colour_{};
  float far_height_ = 1;
  Side sides_[2];
  uint64_t noise_seed_ = 0;
};

}  // namespace

SyntheticScene make_synthetic_scene(int height, int width, uint64_t seed) {
  FARSEE_REQUIRE(height >= 32 && width >= 32,
                 "synthetic scene size " << height << "x" << width << ": at least 32x32");
  return ScenePainter(height, width, seed).paint();
}

SyntheticScene make_synthetic_drive_frame(int height, int width, uint64_t seed, float camera_z) {
  FARSEE_REQUIRE(height >= 32 && width >= 32,
                 "synthetic scene size " << height << "x" << width << ": at least 32x32");
  FARSEE_REQUIRE(camera_z >= 0 && camera_z <= 400,
                 "synthetic drive: camera position " << camera_z << " outside [0, 400]");
  return ScenePainter(height, width, seed, camera_z).paint();
}

}  // namespace farsee::tools
