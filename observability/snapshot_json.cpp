#include "observability/snapshot_json.hpp"

#include <cmath>

namespace crew {

namespace {


nlohmann::json number_or_null(double x) {
  return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr);
}


} // namespace

nlohmann::json metrics_json(const std::vector<metric_family>& families) {
  auto out = nlohmann::json::array();
  for (auto& f : families) {
    nlohmann::json values = nlohmann::json::array();
    for (auto& s : f.samples) {
      nlohmann::json labels = nlohmann::json::object();
      for (auto& [k, v] : s.labels)
        labels[k] = v;
      if (f.type != metric_type::histogram) {
        values.push_back({{"labels", labels}, {"value", number_or_null(s.value)}});
        continue;
      }
      nlohmann::json buckets = nlohmann::json::array();
      for (auto b : s.bounds)
        buckets.push_back(b);
      buckets.push_back("+Inf");
      values.push_back({{"labels", labels},
                        {"buckets", buckets},
                        {"counts", s.bucket_counts},
                        {"sum", number_or_null(s.sum)},
                        {"count", s.count},
                        {"quantiles",
                         {{"p50", number_or_null(quantile(s, 0.50))},
                          {"p95", number_or_null(quantile(s, 0.95))},
                          {"p99", number_or_null(quantile(s, 0.99))}}}});
    }
    out.push_back({{"type", to_string(f.type)},
                   {"name", f.name},
                   {"description", f.help},
                   {"values", values}});
  }
  return out;
}

std::vector<metric_family> filter_metrics(std::vector<metric_family> families,
                                          std::string_view glob) {
  if (glob.empty())
    return families;
  std::erase_if(families,
                [&](const metric_family& f) { return !glob_match(glob, f.name, false); });
  return families;
}

} // namespace crew
