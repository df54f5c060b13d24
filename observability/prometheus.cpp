#include "observability/prometheus.hpp"

#include <cmath>
#include <iterator>

#include <fmt/format.h>

namespace crew {

namespace {

/// Appends HELP text with `\` and newline escaped.
void append_help(std::string& out, std::string_view text) {
  for (auto c : text) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
}

/// Appends `{k="v",…` without the closing brace, or nothing for no labels.
void append_label_prefix(std::string& out, const label_set& labels) {
  char sep = '{';
  for (auto& [key, value] : labels) {
    out += sep;
    out += prometheus_label_name(key);
    out += "=\"";
    append_prometheus_label_value(out, value);
    out += '"';
    sep = ',';
  }
}

std::string family_name(const metric_family& family) {
  auto result = prometheus_name(family.name);
  if (family.type == metric_type::counter
      && !std::string_view{result}.ends_with("_total"))
    result += "_total";
  return result;
}


void append_value_line(std::string& out, const std::string& name,
                       const std::string& labels, double value) {
  out += name;
  if (!labels.empty()) {
    out += labels;
    out += '}';
  }
  out += ' ';
  append_prometheus_number(out, value);
  out += '\n';
}

void append_histogram(std::string& out, const std::string& name,
                      const std::string& labels, const metric_sample& sample,
                      const std::vector<std::string>& le, double scale) {
  // Bucket lines share the prefix `name_bucket{labels,le="`.
  auto bucket_head
      = name + "_bucket" + (labels.empty() ? "{" : labels + ",") + "le=\"";
  uint64_t cumulative = 0;
  auto n = std::min(sample.bounds.size(), sample.bucket_counts.size());
  for (size_t i = 0; i < n; ++i) {
    cumulative += sample.bucket_counts[i];
    out += bucket_head;
    out += le[i];
    out += "\"} ";
    fmt::format_to(std::back_inserter(out), "{}\n", cumulative);
  }
  out += bucket_head;
  out += "+Inf\"} ";
  fmt::format_to(std::back_inserter(out), "{}\n", sample.count);
  append_value_line(out, name + "_sum", labels, sample.sum * scale);
  out += name;
  out += "_count";
  if (!labels.empty()) {
    out += labels;
    out += '}';
  }
  fmt::format_to(std::back_inserter(out), " {}\n", sample.count);
}

} // namespace

void append_prometheus_number(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
  } else if (value == std::trunc(value) && std::fabs(value) < 9.2e18) {
    fmt::format_to(std::back_inserter(out), "{}", static_cast<int64_t>(value));
  } else {
    fmt::format_to(std::back_inserter(out), "{}", value);
  }
}

void append_prometheus_label_value(std::string& out, std::string_view value) {
  if (value.find_first_of("\\\"\n") == std::string_view::npos) {
    out += value;
    return;
  }
  for (auto c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
}

std::string prometheus_text(const std::vector<metric_family>& families) {
  size_t estimate = 0;
  for (auto& family : families) {
    size_t lines = 1;
    for (auto& sample : family.samples)
      lines += sample.bucket_counts.size() + 2;
    estimate += 64 * (lines + family.samples.size());
  }
  std::string out;
  out.reserve(estimate);
  std::string labels;
  std::vector<std::string> le;
  const std::vector<double>* le_bounds = nullptr;
  for (auto& family : families) {
    auto name = family_name(family);
    auto scale = prometheus_scale(family.name);
    le_bounds = nullptr; // the cached le texts depend on the scale
    if (!family.help.empty()) {
      out += "# HELP ";
      out += name;
      out += ' ';
      append_help(out, family.help);
      out += '\n';
    }
    fmt::format_to(std::back_inserter(out), "# TYPE {} {}\n", name,
                   to_string(family.type));
    for (auto& sample : family.samples) {
      labels.clear();
      append_label_prefix(labels, sample.labels);
      if (family.type != metric_type::histogram) {
        append_value_line(out, name, labels, sample.value * scale);
        continue;
      }
      // Samples of one family share their bounds; format them once.
      if (le_bounds == nullptr || *le_bounds != sample.bounds) {
        le.clear();
        for (auto bound : sample.bounds)
          append_prometheus_number(le.emplace_back(), bound * scale);
        le_bounds = &sample.bounds;
      }
      append_histogram(out, name, labels, sample, le, scale);
    }
  }
  return out;
}

} // namespace crew
