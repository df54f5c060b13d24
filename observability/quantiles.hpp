#pragma once

#include <cstdint>
#include <vector>

namespace crew {

/// Exact quantile (nearest-rank) of `xs`; sorts `xs` in place. Returns 0 for
/// an empty input. `q` is clamped to [0, 1].
double exact_quantile(std::vector<double>& xs, double q);

} // namespace crew
