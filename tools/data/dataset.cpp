#include "tools/data/dataset.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <numeric>

#include "kernels/augment.h"
#include "kernels/core/check.h"
#include "kernels/core/half_convert.h"
#include "kernels/core/runtime.h"
#include "net/farsee_net.h"
#include "net/preprocess.h"
#include "tools/cityscapes/metrics.h"
#include "tools/data/image_io.h"
#include "tools/data/pack.h"
#include "tools/data/splitmix.h"

namespace farsee::tools {
namespace fs = std::filesystem;
namespace {

constexpr const char* kImageSuffix = "_leftImg8bit.png";
constexpr const char* kLabelSuffix = "_gtFine_labelIds.png";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::vector<SamplePaths> list_cityscapes(const std::string& root, const std::string& split) {
  const fs::path images = fs::path(root) / "leftImg8bit" / split;
  std::error_code ec;
  FARSEE_REQUIRE(fs::is_directory(images, ec),
                 "--data: '" << images.string()
                             << "' is not a directory (expected the Cityscapes layout "
                                "leftImg8bit/<split>/<city>/*_leftImg8bit.png)");
  std::vector<SamplePaths> out;
  for (const auto& city : fs::directory_iterator(images)) {
    if (!city.is_directory()) continue;
    for (const auto& f : fs::directory_iterator(city.path())) {
      const std::string name = f.path().filename().string();
      if (!f.is_regular_file() || !ends_with(name, kImageSuffix)) continue;
      const std::string stem = name.substr(0, name.size() - std::string(kImageSuffix).size());
      const fs::path label =
          fs::path(root) / "gtFine" / split / city.path().filename() / (stem + kLabelSuffix);
      out.push_back({f.path().string(), label.string()});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const SamplePaths& a, const SamplePaths& b) { return a.image < b.image; });
  FARSEE_REQUIRE(!out.empty(),
                 "--data: no *" << kImageSuffix << " under '" << images.string() << "/<city>/'");
  for (const auto& s : out) {
    FARSEE_REQUIRE(fs::is_regular_file(s.label, ec),
                   "missing label file '" << s.label << "' for image '" << s.image << "'");
  }
  return out;
}

namespace {

// labelIds -> trainIds in place; throws naming the file for a trainId >= num_classes.
void to_train_ids(Image& label, const std::string& label_path, int num_classes) {
  const auto& table = cityscapes_train_ids();
  for (uint8_t& v : label.data) {
    const uint8_t t = table[v];
    FARSEE_REQUIRE(t == 255 || t < num_classes, "label file '" << label_path << "' holds trainId "
                                                               << int(t) << ", but the network has "
                                                               << num_classes << " classes");
    v = t;
  }
}

}  // namespace

Image read_train_ids(const std::string& label_path, int num_classes) {
  Image label = read_grey(label_path);
  to_train_ids(label, label_path, num_classes);
  return label;
}

DecodedSample decode_sample(const SamplePaths& paths, int num_classes) {
  DecodedSample d{read_rgb(paths.image), read_grey(paths.label)};
  FARSEE_REQUIRE(d.image.width == d.label.width && d.image.height == d.label.height,
                 "image '" << paths.image << "' is " << d.image.height << "x" << d.image.width
                           << " but its label file '" << paths.label << "' is " << d.label.height
                           << "x" << d.label.width << " (HxW)");
  to_train_ids(d.label, paths.label, num_classes);
  return d;
}

void resize_labels_nearest(const uint8_t* in, int h, int w, uint8_t* out, int out_h, int out_w) {
  for (int y = 0; y < out_h; ++y) {
    const uint8_t* row = in + size_t(int(int64_t(y) * h / out_h)) * w;
    for (int x = 0; x < out_w; ++x) out[size_t(y) * out_w + x] = row[int(int64_t(x) * w / out_w)];
  }
}

namespace {

// A Cityscapes folder: list_cityscapes, decode_sample.
class FolderSource : public SampleSource {
 public:
  FolderSource(const std::string& root, const std::string& split)
      : root_(root), files_(list_cityscapes(root, split)) {}
  size_t size() const override { return files_.size(); }
  DecodedSample decode(size_t i, int num_classes) const override {
    return decode_sample(files_[i], num_classes);
  }
  Image label(size_t i, int num_classes) const override {
    return read_train_ids(files_[i].label, num_classes);
  }
  SamplePaths paths(size_t i) const override { return files_[i]; }
  std::string describe() const override { return "folder " + root_; }

