// farsee-bench --video FILE (DESIGN.md section 15): the network alone and the whole video
// pipeline, measured in one run on the same frames of the same file.
#pragma once

#include <cstdint>
#include <string>

#include "net/api/farsee/farsee.h"

namespace farsee::tools::video {

struct VideoBenchResult {
  int64_t frames = 0;
  int height = 0, width = 0;
  std::string codec;          // the encoder of the pipeline's output
  double network_fps = 0;     // Segmenter::segment on the decoded frames, nothing else running
  double end_to_end_fps = 0;  // decode + segment + overlay + encode, pipelined (segment_video)
  double pipeline_network_fps = 0;  // segment() inside the pipeline (sharing the CPU)
  // Process CPU time per frame (all threads): on a shared machine a steadier measure of the work
  // than the fps; their ratio is what the pipeline's decode, overlay and encode cost on top.
  double network_cpu_ms = 0, pipeline_cpu_ms = 0;
};

// Decodes up to `max_frames` frames of `file` into memory, runs `warmup` untimed segment() calls,
// times segment() over the decoded frames, then runs the pipeline over the same frames into a
// temporary overlay video (removed after).
VideoBenchResult bench_video(Segmenter& segmenter, const std::string& file, int64_t max_frames,
                             int warmup);

}  // namespace farsee::tools::video
