#include "runtime/workers/pi/pi_stream.hpp"

#include <algorithm>
#include <optional>
#include <utility>

#include <nlohmann/json.hpp>

#include "store/utf8.hpp"

namespace crew {

namespace {

// Keeps key order, so compact lines read like pi's own (`type` first).
using json = nlohmann::ordered_json;

// Limits of inventory §5.5.
constexpr size_t max_text_chars = 8192;
constexpr size_t max_tool_input_chars = 2048;
constexpr size_t max_tool_result_chars = 1024;
constexpr size_t max_string_chars = 4096;
constexpr size_t max_entries = 20;
constexpr size_t max_plain_bytes = 256 * 1024;
constexpr size_t max_stderr_tail = 2048;

// Every `message_update` repeats the whole partial message (twice), so these
// lines grow quadratically with the answer; they are dropped anyway, so they
// are recognised by their prefix instead of being parsed.
constexpr std::string_view message_update_prefix = R"({"type":"message_update")";

constexpr std::string_view whitespace = " \t\r\n";

std::string_view trim(std::string_view s) {
  auto first = s.find_first_not_of(whitespace);
  if (first == std::string_view::npos)
    return {};
  auto last = s.find_last_not_of(whitespace);
  return s.substr(first, last - first + 1);
}

std::string compact_string(std::string_view s, size_t max_chars) {
  if (s.size() <= max_chars)
    return std::string{s};
  auto cut = utf8_prefix(s, max_chars);
  std::string out{s.substr(0, cut)};
  out += "\n[pi-crew compacted ";
  out += std::to_string(s.size() - cut);
  out += " chars]";
  return out;
}

// Arrays and objects nested deeper than this are cut: the recursion below
// (and dump()) must not follow a hostile `args` 100,000 levels down.
constexpr size_t max_depth = 32;
constexpr std::string_view too_deep_text = "[pi-crew compacted: nested too deep]";

json compact_value(const json& value, size_t depth = 0) {
  if (value.is_string())
    return compact_string(value.get_ref<const std::string&>(), max_string_chars);
  if ((value.is_array() || value.is_object()) && depth == max_depth)
    return std::string{too_deep_text};
  if (value.is_array()) {
    auto out = json::array();
    for (const auto& entry : value) {
      if (out.size() == max_entries)
        break;
      out.push_back(compact_value(entry, depth + 1));
    }
    return out;
  }
  if (value.is_object()) {
    auto out = json::object();
    for (const auto& [key, entry] : value.items()) {
      if (out.size() == max_entries)
        break;
      out[key] = compact_value(entry, depth + 1);
    }
    return out;
  }
  return value;
}

const std::string* string_field(const json& obj, const char* key) {
  auto i = obj.find(key);
  return i != obj.end() && i->is_string() ? &i->get_ref<const std::string&>()
                                          : nullptr;
}

std::string string_or_empty(const json& obj, const char* key) {
  auto str = string_field(obj, key);
  return str ? *str : std::string{};
}

const json* object_field(const json& obj, const char* key) {
  auto i = obj.find(key);
  return i != obj.end() && i->is_object() ? &*i : nullptr;
}

// Copies `key` (compacted) when present and not null.
void copy_field(json& out, const json& in, const char* key) {
  auto i = in.find(key);
  if (i != in.end() && !i->is_null())
    out[key] = compact_value(*i);
}

// Role of a message; empty when absent (pi-crew treats that as assistant).
std::string role_of(const json& message) {
  return string_or_empty(message, "role");
}

bool is_assistant_role(std::string_view role) {
  return role.empty() || role == "assistant";
}

// Text parts of `message.content` joined by newlines.
std::string text_of(const json& message) {
  auto content = message.find("content");
  if (content == message.end())
    return {};
  if (content->is_string())
    return content->get<std::string>();
  std::string text;
  if (!content->is_array())
    return text;
  for (const auto& part : *content) {
    if (!part.is_object() || string_or_empty(part, "type") != "text")
      continue;
    if (auto str = string_field(part, "text")) {
      if (!text.empty())
        text += '\n';
      text += *str;
    }
  }
  return text;
}

bool has_tool_call(const json& message) {
  auto content = message.find("content");
  if (content == message.end() || !content->is_array())
    return false;
  for (const auto& part : *content)
    if (part.is_object() && string_or_empty(part, "type") == "toolCall")
      return true;
  return false;
}

uint64_t count_field(const json& obj, const char* key) {
  auto i = obj.find(key);
  if (i == obj.end() || !i->is_number())
    return 0;
  if (i->is_number_unsigned())
    return i->get<uint64_t>();
  if (i->is_number_integer())
    return static_cast<uint64_t>(std::max<int64_t>(0, i->get<int64_t>()));
  // saturated: converting a double of 2^64 or more is undefined
  auto d = i->get<double>();
  if (!(d > 0.0))
    return 0;
  if (d >= 18446744073709551616.0)
    return UINT64_MAX;
  return static_cast<uint64_t>(d);
}

void add_usage(pi_usage& sum, const json* usage) {
  if (usage == nullptr) {
    ++sum.turns;
    return;
  }
  sum.input += count_field(*usage, "input");
  sum.output += count_field(*usage, "output");
  sum.cache_read += count_field(*usage, "cacheRead");
  sum.cache_write += count_field(*usage, "cacheWrite");
  sum.total_tokens += count_field(*usage, "totalTokens");
  if (auto cost = usage->find("cost"); cost != usage->end()) {
    if (cost->is_number())
      sum.cost += cost->get<double>();
    else if (cost->is_object())
      if (auto total = cost->find("total");
          total != cost->end() && total->is_number())
        sum.cost += total->get<double>();
  }
  auto turns = usage->find("turns");
  sum.turns += turns != usage->end() && turns->is_number()
                 ? count_field(*usage, "turns")
                 : 1;
}

std::optional<json> compact_part(const json& part) {
  if (!part.is_object())
    return std::nullopt;
  auto type = string_or_empty(part, "type");
  if (type == "text") {
    auto str = string_field(part, "text");
    return json{{"type", "text"},
                {"text", str ? compact_string(*str, max_text_chars) : ""}};
  }
  if (type == "toolCall") {
    json out{{"type", "toolCall"}};
    copy_field(out, part, "name");
    // pi itself sends `arguments`; `input` is what pi-crew looks for.
    copy_field(out, part, "arguments");
    if (auto input = string_field(part, "input"))
      out["input"] = compact_string(*input, max_tool_input_chars);
    else
      copy_field(out, part, "input");
    return out;
  }
  if (type == "toolResult") {
    json out{{"type", "toolResult"}};
    copy_field(out, part, "name");
    if (auto content = string_field(part, "content"))
      out["content"] = compact_string(*content, max_tool_result_chars);
    else
      copy_field(out, part, "content");
    return out;
  }
  return std::nullopt; // thinking, images, ...
}

json compact_message(const json& message) {
  json out = json::object();
  copy_field(out, message, "role");
  if (auto content = message.find("content");
      content != message.end() && content->is_array()) {
    auto parts = json::array();
    for (const auto& part : *content)
      if (auto compact = compact_part(part))
        parts.push_back(std::move(*compact));
    out["content"] = std::move(parts);
  }
  for (auto key : {"usage", "model", "provider", "errorMessage", "stopReason"})
    copy_field(out, message, key);
  return out;
}

// The compact form of an event (inventory §5.5); nullopt drops it.
std::optional<json> compact_event(const json& event, std::string_view type) {
  if (type.empty() || type == "message_update")
    return std::nullopt;
  json out{{"type", std::string{type}}};
  if (type == "tool_execution_start" || type == "tool_execution_end") {
    copy_field(out, event, "toolName");
    copy_field(out, event, "args");
    if (auto i = event.find("isError"); i != event.end() && i->is_boolean())
      out["isError"] = *i;
    return out;
  }
  if (type == "message" || type == "message_end" || type == "tool_result_end") {
    auto message = object_field(event, "message");
    if (message != nullptr) {
      auto role = role_of(*message);
      if (role == "user" || role == "system")
        return std::nullopt;
    }
    if (auto text = string_field(event, "text"))
      out["text"] = compact_string(*text, max_text_chars);
    if (message != nullptr)
      out["message"] = compact_message(*message);
    for (auto key : {"usage", "model", "provider", "stopReason"})
      copy_field(out, event, key);
    return out;
  }
  return out;
}

std::string display_of(const json& compact, std::string_view type) {
  if (type == "tool_execution_start") {
    auto name = string_field(compact, "toolName");
    return name ? "tool: " + *name : std::string{"tool started"};
  }
  if (type != "message" && type != "message_end")
    return {};
  auto message = object_field(compact, "message");
  if (message != nullptr && !is_assistant_role(role_of(*message)))
    return {};
  std::string text;
  if (message != nullptr)
    text = trim(text_of(*message));
  if (text.empty())
    text = string_or_empty(compact, "text");
  return text;
}

// The last assistant entry of `agent_end.messages`, if any.
const json* last_assistant(const json& event) {
  auto messages = event.find("messages");
  if (messages == event.end() || !messages->is_array())
    return nullptr;
  for (auto i = messages->rbegin(); i != messages->rend(); ++i)
    if (i->is_object() && role_of(*i) == "assistant")
      return &*i;
  return nullptr;
}

// The error text of a failure: the worker's bytes, made valid UTF-8.
std::string stderr_tail(std::string_view text) {
  auto trimmed = trim(text);
  return valid_utf8(trim(trimmed.substr(utf8_suffix_start(trimmed, max_stderr_tail))));
}

} // namespace

// -- feeding ------------------------------------------------------------------

std::vector<pi_line> pi_stream::feed(std::string_view chunk) {
  std::vector<pi_line> out;
  if (chunk.empty())
    return out;
  ++activity_;
  buffer_.append(chunk);
  size_t begin = 0;
  for (auto nl = buffer_.find('\n', scanned_); nl != std::string::npos;
       nl = buffer_.find('\n', begin)) {
    std::string_view line{buffer_.data() + begin, nl - begin};
    if (!line.empty() && line.back() == '\r')
      line.remove_suffix(1);
    process_line(line, out);
    begin = nl + 1;
  }
  buffer_.erase(0, begin);
  scanned_ = buffer_.size();
  return out;
}

std::vector<pi_line> pi_stream::finish() {
  std::vector<pi_line> out;
  std::string line;
  line.swap(buffer_);
  scanned_ = 0;
  if (!line.empty() && line.back() == '\r')
    line.pop_back();
  process_line(line, out);
  return out;
}

void pi_stream::begin_prompt() {
  json_events_ = 0;
  agent_ended_ = false;
  final_answer_seen_ = false;
  from_message_end_ = {};
  from_agent_end_ = {};
  from_message_ = {};
  rpc_error_.clear();
  model_.clear();
  provider_.clear();
  usage_ = {};
  current_tool_.clear();
  tool_calls_ = 0;
  plain_text_.clear();
}

void pi_stream::process_line(std::string_view line, std::vector<pi_line>& out) {
  auto start = line.find_first_not_of(whitespace);
  if (start == std::string_view::npos)
    return; // blank
  auto body = line.substr(start);
  if (body.front() == '{') {
    if (body.starts_with(message_update_prefix)) {
      ++json_events_;
      return;
    }
    auto event = json::parse(body, nullptr, false);
    if (!event.is_discarded() && event.is_object()) {
      ++json_events_;
      auto type = string_or_empty(event, "type");
      auto message = object_field(event, "message");
      auto role = message ? role_of(*message) : std::string{};
      auto take_model = [&] {
        for (auto src : {message, static_cast<const json*>(&event)}) {
          if (src == nullptr)
            continue;
          if (auto m = string_field(*src, "model"); m && !m->empty())
            model_ = *m;
          if (auto p = string_field(*src, "provider"); p && !p->empty())
            provider_ = *p;
        }
      };
      auto remember = [](answer& a, const json& msg, const json& ev) {
        a.seen = true;
        a.text = text_of(msg);
        a.stop_reason = string_or_empty(msg, "stopReason");
        if (a.stop_reason.empty())
          a.stop_reason = string_or_empty(ev, "stopReason");
        a.error_message = string_or_empty(msg, "errorMessage");
      };
      if (type == "message_end" && is_assistant_role(role)) {
        auto usage = message ? object_field(*message, "usage") : nullptr;
        add_usage(usage_, usage ? usage : object_field(event, "usage"));
        take_model();
        if (message != nullptr)
          remember(from_message_end_, *message, event);
        auto stop = message ? string_or_empty(*message, "stopReason")
                            : std::string{};
        if (stop.empty())
          stop = string_or_empty(event, "stopReason");
        if ((stop.empty() || stop == "stop")
            && (message == nullptr || !has_tool_call(*message)))
          final_answer_seen_ = true;
      } else if (type == "message" && message && is_assistant_role(role)) {
        take_model();
        remember(from_message_, *message, event);
      } else if (type == "message_start" && message && role == "assistant") {
        take_model();
      } else if (type == "agent_end") {
        agent_ended_ = true;
        if (auto last = last_assistant(event))
          remember(from_agent_end_, *last, event);
      } else if (type == "tool_execution_start") {
        current_tool_ = string_or_empty(event, "toolName");
        ++tool_calls_;
      } else if (type == "tool_execution_end") {
        current_tool_.clear();
      } else if (type == "response") {
        auto ok = event.find("success");
        if (ok != event.end() && ok->is_boolean() && !ok->get<bool>()) {
          rpc_error_ = string_or_empty(event, "error");
          if (rpc_error_.empty())
            rpc_error_ = "pi rpc command failed: "
                         + string_or_empty(event, "command");
        }
      }
      if (auto compact = compact_event(event, type)) {
        pi_line result;
        result.json = true;
        result.type = type;
        result.display = display_of(*compact, type);
        result.compact = compact->dump(-1, ' ', false,
                                       json::error_handler_t::replace);
        out.push_back(std::move(result));
      }
      return;
    }
  }
  pi_line result;
  result.compact = std::string{line};
  result.display = result.compact;
  plain_text_ += result.compact;
  plain_text_ += '\n';
  if (plain_text_.size() > max_plain_bytes)
    plain_text_.erase(0, utf8_suffix_start(plain_text_, max_plain_bytes));
  out.push_back(std::move(result));
}

// -- properties ---------------------------------------------------------------

const pi_stream::answer& pi_stream::final_answer() const noexcept {
  static const answer none;
  if (from_message_end_.seen)
    return from_message_end_;
  if (from_agent_end_.seen)
    return from_agent_end_;
  if (from_message_.seen)
    return from_message_;
  return none;
}

bool pi_stream::has_answer() const noexcept {
  return final_answer().seen;
}

const std::string& pi_stream::final_text() const noexcept {
  return final_answer().text;
}

const std::string& pi_stream::stop_reason() const noexcept {
  return final_answer().stop_reason;
}

const std::string& pi_stream::error_message() const noexcept {
  const auto& msg = final_answer().error_message;
  return msg.empty() ? rpc_error_ : msg;
}

// -- outcome ------------------------------------------------------------------

pi_outcome pi_stream::outcome(int exit_code,
                              std::string_view stderr_text) const {
  pi_outcome result;
  result.exit_code = exit_code;
  result.stop_reason = stop_reason();
  result.model = model_;
  result.provider = provider_;
  result.usage = usage_;
  result.json_events = json_events_;
  auto tail = stderr_tail(stderr_text);
  auto fail = [&](std::string description) {
    result.success = false;
    result.error = tail.empty() ? std::move(description) : tail;
    return result;
  };
  if (json_events_ == 0) {
    // Not pi's JSON stream: `-p` text mode or a mock that prints plain text.
    result.result = trim(plain_text_);
    if (exit_code != 0)
      return fail("pi exited with code " + std::to_string(exit_code));
    if (result.result.empty())
      return fail("pi produced no output");
    result.success = true;
    return result;
  }
  result.result = trim(final_text());
  if (const auto& msg = error_message(); !msg.empty()) {
    result.error = msg;
    return result;
  }
  const auto& stop = result.stop_reason;
  if (stop == "error" || stop == "aborted")
    return fail("pi stopped with stopReason " + stop);
  if (exit_code != 0)
    return fail("pi exited with code " + std::to_string(exit_code));
  if (!has_answer())
    return fail("pi produced no assistant answer (" + std::to_string(json_events_)
                + " JSON events)");
  if (stop == "toolUse")
    return fail("pi stopped after a tool call without a final answer");
  result.success = true;
  return result;
}

} // namespace crew