 private:
  std::string root_;
  std::vector<SamplePaths> files_;
};

}  // namespace

std::shared_ptr<const SampleSource> open_samples(const std::string& data,
                                                 const std::string& split) {
  std::error_code ec;
  // A file is read as a pack (its magic checked there); a folder as the Cityscapes layout.
  if (fs::is_regular_file(data, ec)) return open_pack_source(data, split);
  return std::make_shared<FolderSource>(data, split);
}

namespace {

void mirror(float* input, int h, int w, uint8_t* labels, int lh, int lw) {
  for (int y = 0; y < h; ++y) {
    float* row = input + size_t(y) * w * 3;
    for (int x = 0; x < w / 2; ++x) {
      for (int c = 0; c < 3; ++c) std::swap(row[x * 3 + c], row[(w - 1 - x) * 3 + c]);
    }
  }
  for (int y = 0; y < lh; ++y) std::reverse(labels + size_t(y) * lw, labels + size_t(y + 1) * lw);
}

// No geometric step at the label size: plain resizes and the mirror (load_sample, augment_sample).
bool resize_only(const AugmentDraw& draw, const DatasetOptions& o) {
  return draw.geometric_identity() && draw.window_h == o.label_height() &&
         draw.window_w == o.label_width();
}

}  // namespace

void load_sample(const SamplePaths& paths, const DatasetOptions& o, const AugmentDraw& draw,
                 float* input, uint8_t* labels) {
  load_sample(decode_sample(paths, o.num_classes), o, draw, input, labels);
}

void load_sample(const DecodedSample& d, const DatasetOptions& o, const AugmentDraw& draw,
                 float* input, uint8_t* labels) {
  const int h = d.image.height, w = d.image.width, oh = o.input_h, ow = o.input_w;
  const int lh = o.label_height(), lw = o.label_width();
  if (resize_only(draw, o)) {
    // Plain resizes (the image exactly as farsee-infer's, net/preprocess.h), then the mirror.
    net::rgb8_to_unit(d.image.data.data(), h, w, input, oh, ow);
    resize_labels_nearest(d.label.data.data(), h, w, labels, lh, lw);
    if (draw.flip) mirror(input, oh, ow, labels, lh, lw);
  } else {
    warp_rgb8(d.image.data.data(), h, w, input, oh, ow, augment_affine(draw, lh, lw, h, w, oh, ow),
              kImageNetMean);
    warp_labels(d.label.data.data(), h, w, labels, lh, lw,
                augment_affine(draw, lh, lw, h, w, lh, lw));
  }
  photometric(draw, input, int64_t(oh) * ow);
  net::normalise_rgb(input, int64_t(oh) * ow);
}

void load_sample(const SamplePaths& paths, const DatasetOptions& o, bool flip, float* input,
                 uint8_t* labels) {
  AugmentDraw draw;
  draw.flip = flip;
  draw.window_h = o.label_height();
  draw.window_w = o.label_width();
  load_sample(paths, o, draw, input, labels);
}

CityscapesDataset::CityscapesDataset(const std::string& root, const std::string& split,
                                     const DatasetOptions& options)
    : source_(open_samples(root, split)), options_(options) {
  for (size_t i = 0; i < source_->size(); ++i) files_.push_back(source_->paths(i));
  FARSEE_REQUIRE(options.batch >= 1, "--batch " << options.batch << " must be >= 1");
  FARSEE_REQUIRE(options.input_h > 0 && options.input_w > 0, "--input-size must be positive");
}

size_t CityscapesDataset::file_at(int64_t position) const {
  const int64_t count = int64_t(files_.size());
  const int64_t epoch = position / count, index = position % count;
  if (!options_.shuffle) return size_t(index);
  // A seeded Fisher-Yates permutation per epoch.
  std::vector<size_t> order(files_.size());
  std::iota(order.begin(), order.end(), size_t(0));
  uint64_t state = splitmix64(options_.seed ^ splitmix64(uint64_t(epoch) + 0x5eedull));
  for (size_t i = order.size(); i > 1; --i) {
    state = splitmix64(state);
    std::swap(order[i - 1], order[size_t(state % i)]);
  }
  return order[size_t(index)];
}

namespace {
// An empty B (Batch or RawBatch) of the options' batch size, input size and label size.
template <typename B>
B batch_shaped_by(const DatasetOptions& o) {
  B b;
  b.n = o.batch;
  b.h = o.input_h;
  b.w = o.input_w;
  b.label_h = o.label_height();
  b.label_w = o.label_width();
  return b;
}
}  // namespace

Batch CityscapesDataset::make_batch() const {
  Batch b = batch_shaped_by<Batch>(options_);
  b.input.resize(size_t(b.n) * b.h * b.w * 3);
  b.labels.resize(size_t(b.n) * b.label_h * b.label_w);
  return b;
}

AugmentDraw CityscapesDataset::draw_at(int64_t position) const {
  const int64_t count = int64_t(files_.size());
  const int lh = options_.label_height(), lw = options_.label_width();
  AugmentDraw draw;
  if (options_.augment) {
    draw = draw_augment(options_.augmentation,
                        sample_seed(options_.seed, position / count, position % count), lh, lw);
  } else {
    draw.window_h = lh;
    draw.window_w = lw;
  }
  return draw;
}

void CityscapesDataset::load_position(int64_t position, Batch& b, int i) const {
  const AugmentDraw draw = draw_at(position);
  load_sample(source_->decode(file_at(position), options_.num_classes), options_, draw,
              b.input.data() + size_t(i) * b.h * b.w * 3,
              b.labels.data() + size_t(i) * b.label_h * b.label_w);
}

Batch CityscapesDataset::batch(int64_t k) const {
  if (options_.workers > 0) {
    if (!prefetcher_ || prefetcher_->next_index() != k) {
      prefetcher_.reset();
      prefetcher_ =
          std::make_unique<BatchPrefetcher>(*this, options_.workers, options_.prefetch, k);
    }
    return prefetcher_->next();
  }
  Batch b = make_batch();
  for (int i = 0; i < b.n; ++i) load_position(k * options_.batch + i, b, i);
  return b;
}

BatchPrefetcher::BatchPrefetcher(const CityscapesDataset& data, int workers, int depth,
                                 int64_t first, bool raw)
    : data_(data),
      depth_(depth),
      batch_size_(data.options().batch),
      slots_(size_t(depth)),
      next_sample_(first * data.options().batch),
      consumed_(first),
      raw_(raw) {
  FARSEE_REQUIRE(workers >= 1 && depth >= 1,
                 "prefetch: " << workers << " workers, depth " << depth << " (both >= 1)");
  for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { work(); });
}

BatchPrefetcher::~BatchPrefetcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void BatchPrefetcher::work() {
  for (;;) {
    int64_t sample;
    Slot* slot;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      // Claim the next sample once its batch fits in the queue.
      work_cv_.wait(lock, [&] { return stop_ || next_sample_ / batch_size_ < consumed_ + depth_; });
      if (stop_) return;
      sample = next_sample_++;
      const int64_t k = sample / batch_size_;
      slot = &slots_[size_t(k % depth_)];
      if (slot->k != k) {  // the first sample of batch k: the slot's previous batch was taken
        slot->k = k;
        slot->done = 0;
        slot->error = nullptr;
        if (raw_) {
          slot->raw = data_.make_raw_batch();
        } else {
          slot->batch = data_.make_batch();
        }
      }
      peak_ = std::max(peak_, k - consumed_ + 1);
    }
    try {
      if (raw_) {
        data_.load_raw_position(sample, slot->raw, int(sample % batch_size_));
      } else {
        data_.load_position(sample, slot->batch, int(sample % batch_size_));
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!slot->error) slot->error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++slot->done;
    }
    done_cv_.notify_all();
    work_cv_.notify_all();
  }
}

