// farsee::Segmenter (net/api/farsee/farsee.h): the public API over net::FarSeeNet, the same steps
// farsee-infer runs (it uses this class): the image resized to the network input (bilinear,
// align_corners=False) and normalised (net/preprocess.h), the network, the labels (and logits)
// resized to the output size on the executor. Settings not given come from the weights file's
// metadata (net/api/weights_metadata.h).
#include <omp.h>

#include <new>
#include <optional>
#include <tuple>

#include "kernels/core/check.h"
#include "kernels/core/runtime.h"
#include "net/api/farsee/farsee.h"
#include "net/api/weights_metadata.h"
#include "net/farsee_net.h"
#include "net/preprocess.h"
#include "tools/cityscapes/metrics.h"
#include "tools/cli/cli.h"
#include "tools/data/image_io.h"

#ifndef FARSEE_VERSION_STRING
#error "FARSEE_VERSION_STRING is set by net/CMakeLists.txt from the project's version"
#endif

namespace farsee {

const char* version() {
  return FARSEE_VERSION_STRING;
}

namespace {

// OpenMP threads of the calling thread set for one call and restored after it.
class ThreadScope {
 public:
  explicit ThreadScope(int threads) : saved_(threads > 0 ? omp_get_max_threads() : 0) {
    if (threads > 0) omp_set_num_threads(threads);
  }
  ~ThreadScope() {
    if (saved_ > 0) omp_set_num_threads(saved_);
  }
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  int saved_;
};

std::vector<std::string> default_class_names(int classes) {
  std::vector<std::string> names;
  if (classes == tools::kCityscapesClasses) {
    for (const char* n : tools::cityscapes_class_names()) names.emplace_back(n);
  } else {
    for (int c = 0; c < classes; ++c) names.push_back("class " + std::to_string(c));
  }
  return names;
}

}  // namespace

struct Segmenter::Impl {
  SegmenterOptions options;
  int64_t max_pixels = 0;
  net::FarSeeConfig config;
  int input_h = 0, input_w = 0;
  Precision precision = Precision::F32;
  Executor executor = Executor::Cpu;
  std::vector<std::string> class_names, notes;
  std::unique_ptr<net::FarSeeNet> model;
  std::optional<rt::Timer> timer;
  double network_ms = 0;
  int out_h = 0, out_w = 0;  // of the last run

  void check_options();
  void resolve_input_size(const net::WeightsMetadata& m);
  net::HostTensors load_parameters();
  void check_image(const uint8_t* rgb, int height, int width, int& out_height, int& out_width);
  void run(const uint8_t* rgb, int height, int width, int out_height, int out_width);
};

void Segmenter::Impl::check_options() {
  const SegmenterOptions& o = options;
  FARSEE_REQUIRE(o.weights.empty() || o.random_seed < 0,
                 "weights ('" << o.weights << "') and random weights (seed " << o.random_seed
                              << ") exclude each other");
  FARSEE_REQUIRE(!o.weights.empty() || o.random_seed >= 0,
                 "no weights file given (or a random-weights seed for a smoke test)");
  FARSEE_REQUIRE(o.max_megapixels > 0 && o.max_megapixels <= 1e6,
                 "max_megapixels " << o.max_megapixels << " is not in (0, 1000000]");
  FARSEE_REQUIRE((o.input_height == 0) == (o.input_width == 0),
                 "input size " << o.input_height << "x" << o.input_width
                               << ": give both sides, or neither (the weights file's)");
  FARSEE_REQUIRE(o.num_threads >= 0, "num_threads " << o.num_threads << " is negative");
  max_pixels = int64_t(o.max_megapixels * 1e6);
}

// The input size given, else the one the weights were trained at, else the default; a size given
// that differs from the training size is allowed (a note says so).
void Segmenter::Impl::resolve_input_size(const net::WeightsMetadata& m) {
  std::tie(input_h, input_w) =
      net::resolve_input_size(options.input_height, options.input_width, m);
  FARSEE_REQUIRE(
      input_h > 0 && input_w > 0 && input_h % 32 == 0 && input_w % 32 == 0,
      "--input-size " << input_h << "x" << input_w << ": height and width must be multiples of 32");
  FARSEE_REQUIRE(int64_t(input_h) * input_w <= max_pixels,
                 "--input-size " << tools::format_pixels(input_h, input_w)
                                 << " is above the limit of " << double(max_pixels) / 1e6
                                 << " megapixels (--max-megapixels to raise it)");
  if (m.input_height && (m.input_height != input_h || m.input_width != input_w)) {
    notes.push_back("note: weights file '" + options.weights + "' was trained at input " +
                    std::to_string(m.input_height) + "x" + std::to_string(m.input_width) +
                    "; running at " + std::to_string(input_h) + "x" + std::to_string(input_w) +
                    " as asked");
  }
}

net::HostTensors Segmenter::Impl::load_parameters() {
  if (options.random_seed >= 0)
    return net::random_parameters(config, uint64_t(options.random_seed));
  std::vector<std::string> unknown;
  net::HostTensors params = net::load_parameters(options.weights, config, &unknown);
  for (const auto& name : unknown) {
    notes.push_back("warning: " + options.weights + ": unused tensor '" + name + "'");
  }
  return params;
}

Segmenter::Segmenter(const SegmenterOptions& options) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.options = options;
  s.check_options();
  std::string note;
  s.executor = tools::choose_executor(options.executor, &note);
  if (!note.empty()) s.notes.push_back(note);
  s.precision = tools::parse_precision(options.precision);
  const net::WeightsMetadata meta = options.weights.empty()
                                        ? net::WeightsMetadata{}
                                        : net::read_weights_metadata(options.weights);
  s.config = net::resolve_config(options.config_file, options.preset, meta, options.weights);
  s.resolve_input_size(meta);
  s.class_names =
      meta.class_names.empty() ? default_class_names(s.config.num_classes) : meta.class_names;
  {
    const ThreadScope threads(options.num_threads);
    net::HostTensors params = s.load_parameters();
    Context ctx;
    ctx.executor = s.executor;
    s.model = std::make_unique<net::FarSeeNet>(s.config, params, ctx, s.precision);
  }
  s.timer.emplace(s.executor);
}

