// Cityscapes-layout training data for farsee-train (DESIGN.md section 10):
//   <root>/leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png
//   <root>/gtFine/<split>/<city>/<stem>_gtFine_labelIds.png
// or the same split packed into one file by farsee-pack (tools/data/pack.h): a SampleSource gives
// the decoded samples either way, bit for bit the same.
// labelIds are mapped to the 19 trainIds (cityscapesScripts' labels.py), every other id to 255.
//
// A batch: images decoded (image_io.h), RGB / 255 in float, resized to the input size with
// PyTorch's bilinear (align_corners=False) and ImageNet-normalised exactly as farsee-infer does
// (net/preprocess.h; the photometric augmentation comes before the normalisation); label maps
// resized to the label size (default: the input size) by nearest neighbour, src = floor(dst * in
// / out) in integer arithmetic (PyTorch's 'nearest' for these sizes).
// Augmentation (tools/data/augment.h; `augmentation` says which steps, by default horizontal flips
// only): drawn from sample_seed(seed, epoch, position in the epoch), so a run is reproducible; with
// a geometric step (scale, rotation, crop) the image is sampled straight onto the input grid and
// the label map onto the label grid through one affine map. Order: sorted path order, or
// (shuffle) a seeded permutation per epoch; batch k holds positions k*B .. k*B+B-1 of the order,
// wrapping around the end of the list.
//
// Prefetching (workers > 0): batch(k) called with k = 0, 1, 2, ... is served by a BatchPrefetcher
// (worker threads decode and augment the samples of the next `prefetch` batches ahead); any other
// k restarts it there. The batches are the same as without workers, for any number of workers.
//
// Bad data is an error naming the file: a missing label file, an image and label of different
// sizes, an unreadable file, a trainId >= the number of classes.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kernels/core/augment_math.h"
#include "kernels/core/dtype.h"
#include "kernels/core/executor.h"
#include "tools/cityscapes/metrics.h"  // cityscapes_train_ids(): the labelId -> trainId map
#include "tools/data/augment.h"
#include "tools/data/image_io.h"

