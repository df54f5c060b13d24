#include "runtime/supervision/retry_policy.hpp"

#include <doctest/doctest.h>

using namespace crew;

TEST_CASE("retry_policy: delays grow exponentially and are capped") {
  retry_policy p;
  p.backoff_ms = 100;
  p.factor = 2;
  p.jitter_ratio = 0;
  p.max_backoff_ms = 1000;
  CHECK(retry_delay_ms(p, "r", "t", 1) == 100);
  CHECK(retry_delay_ms(p, "r", "t", 2) == 200);
  CHECK(retry_delay_ms(p, "r", "t", 3) == 400); // pi-crew: delay(3, 100, x2) = 400
  CHECK(retry_delay_ms(p, "r", "t", 5) == 1000); // capped by maxBackoffMs
}

TEST_CASE("retry_policy: jitter is reproducible per (run, task, attempt) and bounded") {
  retry_policy p;
  p.backoff_ms = 1000;
  p.jitter_ratio = 0.5;
  auto a = retry_delay_ms(p, "run1", "t1", 1);
  CHECK(a == retry_delay_ms(p, "run1", "t1", 1));
  bool differs = false;
  for (int i = 0; i < 50; ++i) {
    auto d = retry_delay_ms(p, "run1", "t" + std::to_string(i), 1);
    CHECK(d >= 500);
    CHECK(d <= 1500);
    differs = differs || d != a;
  }
  CHECK(differs);
}

TEST_CASE("retry_policy: retryable errors are case-insensitive whole-message globs") {
  retry_policy p;
  CHECK(is_retryable(p, "anything")); // no patterns: everything
  p.retryable_errors = {"*rate limit*", "exit code 7"};
  CHECK(is_retryable(p, "provider said: Rate Limit exceeded"));
  CHECK(is_retryable(p, "EXIT CODE 7"));
  CHECK_FALSE(is_retryable(p, "exit code 70"));
  CHECK_FALSE(is_retryable(p, "permission denied"));
  CHECK(glob_match_icase("a*b*c", "aXXbYYc"));
  CHECK_FALSE(glob_match_icase("a*b*c", "aXXbYY"));
}