Segmenter::~Segmenter() = default;
Segmenter::Segmenter(Segmenter&&) noexcept = default;
Segmenter& Segmenter::operator=(Segmenter&&) noexcept = default;

void Segmenter::Impl::check_image(const uint8_t* rgb, int height, int width, int& out_height,
                                  int& out_width) {
  FARSEE_REQUIRE(rgb != nullptr, "segment: the image pointer is null");
  FARSEE_REQUIRE(height > 0 && width > 0,
                 "segment: image size " << height << "x" << width << " is not positive");
  FARSEE_REQUIRE(out_height >= 0 && out_width >= 0 && (out_height == 0) == (out_width == 0),
                 "segment: output size " << out_height << "x" << out_width
                                         << ": give both sides (positive), or 0x0 for the "
                                            "image's size");
  if (out_height == 0) {
    out_height = height;
    out_width = width;
  }
  for (const auto& [what, h, w] :
       {std::tuple{"image", height, width}, std::tuple{"output size", out_height, out_width}}) {
    FARSEE_REQUIRE(int64_t(h) * w <= max_pixels,
                   "segment: " << what << " " << tools::format_pixels(h, w)
                               << " is above the limit of " << double(max_pixels) / 1e6
                               << " megapixels (--max-megapixels to raise it)");
  }
}

// Image -> labels (and logits) at the output size, on the executor.
void Segmenter::Impl::run(const uint8_t* rgb, int height, int width, int out_height,
                          int out_width) {
  check_image(rgb, height, width, out_height, out_width);
  const ThreadScope threads(options.num_threads);
  // Anything not allocated through a named helper below reports the step it failed in.
  std::string step =
      "preparing the network input from the " + tools::format_pixels(height, width) + " image";
  try {
    std::vector<float> input = tools::allocate<float>(
        size_t(input_h) * input_w * 3,
        "the network input (" + std::to_string(input_h) + "x" + std::to_string(input_w) + ")");
    net::preprocess_rgb8(rgb, height, width, input.data(), input_h, input_w);
    step = "running the network";
    out_h = out_w = 0;
    model->prepare(1, input_h, input_w, out_height, out_width);
    model->set_input(input.data());
    timer->record_start(model->context());
    model->forward();
    timer->record_stop(model->context());
    network_ms = timer->elapsed_ms();
    out_h = out_height;
    out_w = out_width;
  } catch (const std::bad_alloc&) {
    FARSEE_REQUIRE(false, "out of memory while " << step);
  }
}

LabelMap Segmenter::segment(const uint8_t* rgb, int height, int width, int out_height,
                            int out_width) {
  impl_->run(rgb, height, width, out_height, out_width);
  LabelMap m;
  m.height = impl_->out_h;
  m.width = impl_->out_w;
  try {
    m.data = impl_->model->labels();
  } catch (const std::bad_alloc&) {
    FARSEE_REQUIRE(false, "out of memory while copying the "
                              << tools::format_pixels(m.height, m.width) << " labels to the host");
  }
  return m;
}

std::vector<float> Segmenter::logits(const uint8_t* rgb, int height, int width, int out_height,
                                     int out_width) {
  impl_->run(rgb, height, width, out_height, out_width);
  return last_logits();
}

std::vector<float> Segmenter::last_logits() const {
  const Impl& s = *impl_;
  FARSEE_REQUIRE(s.out_h > 0, "last_logits: no image has been segmented yet");
  try {
    return s.model->resized_logits_nchw(s.out_h, s.out_w);
  } catch (const std::bad_alloc&) {
    FARSEE_REQUIRE(false, "out of memory while resizing the logits to "
                              << tools::format_pixels(s.out_h, s.out_w) << " ("
                              << tools::format_bytes(4.0 * s.config.num_classes * s.out_h * s.out_w)
                              << ")");
  }
}

int Segmenter::num_classes() const {
  return impl_->config.num_classes;
}
const std::vector<std::string>& Segmenter::class_names() const {
  return impl_->class_names;
}
std::string Segmenter::preset() const {
  return impl_->config.preset;
}
int Segmenter::input_height() const {
  return impl_->input_h;
}
int Segmenter::input_width() const {
  return impl_->input_w;
}
std::string Segmenter::precision() const {
  return impl_->options.precision;
}
std::string Segmenter::executor() const {
  return executor_name(impl_->executor);
}
double Segmenter::last_network_ms() const {
  return impl_->network_ms;
}
const std::vector<std::string>& Segmenter::notes() const {
  return impl_->notes;
}

}  // namespace farsee