Batch BatchPrefetcher::next() {
  FARSEE_REQUIRE(!raw_, "BatchPrefetcher::next: this queue holds raw batches (next_raw)");
  return take(&Slot::batch);
}

RawBatch BatchPrefetcher::next_raw() {
  FARSEE_REQUIRE(raw_, "BatchPrefetcher::next_raw: this queue holds augmented batches (next)");
  return take(&Slot::raw);
}

template <typename B>
B BatchPrefetcher::take(B Slot::*member) {
  std::unique_lock<std::mutex> lock(mutex_);
  Slot& slot = slots_[size_t(consumed_ % depth_)];
  const auto ready = [&] { return slot.k == consumed_ && slot.done == batch_size_; };
  if (!ready()) {
    const auto t0 = std::chrono::steady_clock::now();
    done_cv_.wait(lock, ready);
    wait_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  if (slot.error) std::rethrow_exception(slot.error);  // stays: a retry throws again
  B b = std::move(slot.*member);
  slot.k = -1;
  ++consumed_;
  lock.unlock();
  work_cv_.notify_all();
  return b;
}

int64_t BatchPrefetcher::next_index() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return consumed_;
}

int64_t BatchPrefetcher::peak_in_flight() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return peak_;
}

double BatchPrefetcher::wait_seconds() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return wait_s_;
}

