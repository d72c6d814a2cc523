// EXPECT_MENTIONS(text, part): `text` (an error message or a program's output) contains `part`;
// on failure both are printed.
#pragma once

#include <gtest/gtest.h>

#include <string>

#define EXPECT_MENTIONS(text, part) \
  EXPECT_NE((text).find(part), std::string::npos) << "text: " << (text) << "\nmissing: " << (part)
