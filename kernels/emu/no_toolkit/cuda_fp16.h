// Toolkit-less stand-in: see kernels/emu/host_fp16.h.
#pragma once
#include "kernels/emu/host_fp16.h"
