#include "runtime/workers/pi/model_routing.hpp"

#include <string>
#include <vector>

#include <doctest/doctest.h>

using namespace crew;

TEST_CASE("model_routing: provider, auth and network errors are retryable") {
  for (const char* error : {
         "rate limit: mock failure",
         "RATE LIMIT exceeded",
         "ratelimit hit",
         "Rate  limit reached for requests",
         "429 Too Many Requests",
         "Error: 429",
         "too many requests",
         "insufficient_quota",
         "Billing hard limit has been reached",
         "Your credit balance is too low",
         "Authentication failed",
         "401 Unauthorized",
         "unauthorised",
         "403 Forbidden",
         "Invalid API key provided",
         "OAuth token expired",
         "invalid key",
         "Provider openrouter is currently unavailable",
         "The model `gpt-9` is unavailable",
         "model has been disabled",
         "Model claude-x not found",
         "Unknown model: fake/nope",
         "Overloaded",
         "503 Service Unavailable",
         "server temporarily unavailable",
         "connect: connection refused",
         "Connection error.",
         "TypeError: fetch failed",
         "network error",
         "socket hang up",
         "500 fake upstream failure",
         "Request timed out.",
         "request time out",
         "timeout after 30000ms",
         "502 Bad Gateway",
         "HTTP 504",
       }) {
    CAPTURE(error);
    CHECK(is_retryable_model_error(error));
  }
}

TEST_CASE("model_routing: task errors are not retryable") {
  for (const char* error : {
         "",
         "mock failure: boom",
         "Tool bash failed with exit code 1",
         "context length exceeded",
         "used 14290 tokens",  // 429 only as a whole word
         "exit code 5029",
         "model loaded\nfile not found", // model...not found on one line only
         "syntax error in prompt",
         "pi stopped with stopReason aborted",
       }) {
    CAPTURE(error);
    CHECK_FALSE(is_retryable_model_error(error));
  }
}

TEST_CASE("model_routing: thinking levels") {
  for (const char* level : {"off", "minimal", "low", "medium", "high", "xhigh"})
    CHECK(is_thinking_level(level));
  CHECK_FALSE(is_thinking_level("max"));
  CHECK_FALSE(is_thinking_level(""));
  CHECK_EQ(strip_thinking("anthropic/claude:high"), "anthropic/claude");
  CHECK_EQ(strip_thinking("x:xhigh"), "x");
  CHECK_EQ(strip_thinking("ollama/llama3:8b"), "ollama/llama3:8b");
  CHECK_EQ(strip_thinking("plain"), "plain");

  CHECK_EQ(with_thinking("fake/fake-reasoner", "high"), "fake/fake-reasoner:high");
  CHECK_EQ(with_thinking("fake/fake-reasoner", "off"), "fake/fake-reasoner");
  CHECK_EQ(with_thinking("fake/fake-reasoner", ""), "fake/fake-reasoner");
  CHECK_EQ(with_thinking("fake/fake-reasoner:low", "high"), "fake/fake-reasoner:low");
  CHECK_EQ(with_thinking("ollama/llama3:8b", "low"), "ollama/llama3:8b:low");
  CHECK_EQ(with_thinking("", "high"), "");
}

TEST_CASE("model_routing: candidates keep step, agent, fallbacks without duplicates") {
  model_request request;
  request.step_model = "anthropic/claude-sonnet:high";
  request.agent_model = "anthropic/claude-sonnet";
  request.fallback_models = {"", " openai/gpt-5 ", "anthropic/claude-sonnet:low",
                             "openai/gpt-5", "ollama/llama3:8b",
                             "ollama/llama3"};
  auto plan = model_candidates(request);
  CHECK_EQ(plan.requested, "anthropic/claude-sonnet:high");
  CHECK_EQ(plan.candidates,
           std::vector<std::string>{"anthropic/claude-sonnet:high",
                                    "openai/gpt-5", "ollama/llama3:8b",
                                    "ollama/llama3"});
  CHECK_EQ(plan.reason, "configured Pi fallback chain");

  SUBCASE("the override comes first") {
    request.override_model = "google/gemini";
    plan = model_candidates(request);
    CHECK_EQ(plan.requested, "google/gemini");
    CHECK_EQ(plan.candidates.front(), "google/gemini");
    CHECK_EQ(plan.candidates.size(), 5);
  }
}

