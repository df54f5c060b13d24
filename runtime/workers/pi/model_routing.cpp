#include "runtime/workers/pi/model_routing.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <iterator>
#include <utility>

#include <nlohmann/json.hpp>

namespace crew {

namespace {

using json = nlohmann::ordered_json;

constexpr std::array<std::string_view, 6> thinking_levels{
  "off", "minimal", "low", "medium", "high", "xhigh"};

// Plain substrings of inventory §5.3 (matched on the lowercased error).
// `auth` also covers authentication, unauthorized and unauthorised, exactly
// like pi-crew's /auth(?:entication)?/i. "connection error" is not in
// pi-crew's list; it is what pi reports when the provider cannot be reached.
constexpr std::array<std::string_view, 20> retryable_phrases{
  "too many requests", "quota",         "billing",
  "credit",            "auth",          "forbidden",
  "api key",           "token expired", "invalid key",
  "unknown model",     "overloaded",    "service unavailable",
  "connection refused", "connection error", "fetch failed",
  "network error",     "socket hang up", "upstream",
  "timeout",           "temporarily unavailable"};

// Pairs matched like /first.*second/i: both on one line, in this order.
constexpr std::array<std::pair<std::string_view, std::string_view>, 4>
  retryable_pairs{{{"provider", "unavailable"},
                   {"model", "unavailable"},
                   {"model", "disabled"},
                   {"model", "not found"}}};

// HTTP statuses, matched as whole words like /\b429\b/.
constexpr std::array<std::string_view, 4> retryable_statuses{"429", "502",
                                                             "503", "504"};

constexpr std::string_view whitespace = " \t\r\n";

std::string lowercase(std::string_view text) {
  std::string out{text};
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) {
    return static_cast<char>(std::tolower(c));
  });
  return out;
}

bool is_word_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

bool contains_word(std::string_view text, std::string_view word) {
  for (auto pos = text.find(word); pos != std::string_view::npos;
       pos = text.find(word, pos + 1)) {
    auto end = pos + word.size();
    if ((pos == 0 || !is_word_char(text[pos - 1]))
        && (end == text.size() || !is_word_char(text[end])))
      return true;
  }
  return false;
}

// /rate\s*limit/
bool contains_rate_limit(std::string_view text) {
  for (auto pos = text.find("rate"); pos != std::string_view::npos;
       pos = text.find("rate", pos + 1)) {
    auto rest = text.substr(pos + 4);
    auto skip = rest.find_first_not_of(" \t\r\n\f\v");
    if (skip != std::string_view::npos && rest.substr(skip).starts_with("limit"))
      return true;
  }
  return false;
}

// /timed? out/ and /temporar(?:ily)? unavailable/ beyond the plain phrases.
bool contains_variants(std::string_view text) {
  return text.find("time out") != std::string_view::npos
         || text.find("timed out") != std::string_view::npos
         || text.find("temporar unavailable") != std::string_view::npos;
}

bool contains_pair(std::string_view text, std::string_view first,
                   std::string_view second) {
  size_t begin = 0;
  while (begin <= text.size()) {
    auto end = text.find_first_of("\r\n", begin);
    auto line = text.substr(begin, end == std::string_view::npos
                                     ? std::string_view::npos
                                     : end - begin);
    if (auto pos = line.find(first); pos != std::string_view::npos
        && line.find(second, pos + first.size()) != std::string_view::npos)
      return true;
    if (end == std::string_view::npos)
      break;
    begin = end + 1;
  }
  return false;
}

std::string_view trim(std::string_view s) {
  auto first = s.find_first_not_of(whitespace);
  if (first == std::string_view::npos)
    return {};
  auto last = s.find_last_not_of(whitespace);
  return s.substr(first, last - first + 1);
}

} // namespace

// -- errors and thinking levels -----------------------------------------------

