#include "tools/eval/evaluate.h"

#include <algorithm>
#include <vector>

#include "kernels/core/check.h"

namespace farsee::tools {

ConfusionMatrix evaluate_network(
    net::FarSeeNet& net, int64_t images, int num_classes, const std::function<Batch(int64_t)>& next,
    const std::function<void(int64_t, const ConfusionMatrix&)>& on_batch) {
  ConfusionMatrix total(num_classes);
  int64_t done = 0;
  for (int64_t k = 0; done < images; ++k) {
    const Batch b = next(k);
    const int n = int(std::min<int64_t>(b.n, images));
    FARSEE_REQUIRE(n > 0, "evaluate_network: batch " << k << " holds no image");
    net.prepare(n, b.h, b.w, b.label_h, b.label_w);
    net.set_input(b.input.data());
    net.forward();
    const std::vector<uint8_t> pred = net.labels();
    const int64_t count = std::min<int64_t>(n, images - done);
    ConfusionMatrix one(num_classes);
    one.add(b.labels.data(), pred.data(), size_t(count) * size_t(b.label_h) * size_t(b.label_w));
    total.merge(one);
    done += count;
    if (on_batch) on_batch(k, one);
  }
  return total;
}

ConfusionMatrix evaluate_dataset(net::FarSeeNet& net, const CityscapesDataset& data,
                                 int num_classes) {
  return evaluate_network(net, int64_t(data.size()), num_classes,
                          [&](int64_t k) { return data.batch(k); });
}

}  // namespace farsee::tools
