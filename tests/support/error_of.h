// The tests' error capture: the message of the farsee::Error that f throws, or "" when it
// throws none.
#pragma once

#include <string>

#include "kernels/core/check.h"

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const farsee::Error& e) {
    return e.what();
  }
  return "";
}