namespace farsee::tools {

struct SamplePaths {
  std::string image, label;
};
// Every *_leftImg8bit.png under <root>/leftImg8bit/<split>/ (one level of city folders) with its
// label path, in sorted image-path order. Throws when the folder is missing or holds no image, or
// when a label file is missing (naming it).
std::vector<SamplePaths> list_cityscapes(const std::string& root, const std::string& split);

// A label file's map converted to trainIds (255: ignored); throws naming the file when a trainId
// is >= num_classes.
Image read_train_ids(const std::string& label_path, int num_classes);

// A sample as decoded: the RGB image and its label map (read_train_ids). Throws naming the files
// when their sizes differ.
struct DecodedSample {
  Image image, label;
};
DecodedSample decode_sample(const SamplePaths& paths, int num_classes);

// Label map resize by nearest neighbour, src = floor(dst * in / out) in integer arithmetic (the
// loader's and farsee-pack --size's).
void resize_labels_nearest(const uint8_t* in, int h, int w, uint8_t* out, int out_h, int out_w);

// Where a dataset's samples come from: a Cityscapes folder of PNGs (decode_sample) or a pack
// (tools/data/pack.h). Both give the same DecodedSample for a sample, so the batches built from
// them are the same bits. Thread-safe.
class SampleSource {
 public:
  virtual ~SampleSource() = default;
  virtual size_t size() const = 0;
  // Sample i decoded; throws naming its files (a pack: and the sample) for bad data.
  virtual DecodedSample decode(size_t i, int num_classes) const = 0;
  // Its trainId label map only (class statistics).
  virtual Image label(size_t i, int num_classes) const = 0;
  // Its files (a pack: as recorded when packed, under the packed root; they need not exist).
  virtual SamplePaths paths(size_t i) const = 0;
  // What it is, for messages: "folder R" or "pack F".
  virtual std::string describe() const = 0;
};

// --data: a pack file (recognised by its magic; `split` must be the one it holds) or a Cityscapes
// folder (list_cityscapes(data, split)). Throws naming the path.
std::shared_ptr<const SampleSource> open_samples(const std::string& data, const std::string& split);

struct DatasetOptions {
  int input_h = 512, input_w = 1024;
  int label_h = 0, label_w = 0;  // 0: the input size
  int batch = 8;
  bool shuffle = true;
  bool augment = true;
  AugmentParams augmentation;  // used when `augment`; default: flips only
  uint64_t seed = 0;
  int num_classes = 19;
  int workers = 0;   // decoding/augmentation threads (0: on the caller's thread)
  int prefetch = 4;  // batches decoded ahead (the bounded queue's depth), with workers
  int label_height() const { return label_h > 0 ? label_h : input_h; }
  int label_width() const { return label_w > 0 ? label_w : input_w; }
};

struct Batch {
  int n = 0, h = 0, w = 0;
  int label_h = 0, label_w = 0;
  std::vector<float> input;     // [n][h][w][3], normalised
  std::vector<uint8_t> labels;  // [n][label_h][label_w], trainIds or 255
};

// ---- Raw batches: augmentation on the executor (kernels/augment.h; farsee-train --augment-on)
// ---- Batch k as decoded samples (any sizes) and their draws: augment_fwd turns it into exactly
// the input and labels of batch(k) (bitwise, tests/tools/data/augment_op_test.cpp). The host only
// decodes and copies bytes.
struct RawBatch {
  int n = 0, h = 0, w = 0;
  int label_h = 0, label_w = 0;
  std::vector<DecodedSample> decoded;  // per sample: RGB image, trainId labels
  std::vector<AugmentDraw> draws;      // per sample
  int64_t image_bytes() const;         // the packed sizes (pack_raw_batch)
  int64_t label_bytes() const;
};
// The op's parameters of a draw for a src_h x src_w sample: load_sample's choice of path (the
// plain resizes and mirror when the draw has no geometric step at the label size, else the
// input-grid and label-grid affine maps) and the colour factors; offsets 0.
AugmentSample augment_sample(const AugmentDraw& draw, const DatasetOptions& options, int src_h,
                             int src_w);
// net::kImageMean / kImageStd, the normalisation load_sample applies.
AugmentNormalise imagenet_normalise();
// The samples' images and labels back to back in sample order (image_bytes() and label_bytes()
// bytes), and samples[i] = augment_sample(...) with its byte offsets.
void pack_raw_batch(const RawBatch& b, const DatasetOptions& options, uint8_t* images,
                    uint8_t* labels, AugmentSample* samples);

// The batch augment_fwd makes of a raw batch on `executor` (uploaded to its memory and back),
// the input stored as `dtype` (fp16 values widened back to float in Batch::input). For tests.
Batch augment_raw_batch(const RawBatch& b, const DatasetOptions& options, Executor executor,
                        DType dtype = DType::F32);
// Images per second of augment_fwd on `executor` over `batch` repeated `repeats` times (uploads
// made once, outside the timing; on cuda timed with events): the op's line of --benchmark-loader.
double augment_images_per_second(const RawBatch& batch, const DatasetOptions& options,
                                 Executor executor, int repeats);

class CityscapesDataset;

// Batches first, first + 1, ... of `data`, made by `workers` threads at most `depth` batches
// ahead of the consumer (a bounded queue), delivered in order. Each sample is a pure function of
// its position, so the batches do not depend on the thread count or timing. An error (a bad file)
// is rethrown by next() when it reaches the batch that holds the sample.
class BatchPrefetcher {
 public:
  // raw: the batches are RawBatches (next_raw), else Batches (next).
  BatchPrefetcher(const CityscapesDataset& data, int workers, int depth, int64_t first = 0,
                  bool raw = false);
  ~BatchPrefetcher();
  BatchPrefetcher(const BatchPrefetcher&) = delete;
  BatchPrefetcher& operator=(const BatchPrefetcher&) = delete;
  Batch next();
  RawBatch next_raw();
  int64_t next_index() const;  // the batch next() returns
  // The most batches ever started but not yet handed out (<= depth): the queue is bounded.
  int64_t peak_in_flight() const;
  // Seconds next() spent waiting for a batch (0 when the workers keep ahead).
  double wait_seconds() const;

