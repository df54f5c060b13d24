#include "config/frontmatter.hpp"

#include <algorithm>

namespace crew {

namespace {

bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
         || c == '\v';
}

std::string normalize_newlines(std::string_view content) {
  std::string out;
  out.reserve(content.size());
  for (size_t i = 0; i < content.size(); ++i) {
    if (content[i] == '\r' && i + 1 < content.size() && content[i + 1] == '\n')
      continue;
    out.push_back(content[i]);
  }
  return out;
}

} // namespace

std::string_view trim(std::string_view str) noexcept {
  while (!str.empty() && is_space(str.front()))
    str.remove_prefix(1);
  while (!str.empty() && is_space(str.back()))
    str.remove_suffix(1);
  return str;
}

frontmatter parse_frontmatter(std::string_view content) {
  frontmatter result;
  auto text = normalize_newlines(content);
  if (text.rfind("---\n", 0) != 0) {
    result.body = std::move(text);
    return result;
  }
  auto end = text.find("\n---\n", 4);
  if (end == std::string::npos) {
    result.body = std::move(text);
    return result;
  }
  result.present = true;
  std::string_view raw{text.data() + 4, end - 4};
  size_t line_no = 2; // the opening `---` is line 1
  while (true) {
    auto nl = raw.find('\n');
    auto line = trim(raw.substr(0, nl));
    if (!line.empty() && line.front() != '#') {
      if (auto colon = line.find(':'); colon != std::string_view::npos) {
        auto key = trim(line.substr(0, colon));
        auto value = trim(line.substr(colon + 1));
        if (!key.empty()) {
          result.fields.emplace_back(std::string{key}, std::string{value});
          result.field_lines.push_back(line_no);
        }
      }
    }
    if (nl == std::string_view::npos)
      break;
    raw.remove_prefix(nl + 1);
    ++line_no;
  }
  auto body_start = end + 5;
  result.body_line = 1
                     + static_cast<size_t>(std::count(
                       text.begin(), text.begin() + body_start, '\n'));
  result.body = text.substr(body_start);
  return result;
}

std::string_view frontmatter_get(const frontmatter& fm, std::string_view key) {
  for (auto i = fm.fields.rbegin(); i != fm.fields.rend(); ++i)
    if (i->first == key)
      return i->second;
  return {};
}

bool frontmatter_has(const frontmatter& fm, std::string_view key) {
  return std::any_of(fm.fields.begin(), fm.fields.end(),
                     [key](const auto& kv) { return kv.first == key; });
}

size_t frontmatter_line(const frontmatter& fm, std::string_view key) {
  for (size_t i = fm.fields.size(); i > 0; --i)
    if (fm.fields[i - 1].first == key)
      return i - 1 < fm.field_lines.size() ? fm.field_lines[i - 1] : 0;
  return 0;
}

std::vector<std::string> split_csv(std::string_view str) {
  std::vector<std::string> result;
  while (true) {
    auto comma = str.find(',');
    auto item = trim(str.substr(0, comma));
    if (!item.empty()
        && std::find(result.begin(), result.end(), item) == result.end())
      result.emplace_back(item);
    if (comma == std::string_view::npos)
      break;
    str.remove_prefix(comma + 1);
  }
  return result;
}

} // namespace crew
