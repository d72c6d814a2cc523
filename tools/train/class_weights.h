// farsee-train --class-weights: the loss's class weights (F.cross_entropy's weight=), given or
// computed from the training split.
#pragma once

#include <string>
#include <vector>

#include "tools/data/dataset.h"

namespace farsee::tools {

// The class weights --class-weights asks for: `spec` "" (none: empty), a list (`list`, its values
// parsed; it must hold one weight per class) or "inverse-log": 1 / ln(1.02 + f_c), f_c the share of
// class c among the labelled pixels of `data` (ENet's weighting). inverse-log reads every label map
// of `data` at its own size (the loader's trainId conversion, on `jobs` threads; the images are
// not decoded) and counts the classes in a fixed order: the same weights for any thread count.
std::vector<float> resolve_class_weights(const std::string& spec, const std::vector<float>& list,
                                         const CityscapesDataset& data, int num_classes, int jobs);

}  // namespace farsee::tools