bool is_retryable_model_error(std::string_view error) {
  auto text = lowercase(error);
  auto has = [&](std::string_view phrase) {
    return text.find(phrase) != std::string::npos;
  };
  return std::any_of(retryable_phrases.begin(), retryable_phrases.end(), has)
         || contains_rate_limit(text) || contains_variants(text)
         || std::any_of(retryable_statuses.begin(), retryable_statuses.end(),
                        [&](auto status) { return contains_word(text, status); })
         || std::any_of(retryable_pairs.begin(), retryable_pairs.end(),
                        [&](const auto& pair) {
                          return contains_pair(text, pair.first, pair.second);
                        });
}

bool is_thinking_level(std::string_view level) noexcept {
  return std::find(thinking_levels.begin(), thinking_levels.end(), level)
         != thinking_levels.end();
}

std::string_view strip_thinking(std::string_view model) noexcept {
  auto colon = model.rfind(':');
  if (colon != std::string_view::npos
      && is_thinking_level(model.substr(colon + 1)))
    return model.substr(0, colon);
  return model;
}

std::string with_thinking(std::string_view model, std::string_view thinking) {
  std::string out{model};
  if (model.empty() || thinking.empty() || thinking == "off"
      || strip_thinking(model).size() != model.size())
    return out;
  out += ':';
  out += thinking;
  return out;
}

// -- candidates ---------------------------------------------------------------

model_plan model_candidates(const model_request& request) {
  model_plan plan;
  std::vector<std::string_view> raw{request.override_model, request.step_model,
                                    request.agent_model};
  for (auto model : raw) {
    if (auto m = trim(model); !m.empty()) {
      plan.requested = m;
      break;
    }
  }
  raw.insert(raw.end(), request.fallback_models.begin(),
             request.fallback_models.end());
  std::vector<std::string_view> seen;
  for (auto model : raw) {
    auto m = trim(model);
    if (m.empty())
      continue;
    auto key = strip_thinking(m);
    if (std::find(seen.begin(), seen.end(), key) != seen.end())
      continue;
    seen.push_back(key);
    plan.candidates.emplace_back(m);
  }
  if (plan.candidates.empty())
    plan.reason = "no model configured; pi uses its default model";
  else if (plan.candidates.size() == 1
           && plan.candidates.front() == plan.requested)
    plan.reason = "requested model";
  else
    plan.reason = "configured Pi fallback chain";
  return plan;
}

// -- attempts and routing -----------------------------------------------------

bool should_try_next_model(const model_attempt& attempt) {
  return !attempt.success && is_retryable_model_error(attempt.error);
}

model_routing route_result(const model_plan& plan,
                           const std::vector<model_attempt>& attempts) {
  model_routing routing;
  routing.requested = plan.requested;
  routing.candidates = plan.candidates;
  routing.reason = plan.reason;
  if (attempts.empty())
    return routing;
  auto used = std::find_if(attempts.begin(), attempts.end(),
                           [](const auto& a) { return a.success; });
  if (used == attempts.end())
    --used;
  routing.used_attempt = static_cast<int>(used - attempts.begin());
  routing.resolved = used->model.empty() ? "default" : used->model;
  if (used != attempts.begin())
    routing.fallback_reason = std::prev(used)->error;
  return routing;
}

std::string model_attempts_json(const std::vector<model_attempt>& attempts) {
  auto out = json::array();
  for (const auto& attempt : attempts) {
    json entry{{"model", attempt.model.empty() ? "default" : attempt.model},
               {"success", attempt.success},
               {"exitCode", attempt.exit_code}};
    if (!attempt.error.empty())
      entry["error"] = attempt.error;
    out.push_back(std::move(entry));
  }
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string model_routing_json(const model_routing& routing) {
  auto out = json::object();
  auto put = [&](const char* key, const std::string& value) {
    if (!value.empty())
      out[key] = value;
  };
  put("requested", routing.requested);
  put("resolved", routing.resolved);
  out["fallbackChain"] = routing.candidates;
  put("reason", routing.reason);
  put("fallbackReason", routing.fallback_reason);
  if (routing.used_attempt >= 0)
    out["usedAttempt"] = routing.used_attempt;
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

} // namespace crew
