#include "observability/names.hpp"

namespace crew {

namespace {

constexpr bool is_lower(char c) noexcept {
  return c >= 'a' && c <= 'z';
}

constexpr bool is_alpha(char c) noexcept {
  return is_lower(c) || (c >= 'A' && c <= 'Z');
}

constexpr bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}

} // namespace

bool is_valid_metric_name(std::string_view name) noexcept {
  constexpr std::string_view prefix = "crew.";
  if (!name.starts_with(prefix))
    return false;
  name.remove_prefix(prefix.size());
  auto dot = name.find('.');
  if (dot == 0 || dot == std::string_view::npos)
    return false;
  for (auto c : name.substr(0, dot))
    if (!is_lower(c))
      return false;
  auto tail = name.substr(dot + 1);
  if (tail.empty() || !is_lower(tail.front()))
    return false;
  for (auto c : tail)
    if (!is_lower(c) && c != '_')
      return false;
  return true;
}

bool is_valid_label_name(std::string_view name) noexcept {
  if (name.empty() || name.starts_with("__"))
    return false;
  if (!is_alpha(name.front()) && name.front() != '_')
    return false;
  for (auto c : name)
    if (!is_alpha(c) && !is_digit(c) && c != '_')
      return false;
  return true;
}

std::string prometheus_name(std::string_view name) {
  std::string result{name};
  for (auto& c : result)
    if (c == '.')
      c = '_';
  if (std::string_view{result}.ends_with("_ms")) {
    result.resize(result.size() - 3);
    result += "_seconds";
  }
  return result;
}

double prometheus_scale(std::string_view name) noexcept {
  return name.ends_with("_ms") ? 0.001 : 1.0;
}

std::string prometheus_label_name(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 4);
  for (char c : name) {
    if (c >= 'A' && c <= 'Z') {
      if (!out.empty() && out.back() != '_')
        out += '_';
      out += static_cast<char>(c - 'A' + 'a');
    } else {
      out += c;
    }
  }
  return out;
}

bool glob_match(std::string_view pat, std::string_view str, bool icase) noexcept {
  auto same = [icase](char a, char b) {
    if (!icase)
      return a == b;
    auto lower = [](char c) {
      return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    };
    return lower(a) == lower(b);
  };
  size_t p = 0, s = 0, star = std::string_view::npos, mark = 0;
  while (s < str.size()) {
    if (p < pat.size() && pat[p] == '*') {
      star = p++;
      mark = s;
    } else if (p < pat.size() && same(pat[p], str[s])) {
      ++p;
      ++s;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      s = ++mark;
    } else {
      return false;
    }
  }
  while (p < pat.size() && pat[p] == '*')
    ++p;
  return p == pat.size();
}

} // namespace crew
