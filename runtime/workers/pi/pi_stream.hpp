#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace crew {

/// Token usage of a pi worker, summed over its assistant `message_end` events
/// (each one reports a single LLM call).
struct pi_usage {
  uint64_t input = 0;
  uint64_t output = 0;
  uint64_t cache_read = 0;
  uint64_t cache_write = 0;
  uint64_t total_tokens = 0;
  double cost = 0.0; ///< USD: `cost.total`, or `cost` when it is a number
  /// LLM calls: one per assistant `message_end`, or the `turns` it reports.
  uint64_t turns = 0;
};

/// One non-blank stdout line, compacted for the transcript (inventory §5.5).
struct pi_line {
  bool json = false; ///< the line was a JSON object (a pi event)
  std::string type;  ///< the event's `type`; empty for plain text
  /// The line to append to the transcript: the compact event as one line of
  /// JSON, or the raw text of a plain line. Empty when the event is dropped.
  std::string compact;
  /// Text for a human log (`output.log`): the assistant's text, `tool: <name>`
  /// or the raw plain line; empty when there is nothing to show.
  std::string display;
};

/// How a pi worker ended: its answer or the reason it failed.
struct pi_outcome {
  bool success = false;
  std::string result; ///< the final answer (trimmed), or the plain output
  std::string error;  ///< empty on success
  int exit_code = 0;
  std::string stop_reason; ///< `stop`, `length`, `toolUse`, `error`, `aborted`
  std::string model;
  std::string provider;
  pi_usage usage;
  uint64_t json_events = 0;
};

/// Observes the stdout of `pi --mode json` (or `--mode rpc`, which streams the
/// same events): splits it into lines, compacts each event for the transcript
/// and tracks the answer, stop reason, error, model and usage of the run.
class pi_stream {
public:
  // -- feeding ---------------------------------------------------------------

  /// Appends a raw stdout chunk, which may end inside a line. Returns the
  /// lines it completed (`\n` or `\r\n`), without blank lines and dropped
  /// events.
  std::vector<pi_line> feed(std::string_view chunk);

  /// Processes a last line that has no terminating newline (call at EOF).
  std::vector<pi_line> finish();

  /// Forgets the per-prompt state (answer, usage, stop reason, counters,
  /// `agent_ended`) but keeps a partial line. In rpc mode, call it before
  /// sending the next prompt to the same process.
  void begin_prompt();

  // -- properties ------------------------------------------------------------

  /// JSON objects seen, including dropped ones such as `message_update`.
  uint64_t json_events() const noexcept { return json_events_; }

  /// Grows with every non-empty chunk fed; a change means the worker is alive.
  uint64_t activity() const noexcept { return activity_; }

  /// Whether an `agent_end` arrived, i.e. pi finished the prompt (rpc mode).
  bool agent_ended() const noexcept { return agent_ended_; }

  /// Whether a final assistant `message_end` arrived (role assistant or
  /// absent, stopReason absent or `stop`, no tool call), after which pi only
  /// has to exit: the signal to start a final-drain timer.
  bool final_answer_seen() const noexcept { return final_answer_seen_; }

  /// Whether any assistant message was seen.
  bool has_answer() const noexcept;

  /// The final assistant text: the last assistant `message_end`, else the
  /// last assistant in the last `agent_end.messages`, else the last assistant
  /// `message` event; its text parts joined by newlines.
  const std::string& final_text() const noexcept;

  /// `stopReason` of the final assistant message; empty if none.
  const std::string& stop_reason() const noexcept;

  /// `errorMessage` of the final assistant message, or the error of a failed
  /// rpc `response`; empty if none.
  const std::string& error_message() const noexcept;

  const std::string& model() const noexcept { return model_; }
  const std::string& provider() const noexcept { return provider_; }
  const pi_usage& usage() const noexcept { return usage_; }

  /// The tool running now (between `tool_execution_start` and `_end`).
  const std::string& current_tool() const noexcept { return current_tool_; }

  /// Number of `tool_execution_start` events.
  uint64_t tool_calls() const noexcept { return tool_calls_; }

  /// Non-JSON lines, newline-terminated (the last 256 KiB).
  const std::string& plain_text() const noexcept { return plain_text_; }

  // -- outcome ---------------------------------------------------------------

  /// Decides success. JSON mode exits 0 even when the model call failed, so a
  /// run fails if the final stopReason is `error` or `aborted`, an
  /// errorMessage is set, the exit code is not 0, or no answer arrived. The
  /// error is the errorMessage, else the tail of `stderr_text`, else a
  /// description. Plain (non-JSON) output with exit 0 succeeds with that
  /// text as the result.
  pi_outcome outcome(int exit_code, std::string_view stderr_text) const;

private:
  /// The last assistant message of one kind of event.
  struct answer {
    bool seen = false;
    std::string text;
    std::string stop_reason;
    std::string error_message;
  };

  void process_line(std::string_view line, std::vector<pi_line>& out);
  const answer& final_answer() const noexcept;

  std::string buffer_;
  size_t scanned_ = 0; ///< bytes of `buffer_` known to hold no newline
  uint64_t activity_ = 0;
  uint64_t json_events_ = 0;
  bool agent_ended_ = false;
  bool final_answer_seen_ = false;
  answer from_message_end_;
  answer from_agent_end_;
  answer from_message_;
  std::string rpc_error_;
  std::string model_;
  std::string provider_;
  pi_usage usage_;
  std::string current_tool_;
  uint64_t tool_calls_ = 0;
  std::string plain_text_;
};

} // namespace crew