 private:
  struct Slot {
    int64_t k = -1;
    int done = 0;
    std::exception_ptr error;
    Batch batch;
    RawBatch raw;
  };
  void work();
  template <typename B>
  B take(B Slot::*member);
  const CityscapesDataset& data_;
  const int depth_, batch_size_;
  mutable std::mutex mutex_;
  std::condition_variable work_cv_, done_cv_;
  std::vector<Slot> slots_;
  int64_t next_sample_, consumed_;
  int64_t peak_ = 0;
  double wait_s_ = 0;
  bool stop_ = false;
  const bool raw_;
  std::vector<std::thread> threads_;
};

class CityscapesDataset {
 public:
  // `root`: a Cityscapes folder or a pack (open_samples).
  CityscapesDataset(const std::string& root, const std::string& split,
                    const DatasetOptions& options);
  CityscapesDataset(const CityscapesDataset&) = delete;  // the prefetcher refers to it
  CityscapesDataset& operator=(const CityscapesDataset&) = delete;
  size_t size() const { return files_.size(); }
  // The samples' files in order (a pack: as recorded, SampleSource::paths).
  const std::vector<SamplePaths>& files() const { return files_; }
  const SampleSource& source() const { return *source_; }
  const DatasetOptions& options() const { return options_; }
  // Batch k (deterministic for a given k and options). With workers, sequential calls come from
  // the prefetch queue (not thread-safe: one caller).
  Batch batch(int64_t k) const;
  // An empty batch of the options' sizes.
  Batch make_batch() const;
  // Sample `position` of the endless order into slot i of `b` (thread-safe).
  void load_position(int64_t position, Batch& b, int i) const;
  // The prefetcher behind batch() (null before the first call or without workers).
  const BatchPrefetcher* prefetcher() const { return prefetcher_.get(); }
  // Batch k undecoded and unaugmented (the draws made): for augment_fwd. With workers, sequential
  // calls come from a prefetch queue of RawBatches (one caller; use batch() or raw_batch()).
  RawBatch raw_batch(int64_t k) const;
  RawBatch make_raw_batch() const;
  // Sample `position` decoded into slot i of `b`, with its draw (thread-safe).
  void load_raw_position(int64_t position, RawBatch& b, int i) const;

 private:
  size_t file_at(int64_t position) const;       // position in the endless order -> file index
  AugmentDraw draw_at(int64_t position) const;  // the augmentation draw of a position
  std::shared_ptr<const SampleSource> source_;
  std::vector<SamplePaths> files_;
  DatasetOptions options_;
  mutable std::unique_ptr<BatchPrefetcher> raw_prefetcher_;  // raw_batch()'s
  mutable std::unique_ptr<BatchPrefetcher> prefetcher_;      // last member: stops first
};

// One sample (exposed for tests): image of `paths` at the options' input size, labels at the
// label size; a horizontal mirror when `flip`.
void load_sample(const SamplePaths& paths, const DatasetOptions& options, bool flip, float* input,
                 uint8_t* labels);
// The same with an augmentation draw (tools/data/augment.h).
void load_sample(const SamplePaths& paths, const DatasetOptions& options, const AugmentDraw& draw,
                 float* input, uint8_t* labels);
// The same from a decoded sample (any SampleSource).
void load_sample(const DecodedSample& sample, const DatasetOptions& options,
                 const AugmentDraw& draw, float* input, uint8_t* labels);

}  // namespace farsee::tools
