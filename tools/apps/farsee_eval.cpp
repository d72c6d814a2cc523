// farsee-eval: Cityscapes mIoU of label maps or of a network (see tools/eval/eval_cli.cpp and the
// README's farsee-eval section).
#include <string>
#include <vector>

#include "tools/eval/eval_cli.h"

int main(int argc, char** argv) {
  return farsee::tools::eval_main(std::vector<std::string>(argv + 1, argv + argc));
}