// ---- raw batches: augmentation on the executor ----

int64_t RawBatch::image_bytes() const {
  int64_t bytes = 0;
  for (const DecodedSample& d : decoded) bytes += int64_t(d.image.data.size());
  return bytes;
}

int64_t RawBatch::label_bytes() const {
  int64_t bytes = 0;
  for (const DecodedSample& d : decoded) bytes += int64_t(d.label.data.size());
  return bytes;
}

AugmentSample augment_sample(const AugmentDraw& draw, const DatasetOptions& o, int src_h,
                             int src_w) {
  const int lh = o.label_height(), lw = o.label_width();
  AugmentSample s;
  s.src_h = src_h;
  s.src_w = src_w;
  if (resize_only(draw, o)) {
    s.resize_only = 1;
    s.flip = draw.flip ? 1 : 0;
  } else {
    s.image_map = augment_affine(draw, lh, lw, src_h, src_w, o.input_h, o.input_w);
    s.label_map = augment_affine(draw, lh, lw, src_h, src_w, lh, lw);
  }
  s.brightness = draw.brightness;
  s.contrast = draw.contrast;
  s.saturation = draw.saturation;
  for (int c = 0; c < 3; ++c) s.gain[c] = draw.gain[c];
  s.noise = draw.noise;
  s.noise_seed = draw.noise_seed;
  return s;
}

AugmentNormalise imagenet_normalise() {
  AugmentNormalise n;
  for (int c = 0; c < 3; ++c) {
    n.mean[c] = net::kImageMean[c];
    n.std[c] = net::kImageStd[c];
  }
  return n;
}

void pack_raw_batch(const RawBatch& b, const DatasetOptions& o, uint8_t* images, uint8_t* labels,
                    AugmentSample* samples) {
  int64_t image_at = 0, label_at = 0;
  for (size_t i = 0; i < b.decoded.size(); ++i) {
    const DecodedSample& d = b.decoded[i];
    AugmentSample s = augment_sample(b.draws[i], o, d.image.height, d.image.width);
    s.image_offset = image_at;
    s.label_offset = label_at;
    std::copy(d.image.data.begin(), d.image.data.end(), images + image_at);
    std::copy(d.label.data.begin(), d.label.data.end(), labels + label_at);
    image_at += int64_t(d.image.data.size());
    label_at += int64_t(d.label.data.size());
    samples[i] = s;
  }
}

namespace {

// A raw batch packed into executor memory, and the op's view of it.
struct ExecutorRawBatch {
  rt::Buffer images, labels, samples;
  AugmentBatch view;
};

ExecutorRawBatch upload_raw_batch(const Context& ctx, const RawBatch& b, const DatasetOptions& o) {
  std::vector<uint8_t> images(size_t(b.image_bytes())), labels(size_t(b.label_bytes()));
  std::vector<AugmentSample> samples(b.decoded.size());
  pack_raw_batch(b, o, images.data(), labels.data(), samples.data());
  ExecutorRawBatch e;
  e.images = rt::Buffer(ctx.executor, images.size());
  e.labels = rt::Buffer(ctx.executor, labels.size());
  e.samples = rt::Buffer(ctx.executor, samples.size() * sizeof(AugmentSample));
  rt::copy_to_device(ctx, e.images.data(), images.data(), images.size());
  rt::copy_to_device(ctx, e.labels.data(), labels.data(), labels.size());
  rt::copy_to_device(ctx, e.samples.data(), samples.data(), e.samples.bytes());
  rt::synchronize(ctx);  // the host vectors die here
  e.view.images = e.images.as<uint8_t>();
  e.view.image_bytes = int64_t(images.size());
  e.view.labels = e.labels.as<uint8_t>();
  e.view.label_bytes = int64_t(labels.size());
  e.view.samples = e.samples.as<AugmentSample>();
  e.view.normalise = imagenet_normalise();
  return e;
}

}  // namespace

