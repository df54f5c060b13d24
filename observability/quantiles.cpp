#include "observability/quantiles.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace crew {

double exact_quantile(std::vector<double>& xs, double q) {
  if (xs.empty())
    return 0;
  q = std::clamp(q, 0.0, 1.0);
  auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(xs.size())));
  auto idx = rank == 0 ? 0 : rank - 1;
  std::nth_element(xs.begin(), xs.begin() + static_cast<std::ptrdiff_t>(idx),
                   xs.end());
  return xs[idx];
}

} // namespace crew
