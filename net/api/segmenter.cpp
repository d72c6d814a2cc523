// farsee::Segmenter (net/api/farsee/farsee.h): the public API over net::FarSeeNet, the same steps
// farsee-infer runs (it uses this class): the image resized to the network input (bilinear,
// align_corners=False) and normalised (net/preprocess.h), the network, the labels (and logits)
// resized to the output size on the executor. Settings not given come from the weights file's
// metadata (net/api/weights_metadata.h).
//
// Every frame goes through submit/receive (segment() is the pair; DESIGN.md section 14). On the
// executors with streams (cuda; emu in tests) a frame takes one of two slots, each with pinned
// host staging, a device input buffer, a device labels buffer, two events and a timer:
//   host:    resize + normalise + pack (space-to-depth, fp16) into the slot's pinned staging
//   copy:    upload into the slot's input buffer; record `uploaded`
//   compute: wait `uploaded`; copy it into the net's input; forward (CUDA graph); copy the labels
//            into the slot's labels buffer (frame k + 1's forward overwrites the net's); record
//            `computed`
//   receive: the copy stream waits `computed` and downloads the labels (a synchronous copy that
//            blocks on the copy stream only, while the compute stream runs frame k + 1)
// so frame k + 1's host work and upload, and frame k's download, overlap frame k's network. Only
// events order the two streams; a slot is reused two submits later, after its frame's receive
// has waited for the copy stream, which holds its upload and download. The overlap is in place but
// untimed (no GPU where it was written). cpu and reference run the frame within submit().
#include <omp.h>

#include <deque>
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

// submit/receive's double buffers and copy stream on the executors with streams (see the top).
struct Pipeline {
  struct Slot {
    rt::PinnedHostBuffer host_input;  // packed frame: pinned, so the upload is a true async copy
    rt::Buffer input;                 // the frame on the executor, until the net copies it in
    rt::Buffer labels;                // the frame's labels, out of the net's buffer
    rt::Event uploaded, computed;
    rt::Timer timer;
    explicit Slot(Executor e) : uploaded(e), computed(e), timer(e) {}
  };
  Executor executor;
  rt::Stream copy_stream;  // destroyed after the slots (their buffers wait for the device)
  std::unique_ptr<Slot> slots[Segmenter::kMaxInFlight];

  explicit Pipeline(Executor e) : executor(e), copy_stream(e) {
    for (auto& s : slots) s = std::make_unique<Slot>(e);
  }
  Context copy() const { return Context{executor, copy_stream.get()}; }
};

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
  int out_h = 0, out_w = 0;  // of the last frame received (0: none, or frames in flight)

  // A submitted frame; its labels are on the host already on cpu and reference.
  struct Frame {
    int slot = 0;
    int out_h = 0, out_w = 0;
    double network_ms = 0;
    LabelMap labels;
  };
  std::deque<Frame> in_flight;  // oldest first
  int64_t submitted = 0;
  std::vector<float> input;            // the network input on the host, reused
  std::unique_ptr<Pipeline> pipeline;  // cuda and emu; destroyed before the model
  ~Impl();

  void check_options();
  void resolve_input_size(const net::WeightsMetadata& m);
  net::HostTensors load_parameters();
  void check_image(const char* caller, const uint8_t* rgb, int height, int width, int& out_height,
                   int& out_width);
  void prepare_input(const uint8_t* rgb, int height, int width);
  void run(Frame& f);
  void run_on_streams(Frame& f);
  void submit(const char* caller, const uint8_t* rgb, int height, int width, int out_height,
              int out_width);
  LabelMap receive();
  LabelMap download(Frame& f);
};

// Frames still in flight (or work a failed submit queued) finish before their buffers go.
Segmenter::Impl::~Impl() {
  if (!pipeline || !model) return;
  try {
    rt::synchronize(model->context());
    rt::synchronize(pipeline->copy());
  } catch (...) {  // a device error: the buffers are freed all the same
  }
}

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

void Segmenter::Impl::check_image(const char* caller, const uint8_t* rgb, int height, int width,
                                  int& out_height, int& out_width) {
  FARSEE_REQUIRE(rgb != nullptr, caller << ": the image pointer is null");
  FARSEE_REQUIRE(height > 0 && width > 0,
                 caller << ": image size " << height << "x" << width << " is not positive");
  FARSEE_REQUIRE(out_height >= 0 && out_width >= 0 && (out_height == 0) == (out_width == 0),
                 caller << ": output size " << out_height << "x" << out_width
                        << ": give both sides (positive), or 0x0 for the image's size");
  if (out_height == 0) {
    out_height = height;
    out_width = width;
  }
  for (const auto& [what, h, w] :
       {std::tuple{"image", height, width}, std::tuple{"output size", out_height, out_width}}) {
    FARSEE_REQUIRE(int64_t(h) * w <= max_pixels,
                   caller << ": " << what << " " << tools::format_pixels(h, w)
                          << " is above the limit of " << double(max_pixels) / 1e6
                          << " megapixels (--max-megapixels to raise it)");
  }
}

// The image resized and normalised into `input` (host, NHWC fp32).
void Segmenter::Impl::prepare_input(const uint8_t* rgb, int height, int width) {
  const size_t count = size_t(input_h) * input_w * 3;
  if (input.size() != count) {
    input = tools::allocate<float>(count, "the network input (" + std::to_string(input_h) + "x" +
                                              std::to_string(input_w) + ")");
  }
  net::preprocess_rgb8(rgb, height, width, input.data(), input_h, input_w);
}

