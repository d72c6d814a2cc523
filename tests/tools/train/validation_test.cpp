// farsee-train's validation is farsee-eval's evaluation loop (tools/eval/evaluate.h): every image
// of the split counted once, whatever the batch (the wrap-around images of a short last batch are
// left out), so the confusion matrix is the same at batch 2 (5 images: batches of 2, 2 and 1 + 1
// padding) as image by image.
#include <gtest/gtest.h>

#include "net/farsee_net.h"
#include "net/trainer.h"
#include "tests/net/training_fixture.h"
#include "tools/data/dataset.h"
#include "tools/eval/evaluate.h"

namespace farsee::tools {
namespace {

TEST(TrainValidation, EveryImageCountsOnceAtAnyBatch) {
  const net::FarSeeConfig config = net::preset_config("tiny-paper");
  Context ctx;
  ctx.executor = Executor::Reference;
  net::FarSeeNet model(config, net::training_init(config, 5), ctx, DType::F32);
  auto matrix_at_batch = [&](int batch) {
    DatasetOptions o;
    o.input_h = 32;
    o.input_w = 64;
    o.label_h = 16;
    o.label_w = 32;
    o.batch = batch;
    o.shuffle = false;
    o.augment = false;
    o.workers = 0;
    o.num_classes = config.num_classes;
    const CityscapesDataset data(net::train_test::train_data_dir() + "cityscapes", "train", o);
    EXPECT_EQ(data.size(), 5u);
    const ConfusionMatrix m = evaluate_dataset(model, data, config.num_classes);
    if (batch == 1) {  // the evaluated pixels: the labelled pixels of every image, once
      uint64_t labelled = 0;
      for (int64_t k = 0; k < int64_t(data.size()); ++k) {
        for (uint8_t id : data.batch(k).labels) labelled += id != kIgnoreId ? 1 : 0;
      }
      EXPECT_EQ(m.total(), labelled);
    }
    return m;
  };
  const ConfusionMatrix one = matrix_at_batch(1), two = matrix_at_batch(2);
  ASSERT_GT(one.total(), 0u);
  for (int g = 0; g < config.num_classes; ++g) {
    for (int p = 0; p <= config.num_classes; ++p) {
      EXPECT_EQ(one.count(g, p), two.count(g, p)) << "ground truth " << g << ", prediction " << p;
    }
  }
}

}  // namespace
}  // namespace farsee::tools
