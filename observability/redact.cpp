#include "observability/redact.hpp"

#include <algorithm>
#include <array>
#include <vector>

namespace crew {

namespace {

bool is_upper(char c) {
  return c >= 'A' && c <= 'Z';
}

bool is_lower(char c) {
  return c >= 'a' && c <= 'z';
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

char to_lower(char c) {
  return is_upper(c) ? static_cast<char>(c - 'A' + 'a') : c;
}

std::vector<std::string> split_words(std::string_view name) {
  std::vector<std::string> words;
  std::string word;
  auto flush = [&] {
    if (!word.empty())
      words.emplace_back(std::move(word));
    word.clear();
  };
  for (size_t i = 0; i < name.size(); ++i) {
    auto c = name[i];
    if (!is_upper(c) && !is_lower(c) && !is_digit(c)) {
      flush();
      continue;
    }
    if (is_upper(c) && i > 0) {
      auto prev = name[i - 1];
      auto next = i + 1 < name.size() ? name[i + 1] : '\0';
      // fooBar -> foo|Bar; APIKey -> API|Key.
      if (is_lower(prev) || is_digit(prev)
          || (is_upper(prev) && is_lower(next)))
        flush();
    }
    word += to_lower(c);
  }
  flush();
  return words;
}

bool is_secret_word(std::string_view w) {
  static constexpr std::array<std::string_view, 14> words{
      "token",  "secret",     "secrets",     "password",  "passwords",
      "passwd", "credential", "credentials", "auth",      "authorization",
      "apikey", "cookie",     "cookies",     "passphrase"};
  return std::find(words.begin(), words.end(), w) != words.end();
}

bool is_key_qualifier(std::string_view w) {
  return w == "api" || w == "access" || w == "private" || w == "secret"
         || w == "session";
}

bool is_name_char(char c) {
  return is_upper(c) || is_lower(c) || is_digit(c) || c == '_' || c == '.'
         || c == '-';
}

bool is_blank(char c) {
  return c == ' ' || c == '\t';
}

bool iequals(std::string_view x, std::string_view y) {
  return x.size() == y.size()
         && std::equal(x.begin(), x.end(), y.begin(), [](char a, char b) {
              return to_lower(a) == to_lower(b);
            });
}

} // namespace

bool is_secret_name(std::string_view name) {
  auto words = split_words(name);
  for (size_t i = 0; i < words.size(); ++i) {
    if (is_secret_word(words[i]))
      return true;
    if (words[i] == "key" && i > 0 && is_key_qualifier(words[i - 1]))
      return true;
  }
  return false;
}

nlohmann::json redact(const nlohmann::json& value) {
  if (value.is_object()) {
    auto result = nlohmann::json::object();
    for (auto& [key, item] : value.items())
      result[key] = is_secret_name(key) ? nlohmann::json(redacted_marker)
                                        : redact(item);
    return result;
  }
  if (value.is_array()) {
    auto result = nlohmann::json::array();
    for (auto& item : value)
      result.push_back(redact(item));
    return result;
  }
  if (value.is_string())
    return redact_text(value.get_ref<const std::string&>());
  return value;
}

std::string redact_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  auto n = text.size();
  while (i < n) {
    auto c = text[i];
    bool starts_name = (is_upper(c) || is_lower(c) || c == '_')
                       && (i == 0 || !is_name_char(text[i - 1]));
    if (!starts_name) {
      out += c;
      ++i;
      continue;
    }
    auto begin = i;
    while (i < n && is_name_char(text[i]))
      ++i;
    auto name = text.substr(begin, i - begin);
    out += name;
    if (!is_secret_name(name))
      continue;
    // Scan `["']? blanks [=:] blanks` without consuming on a mismatch.
    auto j = i;
    auto open = begin > 0 ? text[begin - 1] : '\0';
    if (j < n && (open == '"' || open == '\'') && text[j] == open)
      ++j;
    while (j < n && is_blank(text[j]))
      ++j;
    if (j >= n || (text[j] != '=' && text[j] != ':'))
      continue;
    ++j;
    while (j < n && is_blank(text[j]))
      ++j;
    if (j < n && (text[j] == '"' || text[j] == '\'')) {
      auto quote = text[j];
      auto close = text.find(quote, j + 1);
      if (close == std::string_view::npos)
        close = n;
      out.append(text.substr(i, j + 1 - i));
      out += redacted_marker;
      i = close;
      continue;
    }
    auto value_end = j;
    auto stops = [](char x) {
      return is_blank(x) || x == '\n' || x == '\r' || x == ',' || x == ';'
             || x == '&' || x == '"' || x == '\'';
    };
    while (value_end < n && !stops(text[value_end]))
      ++value_end;
    if (value_end == j)
      continue; // nothing to hide, e.g. `token:` ending a sentence
    out.append(text.substr(i, j - i));
    auto value = text.substr(j, value_end - j);
    if ((iequals(value, "bearer") || iequals(value, "basic")) && value_end < n
        && text[value_end] == ' ' && value_end + 1 < n
        && !stops(text[value_end + 1])) {
      out += value;
      out += ' ';
      value_end += 1;
      while (value_end < n && !stops(text[value_end]))
        ++value_end;
    }
    out += redacted_marker;
    i = value_end;
  }
  return out;
}

} // namespace crew
