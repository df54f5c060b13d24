#include "observability/redact.hpp"

#include <doctest/doctest.h>

using namespace crew;
using json = nlohmann::json;

TEST_CASE("redact: secret names split into words") {
  for (auto name :
       {"token",       "API_TOKEN",     "accessToken",   "github-token",
        "secret",      "client_secret", "password",      "DB_PASSWORD",
        "passwd",      "credential",    "credentials",   "awsCredentials",
        "auth",        "authToken",     "Authorization", "apikey",
        "APIKEY",      "api_key",       "apiKey",        "x-api-key",
        "APIKey",      "access_key",    "privateKey",    "secretKey",
        "session.key", "cookie",        "Set-Cookie"})
    CHECK_MESSAGE(is_secret_name(name), name);
}

TEST_CASE("redact: harmless names stay readable") {
  for (auto name : {"tokens", "input_tokens", "output_tokens", "total_tokens",
                    "maxTokens", "monkey", "keyboard", "author", "key", "keys",
                    "primary_key", "sortKey", "status", "runId", "authority"})
    CHECK_MESSAGE(!is_secret_name(name), name);
}

TEST_CASE("redact: replaces secret values whatever their type") {
  auto in = json::parse(R"({
    "token": "abc", "password": 12345, "auth": {"user": "x"},
    "credentials": ["a", "b"], "apiKey": null,
    "tokens": 42, "input_tokens": 1, "output_tokens": 2, "total_tokens": 3,
    "maxTokens": 4096, "monkey": "banana", "keyboard": "qwerty",
    "author": "ann"})");
  auto out = redact(in);
  for (auto key : {"token", "password", "auth", "credentials", "apiKey"})
    CHECK_MESSAGE(out[key] == "***", key);
  CHECK(out["tokens"] == 42);
  CHECK(out["input_tokens"] == 1);
  CHECK(out["output_tokens"] == 2);
  CHECK(out["total_tokens"] == 3);
  CHECK(out["maxTokens"] == 4096);
  CHECK(out["monkey"] == "banana");
  CHECK(out["keyboard"] == "qwerty");
  CHECK(out["author"] == "ann");
}

TEST_CASE("redact: recurses into arrays and objects") {
  auto in = json::parse(R"({
    "env": {"HOME": "/root", "GITHUB_TOKEN": "ghp_x"},
    "list": [{"secret": 1, "ok": 2}, "API_TOKEN=abc", 3],
    "usage": {"tokens": {"input": 10}}})");
  auto out = redact(in);
  CHECK(out["env"]["HOME"] == "/root");
  CHECK(out["env"]["GITHUB_TOKEN"] == "***");
  CHECK(out["list"][0]["secret"] == "***");
  CHECK(out["list"][0]["ok"] == 2);
  CHECK(out["list"][1] == "API_TOKEN=***");
  CHECK(out["list"][2] == 3);
  CHECK(out["usage"]["tokens"]["input"] == 10);
}

TEST_CASE("redact: rewrites NAME=value and NAME: value in text") {
  CHECK(redact_text("API_TOKEN=abc") == "API_TOKEN=***");
  CHECK(redact_text("password: hunter2") == "password: ***");
  CHECK(redact_text("tokens: 42") == "tokens: 42");
  CHECK(redact_text("run with API_TOKEN=abc, DEBUG=1; secret = s3 done")
        == "run with API_TOKEN=***, DEBUG=1; secret = *** done");
  CHECK(redact_text("input_tokens=10 output_tokens=20")
        == "input_tokens=10 output_tokens=20");
  CHECK(redact_text("monkey=banana author: ann")
        == "monkey=banana author: ann");
  CHECK(redact_text("https://x.test/?access_token=abc&page=2")
        == "https://x.test/?access_token=***&page=2");
}

TEST_CASE("redact: handles quoted values and bearer credentials") {
  CHECK(redact_text(R"({"password": "hunter 2", "user": "bob"})")
        == R"({"password": "***", "user": "bob"})");
  CHECK(redact_text("Authorization: Bearer abc.def")
        == "Authorization: Bearer ***");
  CHECK(redact_text("token='x y'") == "token='***'");
}

TEST_CASE("redact: leaves text without assignments alone") {
  CHECK(redact_text("") == "");
  CHECK(redact_text("the token expired") == "the token expired");
  CHECK(redact_text("token:") == "token:");
  CHECK(redact_text("key=value") == "key=value");
}