// cpu and reference: the frame start to end, its labels to the host.
void Segmenter::Impl::run(Frame& f) {
  model->prepare(1, input_h, input_w, f.out_h, f.out_w);
  model->set_input(input.data());
  timer->record_start(model->context());
  model->forward();
  timer->record_stop(model->context());
  f.network_ms = timer->elapsed_ms();
  f.labels.data = model->labels();
}

// cuda and emu: the frame queued on the two streams (see the top), nothing waited for.
void Segmenter::Impl::run_on_streams(Frame& f) {
  if (!pipeline) pipeline = std::make_unique<Pipeline>(executor);
  Pipeline::Slot& slot = *pipeline->slots[f.slot];
  model->prepare(1, input_h, input_w, f.out_h, f.out_w);
  const size_t input_bytes = model->packed_input_bytes(), labels_bytes = model->labels_bytes();
  slot.host_input.reserve(executor, input_bytes);
  slot.input.reserve(executor, input_bytes);
  slot.labels.reserve(executor, labels_bytes);
  // The slot's last frame was received, so its upload has run: the staging is free.
  model->pack_input(input.data(), slot.host_input.data());
  const Context copy = pipeline->copy();
  const Context& compute = model->context();
  rt::copy_to_device(copy, slot.input.data(), slot.host_input.data(), input_bytes);
  rt::event_record(copy, slot.uploaded.get());
  rt::stream_wait_event(compute, slot.uploaded.get());  // the upload before the net reads it
  model->set_input_device(slot.input.data());
  slot.timer.record_start(compute);
  model->forward();
  slot.timer.record_stop(compute);
  rt::copy_device(compute, slot.labels.data(), model->device_labels(), labels_bytes);
  rt::event_record(compute, slot.computed.get());
}

void Segmenter::Impl::submit(const char* caller, const uint8_t* rgb, int height, int width,
                             int out_height, int out_width) {
  check_image(caller, rgb, height, width, out_height, out_width);
  FARSEE_REQUIRE(int(in_flight.size()) < kMaxInFlight,
                 caller << ": " << in_flight.size()
                        << " frames are in flight, the most a Segmenter holds: receive() the "
                           "oldest first");
  const ThreadScope threads(options.num_threads);
  Frame f;
  f.slot = int(submitted % kMaxInFlight);
  f.out_h = out_height;
  f.out_w = out_width;
  // Anything not allocated through a named helper reports the step it failed in.
  std::string step =
      "preparing the network input from the " + tools::format_pixels(height, width) + " image";
  try {
    prepare_input(rgb, height, width);
    step = "running the network";
    out_h = out_w = 0;
    if (rt::uses_graphs(executor)) {
      run_on_streams(f);
    } else {
      run(f);
    }
  } catch (const std::bad_alloc&) {
    FARSEE_REQUIRE(false, "out of memory while " << step);
  }
  f.labels.height = out_height;
  f.labels.width = out_width;
  in_flight.push_back(std::move(f));
  ++submitted;
}

// The frame's labels to the host (cuda, emu): the copy stream waits for its network.
LabelMap Segmenter::Impl::download(Frame& f) {
  Pipeline::Slot& slot = *pipeline->slots[f.slot];
  const Context copy = pipeline->copy();
  rt::stream_wait_event(copy, slot.computed.get());
  try {
    f.labels.data.resize(size_t(f.out_h) * f.out_w);
  } catch (const std::bad_alloc&) {
    FARSEE_REQUIRE(false, "out of memory while copying the "
                              << tools::format_pixels(f.out_h, f.out_w) << " labels to the host");
  }
  rt::copy_to_host(copy, f.labels.data.data(), slot.labels.data(), f.labels.data.size());
  f.network_ms = slot.timer.elapsed_ms();
  return std::move(f.labels);
}

LabelMap Segmenter::Impl::receive() {
  FARSEE_REQUIRE(!in_flight.empty(), "receive: no frame is in flight (submit() one first)");
  Frame f = std::move(in_flight.front());
  in_flight.pop_front();  // gone even if its download fails, so the Segmenter stays usable
  LabelMap m = pipeline ? download(f) : std::move(f.labels);
  network_ms = f.network_ms;
  if (in_flight.empty()) {
    out_h = f.out_h;
    out_w = f.out_w;
  }
  return m;
}

void Segmenter::submit(const uint8_t* rgb, int height, int width, int out_height, int out_width) {
  impl_->submit("submit", rgb, height, width, out_height, out_width);
}

LabelMap Segmenter::receive() {
  return impl_->receive();
}

int Segmenter::frames_in_flight() const {
  return int(impl_->in_flight.size());
}

LabelMap Segmenter::segment(const uint8_t* rgb, int height, int width, int out_height,
                            int out_width) {
  const size_t busy = impl_->in_flight.size();
  FARSEE_REQUIRE(busy == 0, "segment: " << busy
                                        << " submitted frame(s) not received yet: receive() them "
                                           "first (segment() runs one frame on its own)");
  impl_->submit("segment", rgb, height, width, out_height, out_width);
  return impl_->receive();
}

std::vector<float> Segmenter::logits(const uint8_t* rgb, int height, int width, int out_height,
                                     int out_width) {
  segment(rgb, height, width, out_height, out_width);
  return last_logits();
}

std::vector<float> Segmenter::last_logits() const {
  const Impl& s = *impl_;
  FARSEE_REQUIRE(s.in_flight.empty(), "last_logits: " << s.in_flight.size()
                                                      << " submitted frame(s) not received yet: "
                                                         "receive() them first");
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