Batch augment_raw_batch(const RawBatch& b, const DatasetOptions& o, Executor executor,
                        DType dtype) {
  const Context ctx{executor, nullptr};
  const ExecutorRawBatch raw = upload_raw_batch(ctx, b, o);
  Batch out;
  out.n = b.n;
  out.h = b.h;
  out.w = b.w;
  out.label_h = b.label_h;
  out.label_w = b.label_w;
  const Shape4 shape{b.n, b.h, b.w, 3};
  const size_t elements = size_t(shape.elements());
  rt::Buffer input(executor, elements * dtype_size(dtype)),
      labels(executor, size_t(b.n) * b.label_h * b.label_w);
  augment_fwd(ctx, raw.view, make_view(input.data(), dtype, shape), labels.as<uint8_t>(), b.label_h,
              b.label_w);
  out.labels.resize(labels.bytes());
  rt::copy_to_host(ctx, out.labels.data(), labels.data(), labels.bytes());
  if (dtype == DType::F16) {
    std::vector<uint16_t> half(elements);
    rt::copy_to_host(ctx, half.data(), input.data(), elements * sizeof(uint16_t));
    for (uint16_t h : half) out.input.push_back(half_bits_to_float(h));
  } else {
    out.input.resize(elements);
    rt::copy_to_host(ctx, out.input.data(), input.data(), elements * sizeof(float));
  }
  return out;
}

double augment_images_per_second(const RawBatch& b, const DatasetOptions& o, Executor executor,
                                 int repeats) {
  FARSEE_REQUIRE(repeats >= 1, "augment_images_per_second: repeats " << repeats << " must be >= 1");
  rt::Stream stream;  // cuda: a stream of its own (emu and the host executors: the default one)
  if (executor == Executor::Cuda) stream = rt::Stream(executor);
  const Context ctx{executor, stream.get()};
  const ExecutorRawBatch raw = upload_raw_batch(ctx, b, o);
  const Shape4 shape{b.n, b.h, b.w, 3};
  rt::Buffer input(executor, size_t(shape.elements()) * sizeof(float));
  rt::Buffer labels(executor, size_t(b.n) * b.label_h * b.label_w);
  const auto run = [&] {
    augment_fwd(ctx, raw.view, make_view(input.data(), DType::F32, shape), labels.as<uint8_t>(),
                b.label_h, b.label_w);
  };
  run();  // warm-up
  rt::Timer timer(executor);
  timer.record_start(ctx);
  for (int i = 0; i < repeats; ++i) run();
  timer.record_stop(ctx);
  const double seconds = double(timer.elapsed_ms()) / 1000;
  rt::synchronize(ctx);
  return double(b.n) * repeats / seconds;
}

RawBatch CityscapesDataset::make_raw_batch() const {
  RawBatch b = batch_shaped_by<RawBatch>(options_);
  b.decoded.resize(size_t(b.n));
  b.draws.resize(size_t(b.n));
  return b;
}

void CityscapesDataset::load_raw_position(int64_t position, RawBatch& b, int i) const {
  b.draws[size_t(i)] = draw_at(position);
  b.decoded[size_t(i)] = source_->decode(file_at(position), options_.num_classes);
}

RawBatch CityscapesDataset::raw_batch(int64_t k) const {
  if (options_.workers > 0) {
    if (!raw_prefetcher_ || raw_prefetcher_->next_index() != k) {
      raw_prefetcher_.reset();
      raw_prefetcher_ = std::make_unique<BatchPrefetcher>(*this, options_.workers,
                                                          options_.prefetch, k, /*raw=*/true);
    }
    return raw_prefetcher_->next_raw();
  }
  RawBatch b = make_raw_batch();
  for (int i = 0; i < b.n; ++i) load_raw_position(k * options_.batch + i, b, i);
  return b;
}

}  // namespace farsee::tools
