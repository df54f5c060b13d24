#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace crew {

/// Correlation ids of a run (W3C/OTLP sizes: 16-byte trace id, 8-byte span
/// ids), derived deterministically from the run id so that every process
/// that touches a run (the runner, `crew cancel`, a resume) agrees on them
/// without storing them: run -> task -> attempt.
struct correlation {
  uint64_t trace_hi = 0;
  uint64_t trace_lo = 0;
  uint64_t run_span = 0;

  /// The ids of run `run_id`.
  static correlation for_run(std::string_view run_id) noexcept;

  /// Span of task `index` of the plan (parent: the run span).
  uint64_t task_span(uint32_t index) const noexcept;

  /// Span of attempt `attempt` of task `index` (parent: the task span).
  uint64_t attempt_span(uint32_t index, uint32_t attempt) const noexcept;

  /// The trace id as 32 lowercase hex digits.
  std::string trace_hex() const;
};

/// Appends `x` as 16 lowercase hex digits.
void append_hex16(std::string& out, uint64_t x);

} // namespace crew
