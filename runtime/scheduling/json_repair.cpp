#include "runtime/scheduling/json_repair.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace crew {

namespace {

using json = nlohmann::json;

/// The state machine of `close_json`: feeds the text one character at a time
/// into the output, then closes what is still open.
class json_closer {
public:
  std::string run(std::string_view raw) {
    for (char c : raw)
      feed(c);
    finish_string();
    finish_bare();
    while (!stack_.empty())
      close_top();
    return std::move(out_);
  }

  /// Describes what `run` changed, one sentence per kind of change.
  std::vector<std::string> notes() const;

private:
  /// What an open container expects next.
  enum class expect : uint8_t { key, colon, value, comma };

  struct frame {
    char closer;
    expect next;
  };

  void feed(char c);
  void feed_string(char c);
  void open_container(char c);
  void close_container(char c);
  void string_done();
  void finish_bare();
  void finish_string();
  void drop_trailing_comma();
  void close_top(bool appended = true);

  std::string out_;
  std::vector<frame> stack_;
  bool in_string_ = false;
  bool escaped_ = false;
  size_t escape_at_ = 0;
  int unicode_left_ = 0;
  size_t bare_at_ = std::string::npos;
  bool closed_string_ = false;
  uint32_t truncated_values_ = 0;
  uint32_t commas_ = 0;
  uint32_t nulls_ = 0;
  uint32_t stray_ = 0;
  uint32_t closed_ = 0;
};

std::vector<std::string> json_closer::notes() const {
  std::vector<std::string> xs;
  if (closed_string_)
    xs.emplace_back("closed a truncated string");
  if (truncated_values_ > 0)
    xs.emplace_back("replaced a truncated value with null");
  if (commas_ > 0)
    xs.push_back(fmt::format("removed {} trailing comma(s)", commas_));
  if (nulls_ > 0)
    xs.push_back(fmt::format("completed {} dangling key(s)/value(s) with "
                             "null",
                             nulls_));
  if (stray_ > 0)
    xs.push_back(fmt::format("dropped {} stray closing bracket(s)", stray_));
  if (closed_ > 0)
    xs.push_back(fmt::format("closed {} unbalanced bracket(s)", closed_));
  return xs;
}

void json_closer::feed(char c) {
  if (in_string_) {
    feed_string(c);
    return;
  }
  if (is_ascii_space(c)) {
    finish_bare();
    out_.push_back(c);
    return;
  }
  switch (c) {
    case '"':
      finish_bare();
      in_string_ = true;
      out_.push_back(c);
      return;
    case '{':
    case '[':
      open_container(c);
      return;
    case '}':
    case ']':
      close_container(c);
      return;
    case ':':
      finish_bare();
      if (!stack_.empty() && stack_.back().next == expect::colon)
        stack_.back().next = expect::value;
      out_.push_back(c);
      return;
    case ',':
      finish_bare();
      if (!stack_.empty())
        stack_.back().next
            = stack_.back().closer == '}' ? expect::key : expect::value;
      out_.push_back(c);
      return;
    default:
      if (bare_at_ == std::string::npos)
        bare_at_ = out_.size();
      out_.push_back(c);
  }
}

/// One character inside a string: tracks escapes and the closing quote.
void json_closer::feed_string(char c) {
  out_.push_back(c);
  if (unicode_left_ > 0 && std::isxdigit(static_cast<unsigned char>(c))) {
    --unicode_left_;
  } else if (escaped_) {
    escaped_ = false;
    if (c == 'u')
      unicode_left_ = 4;
  } else if (c == '\\') {
    escaped_ = true;
    escape_at_ = out_.size() - 1;
    unicode_left_ = 0;
  } else if (c == '"') {
    in_string_ = false;
    unicode_left_ = 0;
    string_done();
  } else {
    unicode_left_ = 0;
  }
}

/// `{` or `[`: a new container expecting a key or a value.
void json_closer::open_container(char c) {
  finish_bare();
  stack_.push_back(
      {c == '{' ? '}' : ']', c == '{' ? expect::key : expect::value});
  out_.push_back(c);
}

/// `}` or `]`: closes its container and whatever opened after it; a closer
/// that matches no open container is dropped.
void json_closer::close_container(char c) {
  finish_bare();
  auto it = std::find_if(stack_.rbegin(), stack_.rend(),
                         [c](const frame& f) { return f.closer == c; });
  if (it == stack_.rend()) {
    ++stray_;
    return;
  }
  // Close whatever opened after the matching bracket, then it.
  auto depth = static_cast<size_t>(it - stack_.rbegin());
  for (size_t i = 0; i < depth; ++i)
    close_top();
  close_top(false);
}

void json_closer::string_done() {
  if (stack_.empty())
    return;
  auto& top = stack_.back();
  top.next = top.closer == '}' && top.next == expect::key ? expect::colon
                                                          : expect::comma;
}

/// Ends a literal or number; a cut-off one (`tru`, `1.`) is dropped so that
/// its slot is completed with null.
void json_closer::finish_bare() {
  if (bare_at_ == std::string::npos)
    return;
  auto token = std::string_view{out_}.substr(bare_at_);
  auto parsed = json::parse(token, nullptr, false);
  if (parsed.is_discarded() || parsed.is_structured()) {
    out_.erase(bare_at_);
    ++truncated_values_;
  } else if (!stack_.empty()) {
    stack_.back().next = expect::comma;
  }
  bare_at_ = std::string::npos;
}

void json_closer::finish_string() {
  if (!in_string_)
    return;
  if (escaped_)
    out_.erase(escape_at_);
  else if (unicode_left_ > 0)
    out_.erase(escape_at_);
  out_.push_back('"');
  in_string_ = false;
  closed_string_ = true;
  string_done();
}

/// Removes a `,` that is the last non-blank character of the output.
void json_closer::drop_trailing_comma() {
  auto pos = out_.find_last_not_of(" \t\r\n\f\v");
  if (pos != std::string::npos && out_[pos] == ',') {
    out_.erase(pos, 1);
    ++commas_;
  }
}

/// Closes the innermost container; `appended` counts it as missing.
void json_closer::close_top(bool appended) {
  auto top = stack_.back();
  drop_trailing_comma();
  if (top.next == expect::colon) {
    out_ += ":null";
    ++nulls_;
  } else if (top.next == expect::value && top.closer == '}') {
    out_ += "null";
    ++nulls_;
  }
  out_.push_back(top.closer);
  stack_.pop_back();
  if (!stack_.empty())
    stack_.back().next = expect::comma;
  if (appended)
    ++closed_;
}

} // namespace

closed_json close_json(std::string_view raw) {
  json_closer closer;
  closed_json out;
  out.text = closer.run(raw);
  out.notes = closer.notes();
  return out;
}

} // namespace crew
