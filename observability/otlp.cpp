#include "observability/otlp.hpp"

#include <cctype>
#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace crew {

namespace {

using json = nlohmann::json;

json string_attribute(const std::string& key, const std::string& value) {
  return json{{"key", key}, {"value", json{{"stringValue", value}}}};
}

json attributes_of(const label_set& labels) {
  auto result = json::array();
  for (auto& [key, value] : labels)
    result.push_back(string_attribute(key, value));
  return result;
}

json double_value(double x) {
  if (std::isnan(x))
    return "NaN";
  if (std::isinf(x))
    return x > 0 ? "Infinity" : "-Infinity";
  return x;
}

json number_points(const metric_family& family, const std::string& start,
                   const std::string& now) {
  auto points = json::array();
  for (auto& sample : family.samples)
    points.push_back(json{{"attributes", attributes_of(sample.labels)},
                          {"startTimeUnixNano", start},
                          {"timeUnixNano", now},
                          {"asDouble", double_value(sample.value)}});
  return points;
}

json histogram_points(const metric_family& family, const std::string& start,
                      const std::string& now) {
  auto points = json::array();
  for (auto& sample : family.samples) {
    auto counts = json::array();
    for (auto n : sample.bucket_counts)
      counts.push_back(std::to_string(n));
    auto bounds = json::array();
    for (auto b : sample.bounds)
      bounds.push_back(double_value(b));
    points.push_back(json{{"attributes", attributes_of(sample.labels)},
                          {"startTimeUnixNano", start},
                          {"timeUnixNano", now},
                          {"count", std::to_string(sample.count)},
                          {"sum", double_value(sample.sum)},
                          {"bucketCounts", std::move(counts)},
                          {"explicitBounds", std::move(bounds)}});
  }
  return points;
}

constexpr int cumulative = 2;

} // namespace

std::string otlp_metrics_json(const std::vector<metric_family>& families,
                              const otlp_resource& res,
                              uint64_t start_time_unix_nano,
                              uint64_t time_unix_nano) {
  auto start = std::to_string(start_time_unix_nano);
  auto now = std::to_string(time_unix_nano);
  std::string service = "crew";
  auto attributes = json::array();
  for (auto& [key, value] : res.attributes)
    if (key == "service.name")
      service = value;
  attributes.push_back(string_attribute("service.name", service));
  for (auto& [key, value] : res.attributes)
    if (key != "service.name")
      attributes.push_back(string_attribute(key, value));
  auto metrics = json::array();
  for (auto& family : families) {
    json metric{{"name", family.name}, {"description", family.help}};
    if (std::string_view{family.name}.ends_with("_ms"))
      metric["unit"] = "ms";
    switch (family.type) {
      case metric_type::counter:
        metric["sum"] = json{{"dataPoints", number_points(family, start, now)},
                             {"aggregationTemporality", cumulative},
                             {"isMonotonic", true}};
        break;
      case metric_type::gauge:
        metric["gauge"]
            = json{{"dataPoints", number_points(family, start, now)}};
        break;
      case metric_type::histogram:
        metric["histogram"]
            = json{{"dataPoints", histogram_points(family, start, now)},
                   {"aggregationTemporality", cumulative}};
        break;
    }
    metrics.push_back(std::move(metric));
  }
  json scope{{"name", res.scope_name}};
  if (!res.scope_version.empty())
    scope["version"] = res.scope_version;
  json body{{"resourceMetrics",
             json::array({json{
                 {"resource", json{{"attributes", std::move(attributes)}}},
                 {"scopeMetrics",
                  json::array({json{{"scope", std::move(scope)},
                                    {"metrics", std::move(metrics)}}})}}})}};
  return body.dump();
}

// -- validation ---------------------------------------------------------------

namespace {

class checker {
public:
  std::vector<std::string> problems;

  void fail(const std::string& path, std::string_view what) {
    problems.push_back(fmt::format("{}: {}", path, what));
  }

  static std::string at(const std::string& path, std::string_view key) {
    return path.empty() ? std::string{key} : path + "." + std::string{key};
  }

  static std::string at(const std::string& path, size_t index) {
    return fmt::format("{}[{}]", path, index);
  }

  static bool is_digits(const json& x) {
    if (!x.is_string())
      return false;
    auto& s = x.get_ref<const std::string&>();
    if (s.empty() || s.size() > 20)
      return false;
    for (auto c : s)
      if (c < '0' || c > '9')
        return false;
    return true;
  }

  static bool is_int_string(const json& x) {
    if (!x.is_string())
      return false;
    auto s = x.get<std::string>();
    if (!s.empty() && s.front() == '-')
      s.erase(0, 1);
    return is_digits(json(s));
  }

  static bool is_double(const json& x) {
    if (x.is_number())
      return true;
    return x.is_string() && (x == "NaN" || x == "Infinity" || x == "-Infinity");
  }

