// FarSee-Net's Cityscapes evaluation loop, shared by farsee-eval --weights and farsee-train's
// validation: forward passes over a sequence of batches, the predictions (trainIds at each batch's
// label size) counted against the batches' labels in a confusion matrix
// (tools/cityscapes/metrics.h).
#pragma once

#include <cstdint>
#include <functional>

#include "net/farsee_net.h"
#include "tools/cityscapes/metrics.h"
#include "tools/data/dataset.h"

namespace farsee::tools {

// Evaluates `net` (as constructed: BN in inference mode) on `images` images that next(k) delivers
// as batches k = 0, 1, ... (tools/data/dataset.h's Batch: normalised input, trainId labels; the
// predictions are made at the batch's label size). The network runs min(b.n, images) images per
// forward; images of the last batch beyond `images` (a dataset's wrap-around) are not counted.
// on_batch, if given, sees each batch's own confusion matrix after it is counted. Returns the
// confusion matrix of `num_classes` classes over all images.
ConfusionMatrix evaluate_network(
    net::FarSeeNet& net, int64_t images, int num_classes, const std::function<Batch(int64_t)>& next,
    const std::function<void(int64_t, const ConfusionMatrix&)>& on_batch = nullptr);

// evaluate_network over every image of `data` in its batch order (unshuffled and unaugmented
// options give the split as it is): input at the options' input size, predictions and labels at
// their label size, min(options().batch, size()) images per forward.
ConfusionMatrix evaluate_dataset(net::FarSeeNet& net, const CityscapesDataset& data,
                                 int num_classes);

}  // namespace farsee::tools
