// FarSee's public C++ API (DESIGN.md section 14): semantic segmentation of 8-bit RGB images with
// FarSee-Net, from your own program. This header is all a user includes (installed as
// include/farsee/farsee.h; CMake: find_package(FarSee) then link FarSee::farsee); it needs nothing
// else from FarSee.
//
//   farsee::SegmenterOptions o;
//   o.weights = "farsee-paper-synthetic.safetensors";  // preset and input size from the file
//   farsee::Segmenter seg(o);
//   farsee::LabelMap labels = seg.segment(rgb, height, width);  // trainIds, height x width
//
// Settings left unset come from the weights file's metadata (its network configuration and the
// input size it was trained at); a setting given wins, except one that contradicts the network
// the file holds, which is an error naming both.
//
// Threads: one Segmenter is used by one thread at a time (it owns the network's buffers); several
// Segmenters may run at once on different threads. A Segmenter is reusable across images of any
// size: the shapes it has seen are cached (their buffers and, on cuda, their CUDA graphs).
//
// Every error is a farsee::Error (a std::runtime_error) with the message the FarSee programs
// print: a bad argument, an unreadable or mismatched weights file, an image too large, an
// allocation that cannot succeed (naming what it was for).
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

// farsee::Error: inside FarSee's own build (FARSEE_INTERNAL_BUILD, set by its CMake targets) the
// library's definition, kernels/core/check.h; for users the same definition, written out.
#ifdef FARSEE_INTERNAL_BUILD
#include "kernels/core/check.h"
#else
namespace farsee {
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
}  // namespace farsee
#endif

namespace farsee {

// "0.1.0": the FarSee release this library is.
const char* version();

struct SegmenterOptions {
  // safetensors weights (farsee-train --save, tools/pytorch/convert_weights.py). Required unless
  // random_seed >= 0.
  std::string weights;
  // "paper" | "rtseg" | "tiny-paper" | "tiny-rtseg"; empty: the weights file's network (its
  // metadata), else "paper".
  std::string preset;
  // Network configuration JSON (net/config.h); overrides preset.
  std::string config_file;
  // Network input size, multiples of 32; 0 x 0: the size the weights were trained at (their
  // metadata), else 512 x 1024. Images are resized to it (bilinear, align_corners=False).
  int input_height = 0, input_width = 0;
  // Precision: "fp32" | "tf32" (fp32 storage, convs in TF32; not on cpu) | "fp16", as the
  // programs' --precision.
  std::string precision = "fp32";
  // "auto" (cuda if a GPU is usable, else cpu) | "cuda" | "cpu" | "reference".
  std::string executor = "auto";
  // cpu and reference executors: OpenMP threads while this Segmenter runs (0: OpenMP's default,
  // OMP_NUM_THREADS).
  int num_threads = 0;
  // Images, input and output sizes above this many megapixels are refused.
  double max_megapixels = 64;
  // >= 0: deterministic random weights instead of a file (smoke tests, demos: meaningless labels).
  int64_t random_seed = -1;
};

// Per-pixel class indices (trainIds for the Cityscapes classes), row-major [height][width].
struct LabelMap {
  int height = 0, width = 0;
  std::vector<uint8_t> data;
};

class Segmenter {
 public:
  // Loads the weights and prepares the network on the executor; throws farsee::Error.
  explicit Segmenter(const SegmenterOptions& options);
  ~Segmenter();
  Segmenter(Segmenter&&) noexcept;
  Segmenter& operator=(Segmenter&&) noexcept;
  Segmenter(const Segmenter&) = delete;
  Segmenter& operator=(const Segmenter&) = delete;

  // `rgb`: height x width x 3 bytes, interleaved RGB, row-major. Labels at out_height x
  // out_width (0 x 0: the image's size).
  LabelMap segment(const uint8_t* rgb, int height, int width, int out_height = 0,
                   int out_width = 0);
  // The network's logits for the image, resized like the labels (bilinear) to the output size:
  // float32 [classes][out_height][out_width] (PyTorch's order, batch dropped).
  std::vector<float> logits(const uint8_t* rgb, int height, int width, int out_height = 0,
                            int out_width = 0);
  // The logits of the last segment() or logits() call (or of the last frame receive() returned,
  // once none is in flight) at its output size, as logits() returns them, without running the
  // network again.
  std::vector<float> last_logits() const;

  // Frames in order, overlapped (video): submit() hands over a frame and returns before its
  // network has run; receive() returns the labels of the oldest frame submitted and not yet
  // received, bitwise segment()'s. At most kMaxInFlight frames are in flight: submit frame k + 1,
  // then receive frame k. On cuda frame k + 1's preparation and upload (a copy stream, pinned
  // staging, a second input buffer) and frame k's labels download overlap frame k's network;
  // cpu and reference run the frame within submit(). submit() copies the image: the caller may
  // reuse its buffer at once. segment() and logits() need no frame in flight.
  static constexpr int kMaxInFlight = 2;
  void submit(const uint8_t* rgb, int height, int width, int out_height = 0, int out_width = 0);
  LabelMap receive();
  int frames_in_flight() const;

  // The settings in use (after defaults from the weights file).
  int num_classes() const;
  const std::vector<std::string>& class_names() const;
  std::string preset() const;
  int input_height() const;
  int input_width() const;
  std::string precision() const;
  std::string executor() const;  // as chosen: "cuda", "cpu" or "reference" (never "auto")
  // Network time of the last frame segmented or received in milliseconds (CUDA events on cuda, a
  // steady clock elsewhere).
  double last_network_ms() const;
  // What construction would print as a program: the executor "auto" chose, weights-file tensors
  // the network does not use, an input size other than the one the weights were trained at.
  const std::vector<std::string>& notes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace farsee