  static bool is_camel(const std::string& key) {
    if (key.empty() || key.front() < 'a' || key.front() > 'z')
      return false;
    for (auto c : key)
      if (!std::isalnum(static_cast<unsigned char>(c)))
        return false;
    return true;
  }

  void check_keys(const json& x, const std::string& path) {
    if (x.is_object()) {
      for (auto& [key, value] : x.items()) {
        if (!is_camel(key))
          fail(at(path, key), "key is not lowerCamelCase");
        check_keys(value, at(path, key));
      }
    } else if (x.is_array()) {
      for (size_t i = 0; i < x.size(); ++i)
        check_keys(x[i], at(path, i));
    }
  }

  const json* array_field(const json& obj, const std::string& path,
                          std::string_view key, bool required = true) {
    auto i = obj.find(key);
    if (i == obj.end()) {
      if (required)
        fail(at(path, key), "missing");
      return nullptr;
    }
    if (!i->is_array()) {
      fail(at(path, key), "expected an array");
      return nullptr;
    }
    return &*i;
  }

  void check_any_value(const json& v, const std::string& path) {
    if (!v.is_object() || v.size() != 1) {
      fail(path, "expected an AnyValue with exactly one field");
      return;
    }
    // Not `auto& [kind, x] = *v.items().begin()`: that binds to a temporary
    // iterator that dies at the end of the statement (stack-use-after-scope).
    const auto first = v.begin();
    const std::string& kind = first.key();
    const json& x = first.value();
    if (kind == "stringValue" && !x.is_string())
      fail(at(path, kind), "expected a string");
    else if (kind == "boolValue" && !x.is_boolean())
      fail(at(path, kind), "expected a boolean");
    else if (kind == "intValue" && !is_int_string(x))
      fail(at(path, kind), "expected a decimal string");
    else if (kind == "doubleValue" && !is_double(x))
      fail(at(path, kind), "expected a number");
    else if (kind != "stringValue" && kind != "boolValue" && kind != "intValue"
             && kind != "doubleValue" && kind != "arrayValue"
             && kind != "kvlistValue" && kind != "bytesValue")
      fail(at(path, kind), "unknown AnyValue kind");
  }

  void check_attributes(const json& obj, const std::string& path) {
    auto attrs = array_field(obj, path, "attributes", false);
    if (attrs == nullptr)
      return;
    for (size_t i = 0; i < attrs->size(); ++i) {
      auto& kv = (*attrs)[i];
      auto p = at(at(path, "attributes"), i);
      if (!kv.is_object() || !kv.contains("key") || !kv["key"].is_string()) {
        fail(p, "expected {key: string, value: AnyValue}");
        continue;
      }
      if (kv.contains("value"))
        check_any_value(kv["value"], at(p, "value"));
      else
        fail(at(p, "value"), "missing");
    }
  }

  void check_times(const json& point, const std::string& path) {
    for (auto key : {"startTimeUnixNano", "timeUnixNano"}) {
      if (!point.contains(key))
        fail(at(path, key), "missing");
      else if (!is_digits(point[key]))
        fail(at(path, key), "expected a string of decimal digits");
    }
  }

  void check_number_point(const json& point, const std::string& path) {
    if (!point.is_object()) {
      fail(path, "expected an object");
      return;
    }
    check_attributes(point, path);
    check_times(point, path);
    auto has_double = point.contains("asDouble");
    auto has_int = point.contains("asInt");
    if (has_double == has_int)
      fail(path, "expected exactly one of asDouble and asInt");
    else if (has_double && !is_double(point["asDouble"]))
      fail(at(path, "asDouble"), "expected a number");
    else if (has_int && !is_int_string(point["asInt"]))
      fail(at(path, "asInt"), "expected a decimal string");
  }

  void check_histogram_point(const json& point, const std::string& path) {
    if (!point.is_object()) {
      fail(path, "expected an object");
      return;
    }
    check_attributes(point, path);
    check_times(point, path);
    if (!point.contains("count") || !is_digits(point["count"]))
      fail(at(path, "count"), "expected a string of decimal digits");
    if (point.contains("sum") && !is_double(point["sum"]))
      fail(at(path, "sum"), "expected a number");
    auto counts = array_field(point, path, "bucketCounts", false);
    auto bounds = array_field(point, path, "explicitBounds", false);
    size_t n_counts = counts ? counts->size() : 0;
    size_t n_bounds = bounds ? bounds->size() : 0;
    if (n_counts != 0 || n_bounds != 0) {
      if (n_counts != n_bounds + 1)
        fail(at(path, "bucketCounts"),
             fmt::format("has {} entries, expected explicitBounds.size() + 1 "
                         "= {}",
                         n_counts, n_bounds + 1));
    }
    uint64_t total = 0;
    bool counts_ok = true;
    for (size_t i = 0; i < n_counts; ++i) {
      auto& c = (*counts)[i];
      if (!is_digits(c)) {
        fail(at(at(path, "bucketCounts"), i),
             "expected a string of decimal digits");
        counts_ok = false;
      } else {
        total += std::stoull(c.get<std::string>());
      }
    }
    for (size_t i = 0; i < n_bounds; ++i) {
      auto& b = (*bounds)[i];
      if (!b.is_number())
        fail(at(at(path, "explicitBounds"), i), "expected a number");
      else if (i > 0 && (*bounds)[i - 1].is_number()
               && b.get<double>() <= (*bounds)[i - 1].get<double>())
        fail(at(at(path, "explicitBounds"), i), "bounds not increasing");
    }
    if (counts_ok && n_counts > 0 && point.contains("count")
        && is_digits(point["count"])
        && std::stoull(point["count"].get<std::string>()) != total)
      fail(at(path, "count"), "differs from the sum of bucketCounts");
  }

