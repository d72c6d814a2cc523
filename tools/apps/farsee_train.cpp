// farsee-train: trains FarSee-Net on a Cityscapes-layout folder (see tools/train/train_cli.cpp, its
// flags in tools/train/options.cpp, and the README's farsee-train section).
#include <string>
#include <vector>

#include "tools/train/train_cli.h"

int main(int argc, char** argv) {
  return farsee::tools::train_main(std::vector<std::string>(argv + 1, argv + argc));
}