TEST_CASE("model_routing: a single model or none") {
  model_request agent_only;
  agent_only.agent_model = "fake/fake-model";
  auto plan = model_candidates(agent_only);
  CHECK_EQ(plan.requested, "fake/fake-model");
  CHECK_EQ(plan.candidates, std::vector<std::string>{"fake/fake-model"});
  CHECK_EQ(plan.reason, "requested model");

  model_request fallbacks_only;
  fallbacks_only.fallback_models = {"fake/b"};
  plan = model_candidates(fallbacks_only);
  CHECK(plan.requested.empty());
  CHECK_EQ(plan.candidates, std::vector<std::string>{"fake/b"});
  CHECK_EQ(plan.reason, "configured Pi fallback chain");

  plan = model_candidates({});
  CHECK(plan.candidates.empty());
  CHECK_EQ(plan.reason, "no model configured; pi uses its default model");
}

TEST_CASE("model_routing: the attempt loop moves on only after retryable errors") {
  CHECK(should_try_next_model({"a", false, 1, "rate limit: mock failure"}));
  CHECK_FALSE(should_try_next_model({"a", false, 1, "mock failure: boom"}));
  CHECK_FALSE(should_try_next_model({"a", true, 0, ""}));
}

TEST_CASE("model_routing: routing records the used attempt and the fallback reason") {
  model_request request;
  request.step_model = "fake/a";
  request.fallback_models = {"fake/b", "fake/c"};
  auto plan = model_candidates(request);

  std::vector<model_attempt> attempts{
    {"fake/a", false, 1, "rate limit: mock failure"},
    {"fake/b", true, 0, ""},
  };
  auto routing = route_result(plan, attempts);
  CHECK_EQ(routing.used_attempt, 1);
  CHECK_EQ(routing.resolved, "fake/b");
  CHECK_EQ(routing.fallback_reason, "rate limit: mock failure");
  CHECK_EQ(model_attempts_json(attempts),
           R"([{"model":"fake/a","success":false,"exitCode":1,"error":"rate limit: mock failure"},)"
           R"({"model":"fake/b","success":true,"exitCode":0}])");
  CHECK_EQ(model_routing_json(routing),
           R"({"requested":"fake/a","resolved":"fake/b","fallbackChain":["fake/a","fake/b","fake/c"],)"
           R"("reason":"configured Pi fallback chain","fallbackReason":"rate limit: mock failure","usedAttempt":1})");

  SUBCASE("all attempts failed: the last one is used") {
    attempts[1] = {"fake/b", false, 1, "Overloaded"};
    attempts.push_back({"fake/c", false, 1, "mock failure: \"quoted\""});
    routing = route_result(plan, attempts);
    CHECK_EQ(routing.used_attempt, 2);
    CHECK_EQ(routing.resolved, "fake/c");
    CHECK_EQ(routing.fallback_reason, "Overloaded");
    CHECK_NE(model_attempts_json(attempts).find(R"("error":"mock failure: \"quoted\"")"),
             std::string::npos);
  }
  SUBCASE("no model: pi's default") {
    routing = route_result(model_candidates({}), {{"", true, 0, ""}});
    CHECK_EQ(routing.resolved, "default");
    CHECK_EQ(routing.used_attempt, 0);
    CHECK(routing.fallback_reason.empty());
    CHECK_EQ(model_attempts_json({{"", true, 0, ""}}),
             R"([{"model":"default","success":true,"exitCode":0}])");
    CHECK_EQ(model_routing_json(routing),
             R"({"resolved":"default","fallbackChain":[],)"
             R"("reason":"no model configured; pi uses its default model","usedAttempt":0})");
  }
  SUBCASE("no attempts yet") {
    routing = route_result(plan, {});
    CHECK_EQ(routing.used_attempt, -1);
    CHECK(routing.resolved.empty());
    CHECK_EQ(model_routing_json(routing),
             R"({"requested":"fake/a","fallbackChain":["fake/a","fake/b","fake/c"],)"
             R"("reason":"configured Pi fallback chain"})");
  }
}
