// `cnctl w1 masters|search|temp|read|write|touch` (w1.cpp).
#pragma once

#include "arguments.hpp"

namespace cnctl {

/// Runs a w1 command: 0 ok, 1 runtime error (a device failed, the w1 core is
/// not loaded), 3 a request got no answer in time.
int run_w1(const w1_args& a);

} // namespace cnctl