  void check_temporality(const json& data, const std::string& path) {
    auto i = data.find("aggregationTemporality");
    if (i == data.end())
      fail(at(path, "aggregationTemporality"), "missing");
    else if (!i->is_number_integer() || (*i != 1 && *i != 2))
      fail(at(path, "aggregationTemporality"),
           "expected 1 (delta) or 2 (cumulative) as an integer");
  }

  void check_metric(const json& metric, const std::string& path) {
    if (!metric.is_object()) {
      fail(path, "expected an object");
      return;
    }
    if (!metric.contains("name") || !metric["name"].is_string()
        || metric["name"].get_ref<const std::string&>().empty())
      fail(at(path, "name"), "expected a non-empty string");
    for (auto key : {"description", "unit"})
      if (metric.contains(key) && !metric[key].is_string())
        fail(at(path, key), "expected a string");
    int kinds = 0;
    for (auto key :
         {"sum", "gauge", "histogram", "exponentialHistogram", "summary"})
      kinds += metric.contains(key) ? 1 : 0;
    if (kinds != 1) {
      fail(path, "expected exactly one of sum, gauge, histogram");
      return;
    }
    if (metric.contains("exponentialHistogram") || metric.contains("summary")) {
      fail(path, "unsupported data kind");
      return;
    }
    auto kind = metric.contains("sum")     ? "sum"
                : metric.contains("gauge") ? "gauge"
                                           : "histogram";
    auto& data = metric[kind];
    auto p = at(path, kind);
    if (!data.is_object()) {
      fail(p, "expected an object");
      return;
    }
    if (std::string_view{kind} != "gauge")
      check_temporality(data, p);
    if (data.contains("isMonotonic") && !data["isMonotonic"].is_boolean())
      fail(at(p, "isMonotonic"), "expected a boolean");
    auto points = array_field(data, p, "dataPoints");
    if (points == nullptr)
      return;
    for (size_t i = 0; i < points->size(); ++i) {
      auto pp = at(at(p, "dataPoints"), i);
      if (std::string_view{kind} == "histogram")
        check_histogram_point((*points)[i], pp);
      else
        check_number_point((*points)[i], pp);
    }
  }

  void check(const json& body) {
    if (!body.is_object()) {
      fail("$", "expected an object");
      return;
    }
    check_keys(body, "");
    auto rms = array_field(body, "", "resourceMetrics");
    if (rms == nullptr)
      return;
    for (size_t i = 0; i < rms->size(); ++i) {
      auto& rm = (*rms)[i];
      auto p = at("resourceMetrics", i);
      if (!rm.is_object()) {
        fail(p, "expected an object");
        continue;
      }
      if (rm.contains("resource")) {
        if (rm["resource"].is_object())
          check_attributes(rm["resource"], at(p, "resource"));
        else
          fail(at(p, "resource"), "expected an object");
      }
      auto sms = array_field(rm, p, "scopeMetrics");
      if (sms == nullptr)
        continue;
      for (size_t j = 0; j < sms->size(); ++j) {
        auto& sm = (*sms)[j];
        auto sp = at(at(p, "scopeMetrics"), j);
        if (!sm.is_object()) {
          fail(sp, "expected an object");
          continue;
        }
        if (sm.contains("scope")) {
          auto& scope = sm["scope"];
          if (!scope.is_object())
            fail(at(sp, "scope"), "expected an object");
          else
            for (auto key : {"name", "version"})
              if (scope.contains(key) && !scope[key].is_string())
                fail(at(at(sp, "scope"), key), "expected a string");
        }
        auto metrics = array_field(sm, sp, "metrics");
        if (metrics == nullptr)
          continue;
        for (size_t k = 0; k < metrics->size(); ++k)
          check_metric((*metrics)[k], at(at(sp, "metrics"), k));
      }
    }
  }
};

} // namespace

otlp_validation validate_otlp_metrics_json(std::string_view body) {
  otlp_validation result;
  auto doc = json::parse(body, nullptr, false);
  if (doc.is_discarded()) {
    result.problems.emplace_back("$: not valid JSON");
    return result;
  }
  checker c;
  c.check(doc);
  result.problems = std::move(c.problems);
  result.ok = result.problems.empty();
  return result;
}

} // namespace crew
