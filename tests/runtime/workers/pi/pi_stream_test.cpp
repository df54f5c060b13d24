#include "runtime/workers/pi/pi_stream.hpp"

#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using namespace crew;

namespace {

// A real `pi --mode json` run with one bash tool call (pi-cli-offline.md §5),
// with the `…` of the note filled in and costs made non-zero.
const std::vector<std::string> tool_run = {
  R"({"type":"session","version":3,"id":"01a21547-2002-4c1e","timestamp":"2026-11-26T00:35:12.516Z","cwd":"/work"})",
  R"({"type":"agent_start"})",
  R"({"type":"turn_start"})",
  R"({"type":"message_start","message":{"role":"user","content":[{"type":"text","text":"Please USE_TOOL now"}],"timestamp":1}})",
  R"({"type":"message_end","message":{"role":"user","content":[{"type":"text","text":"Please USE_TOOL now"}],"timestamp":1}})",
  R"({"type":"message_start","message":{"role":"assistant","content":[],"api":"openai-completions","provider":"fake","model":"fake-model","usage":{"input":0,"output":0,"cacheRead":0,"cacheWrite":0,"totalTokens":0,"cost":{"input":0,"output":0,"cacheRead":0,"cacheWrite":0,"total":0}},"stopReason":"stop","timestamp":2}})",
  R"({"type":"message_update","assistantMessageEvent":{"type":"text_start","contentIndex":0,"partial":{"role":"assistant","content":[{"type":"text","text":"Running a command."}]}},"message":{"role":"assistant","content":[{"type":"text","text":"Running a command."}]}})",
  R"({"type":"message_update","assistantMessageEvent":{"type":"text_delta","contentIndex":0,"delta":"Running a command.","partial":{"role":"assistant","content":[]}},"message":{"role":"assistant","content":[]}})",
  R"({"type":"message_update","assistantMessageEvent":{"type":"toolcall_delta","contentIndex":1,"delta":"{\"command\": "}})",
  R"({"type":"message_update","assistantMessageEvent":{"type":"toolcall_end","contentIndex":1,"toolCall":{"type":"toolCall","id":"call_1","name":"bash","arguments":{"command":"echo hello-from-tool"}}}})",
  R"({"type":"message_end","message":{"role":"assistant","content":[{"type":"text","text":"Running a command."},{"type":"toolCall","id":"call_1","name":"bash","arguments":{"command":"echo hello-from-tool"}}],"api":"openai-completions","provider":"fake","model":"fake-model","usage":{"input":1234,"output":7,"cacheRead":0,"cacheWrite":0,"totalTokens":1241,"cost":{"input":0.002,"output":0.0005,"cacheRead":0,"cacheWrite":0,"total":0.0025}},"stopReason":"toolUse","timestamp":3,"responseId":"chatcmpl-fake"}})",
  R"({"type":"tool_execution_start","toolCallId":"call_1","toolName":"bash","args":{"command":"echo hello-from-tool"}})",
  R"({"type":"tool_execution_update","toolCallId":"call_1","toolName":"bash","args":{"command":"echo hello-from-tool"},"partialResult":{"content":[{"type":"text","text":"hello-from-tool\n"}],"details":{}}})",
  R"({"type":"tool_execution_end","toolCallId":"call_1","toolName":"bash","result":{"content":[{"type":"text","text":"hello-from-tool\n"}]},"isError":false})",
  R"({"type":"message_start","message":{"role":"toolResult","toolCallId":"call_1","toolName":"bash","content":[{"type":"text","text":"hello-from-tool\n"}],"isError":false,"timestamp":4}})",
  R"({"type":"message_end","message":{"role":"toolResult","toolCallId":"call_1","toolName":"bash","content":[{"type":"text","text":"hello-from-tool\n"}],"isError":false,"timestamp":4}})",
  R"({"type":"turn_end","message":{"role":"assistant","content":[]},"toolResults":[{"role":"toolResult"}]})",
  R"({"type":"turn_start"})",
  R"({"type":"message_start","message":{"role":"assistant","content":[],"provider":"fake","model":"fake-model","stopReason":"stop"}})",
  R"({"type":"message_update","assistantMessageEvent":{"type":"text_delta","contentIndex":0,"delta":"Tool said: hello-from-tool"}})",
  R"({"type":"message_end","message":{"role":"assistant","content":[{"type":"thinking","thinking":"the tool printed it"},{"type":"text","text":"Tool said: hello-from-tool"}],"api":"openai-completions","provider":"fake","model":"fake-model","usage":{"input":1250,"output":9,"cacheRead":100,"cacheWrite":3,"totalTokens":1362,"cost":{"input":0.001,"output":0.0005,"cacheRead":0,"cacheWrite":0,"total":0.0015}},"stopReason":"stop","timestamp":5}})",
  R"({"type":"turn_end","message":{"role":"assistant","content":[]},"toolResults":[]})",
  R"({"type":"agent_end","messages":[{"role":"user","content":[{"type":"text","text":"Please USE_TOOL now"}]},{"role":"assistant","content":[{"type":"text","text":"Tool said: hello-from-tool"}],"stopReason":"stop"}]})",
};

// The run of pi-cli-offline.md §6: HTTP 500 from the provider, exit code 0.
const std::vector<std::string> error_run = {
  R"({"type":"session","version":3,"id":"s2","cwd":"/work"})",
  R"({"type":"agent_start"})",
  R"({"type":"turn_start"})",
  R"({"type":"message_start","message":{"role":"user","content":[{"type":"text","text":"FAIL_500"}]}})",
  R"({"type":"message_end","message":{"role":"user","content":[{"type":"text","text":"FAIL_500"}]}})",
  R"({"type":"message_start","message":{"role":"assistant","content":[],"provider":"fake","model":"fake-model"}})",
  R"({"type":"message_end","message":{"role":"assistant","content":[],"api":"openai-completions","provider":"fake","model":"fake-model","usage":{"input":0,"output":0,"cacheRead":0,"cacheWrite":0,"totalTokens":0,"cost":{"input":0,"output":0,"cacheRead":0,"cacheWrite":0,"total":0}},"stopReason":"error","errorMessage":"500 fake upstream failure","timestamp":9}})",
  R"({"type":"turn_end","message":{"role":"assistant","content":[]},"toolResults":[]})",
  R"({"type":"agent_end","messages":[{"role":"user","content":[]},{"role":"assistant","content":[],"stopReason":"error","errorMessage":"500 fake upstream failure"}]})",
};

std::string join(const std::vector<std::string>& lines, const char* eol) {
  std::string out;
  for (const auto& line : lines)
    out += line + eol;
  return out;
}

std::vector<pi_line> feed_all(pi_stream& stream, std::string_view text,
                              size_t chunk_size) {
  std::vector<pi_line> lines;
  for (size_t pos = 0; pos < text.size(); pos += chunk_size) {
    auto part = stream.feed(text.substr(pos, chunk_size));
    lines.insert(lines.end(), part.begin(), part.end());
  }
  auto rest = stream.finish();
  lines.insert(lines.end(), rest.begin(), rest.end());
  return lines;
}

std::vector<std::string> types_of(const std::vector<pi_line>& lines) {
  std::vector<std::string> types;
  for (const auto& line : lines)
    types.push_back(line.type);
  return types;
}

const pi_line& line_of(const std::vector<pi_line>& lines, std::string_view type,
                       size_t nth = 0) {
  for (const auto& line : lines)
    if (line.type == type && nth-- == 0)
      return line;
  FAIL("no line of type ", type);
  return lines.front();
}

} // namespace

TEST_CASE("pi_stream: compacts a tool-call run and tracks its answer") {
  pi_stream stream;
  auto lines = feed_all(stream, join(tool_run, "\n"), 1 << 20);
  // message_update and the user's message_end are dropped; the rest is kept.
  CHECK_EQ(types_of(lines),
           std::vector<std::string>{
             "session", "agent_start", "turn_start", "message_start",
             "message_start", "message_end", "tool_execution_start",
             "tool_execution_update", "tool_execution_end", "message_start",
             "message_end", "turn_end", "turn_start", "message_start",
             "message_end", "turn_end", "agent_end"});
  for (const auto& line : lines) {
    CHECK(line.json);
    CHECK(nlohmann::json::parse(line.compact).is_object());
    CHECK_EQ(line.compact.find("USE_TOOL"), std::string::npos);
    CHECK_EQ(line.compact.find("partial"), std::string::npos);
  }
  CHECK_EQ(line_of(lines, "session").compact, R"({"type":"session"})");
  CHECK_EQ(line_of(lines, "message_start").compact,
           R"({"type":"message_start"})");
  CHECK_EQ(
    line_of(lines, "message_end").compact,
    R"({"type":"message_end","message":{"role":"assistant","content":[)"
    R"({"type":"text","text":"Running a command."},)"
    R"({"type":"toolCall","name":"bash","arguments":{"command":"echo hello-from-tool"}}],)"
    R"("usage":{"input":1234,"output":7,"cacheRead":0,"cacheWrite":0,"totalTokens":1241,)"
    R"("cost":{"input":0.002,"output":0.0005,"cacheRead":0,"cacheWrite":0,"total":0.0025}},)"
    R"("model":"fake-model","provider":"fake","stopReason":"toolUse"}})");
  CHECK_EQ(line_of(lines, "message_end").display, "Running a command.");
  CHECK_EQ(line_of(lines, "tool_execution_start").compact,
           R"({"type":"tool_execution_start","toolName":"bash","args":{"command":"echo hello-from-tool"}})");
  CHECK_EQ(line_of(lines, "tool_execution_start").display, "tool: bash");
  CHECK_EQ(line_of(lines, "tool_execution_update").compact,
           R"({"type":"tool_execution_update"})");
  CHECK_EQ(line_of(lines, "tool_execution_end").compact,
           R"({"type":"tool_execution_end","toolName":"bash","isError":false})");
  // The tool result message is kept (only user/system are dropped), but it is
  // not the assistant speaking, so nothing is displayed.
  const auto& tool_result = line_of(lines, "message_end", 1);
  CHECK_NE(tool_result.compact.find(R"("role":"toolResult")"), std::string::npos);
  CHECK(tool_result.display.empty());
  // The thinking part of the final message is dropped.
  const auto& final_end = line_of(lines, "message_end", 2);
  CHECK_EQ(final_end.compact.find("thinking"), std::string::npos);
  CHECK_EQ(final_end.display, "Tool said: hello-from-tool");
  CHECK_EQ(line_of(lines, "agent_end").compact, R"({"type":"agent_end"})");

  CHECK_EQ(stream.json_events(), tool_run.size());
  CHECK_EQ(stream.final_text(), "Tool said: hello-from-tool");
  CHECK_EQ(stream.stop_reason(), "stop");
  CHECK(stream.error_message().empty());
  CHECK_EQ(stream.model(), "fake-model");
  CHECK_EQ(stream.provider(), "fake");
  CHECK_EQ(stream.tool_calls(), 1);
  CHECK(stream.current_tool().empty());
  CHECK(stream.agent_ended());
  CHECK(stream.final_answer_seen());
  CHECK(stream.plain_text().empty());
  const auto& usage = stream.usage();
  CHECK_EQ(usage.input, 2484);
  CHECK_EQ(usage.output, 16);
  CHECK_EQ(usage.cache_read, 100);
  CHECK_EQ(usage.cache_write, 3);
  CHECK_EQ(usage.total_tokens, 2603);
  CHECK_EQ(usage.cost, doctest::Approx(0.004));
  CHECK_EQ(usage.turns, 2);

  auto outcome = stream.outcome(0, "");
  CHECK(outcome.success);
  CHECK(outcome.error.empty());
  CHECK_EQ(outcome.result, "Tool said: hello-from-tool");
  CHECK_EQ(outcome.stop_reason, "stop");
  CHECK_EQ(outcome.model, "fake-model");
  CHECK_EQ(outcome.usage.input, 2484);
  CHECK_EQ(outcome.json_events, tool_run.size());
}

TEST_CASE("pi_stream: lines split across chunks and CRLF give the same result") {
  pi_stream whole;
  auto expected = feed_all(whole, join(tool_run, "\n"), 1 << 20);
  for (size_t chunk : {1, 7, 64, 333}) {
    CAPTURE(chunk);
    pi_stream split;
    auto text = join(tool_run, "\r\n");
    auto lines = feed_all(split, text, chunk);
    REQUIRE_EQ(lines.size(), expected.size());
    for (size_t i = 0; i < lines.size(); ++i) {
      CHECK_EQ(lines[i].compact, expected[i].compact);
      CHECK_EQ(lines[i].display, expected[i].display);
    }
    CHECK_EQ(split.final_text(), whole.final_text());
    CHECK_EQ(split.usage().total_tokens, whole.usage().total_tokens);
    CHECK_EQ(split.json_events(), whole.json_events());
    CHECK_EQ(split.activity(), (text.size() + chunk - 1) / chunk);
  }
}

TEST_CASE("pi_stream: a partial line is only processed once complete") {
  pi_stream stream;
  auto line = std::string{R"({"type":"tool_execution_start","toolName":"read","args":{"path":"a.txt"}})"};
  CHECK(stream.feed(line.substr(0, 20)).empty());
  CHECK(stream.feed(line.substr(20)).empty());
  CHECK_EQ(stream.current_tool(), "");
  auto lines = stream.feed("\n\n   \n");
  REQUIRE_EQ(lines.size(), 1); // blank lines are ignored
  CHECK_EQ(lines[0].display, "tool: read");
  CHECK_EQ(stream.current_tool(), "read");
  CHECK_EQ(stream.activity(), 3);

  // finish() handles a last line without a newline.
  CHECK(stream.feed(R"({"type":"agent_end","messages":[{"role":"assistant","content":[{"type":"text","text":"done"},{"type":"text","text":"twice"}],"stopReason":"stop"}]})").empty());
  CHECK_FALSE(stream.agent_ended());
  auto rest = stream.finish();
  REQUIRE_EQ(rest.size(), 1);
  CHECK_EQ(rest[0].type, "agent_end");
  CHECK(stream.agent_ended());
  CHECK(stream.finish().empty());
  // Without a message_end, the answer comes from agent_end.messages.
  CHECK_EQ(stream.final_text(), "done\ntwice");
  CHECK(stream.outcome(0, "").success);
}

TEST_CASE("pi_stream: a model error with exit code 0 is a failure") {
  pi_stream stream;
  feed_all(stream, join(error_run, "\n"), 50);
  CHECK_EQ(stream.stop_reason(), "error");
  CHECK_EQ(stream.error_message(), "500 fake upstream failure");
  CHECK(stream.has_answer());
  CHECK_FALSE(stream.final_answer_seen());
  auto outcome = stream.outcome(0, "");
  CHECK_FALSE(outcome.success);
  CHECK_EQ(outcome.error, "500 fake upstream failure");
  CHECK_EQ(outcome.stop_reason, "error");
  CHECK_EQ(outcome.exit_code, 0);
  // errorMessage wins over stderr and over the exit code.
  CHECK_EQ(stream.outcome(1, "warning: something\n").error,
           "500 fake upstream failure");
}

TEST_CASE("pi_stream: an auto-retried error followed by an answer succeeds") {
  pi_stream stream;
  auto lines = error_run;
  lines.pop_back(); // the first agent_end
  lines.push_back(R"({"type":"auto_retry_start","attempt":1,"delayMs":2000,"errorMessage":"500 fake upstream failure"})");
  lines.push_back(R"({"type":"message_end","message":{"role":"assistant","content":[{"type":"text","text":"Recovered."}],"usage":{"input":40,"output":2,"totalTokens":42,"cost":{"total":0.01}},"stopReason":"stop"}})");
  lines.push_back(R"({"type":"agent_end","messages":[]})");
  auto out = feed_all(stream, join(lines, "\n"), 1 << 20);
  CHECK_EQ(line_of(out, "auto_retry_start").compact,
           R"({"type":"auto_retry_start"})");
  auto outcome = stream.outcome(0, "");
  CHECK(outcome.success);
  CHECK_EQ(outcome.result, "Recovered.");
  CHECK_EQ(outcome.usage.input, 40);
  CHECK_EQ(outcome.usage.turns, 2); // the failed call counts as a turn too
  CHECK_EQ(outcome.usage.cost, doctest::Approx(0.01));
}

TEST_CASE("pi_stream: failures without an errorMessage are explained") {
  SUBCASE("aborted: stderr tail, else the stop reason") {
    pi_stream stream;
    stream.feed(R"({"type":"message_end","message":{"role":"assistant","content":[{"type":"text","text":"half"}],"stopReason":"aborted"}})"
                "\n");
    CHECK_EQ(stream.outcome(0, "").error, "pi stopped with stopReason aborted");
    CHECK_EQ(stream.outcome(0, "noise\nfatal: gave up\n\n").error,
             "noise\nfatal: gave up");
    CHECK_EQ(stream.outcome(0, "").result, "half");
  }
  SUBCASE("non-zero exit after the session header (no API key)") {
    pi_stream stream;
    stream.feed(R"({"type":"session","version":3,"id":"x","cwd":"/w"})" "\n");
    auto outcome = stream.outcome(1, "No API key found for the selected model.\n");
    CHECK_FALSE(outcome.success);
    CHECK_EQ(outcome.error, "No API key found for the selected model.");
    CHECK_EQ(stream.outcome(143, "").error, "pi exited with code 143");
  }
  SUBCASE("exit 0 without any assistant message") {
    pi_stream stream;
    stream.feed(R"({"type":"session"})" "\n" R"({"type":"agent_start"})" "\n");
    auto outcome = stream.outcome(0, "");
    CHECK_FALSE(outcome.success);
    CHECK_EQ(outcome.error, "pi produced no assistant answer (2 JSON events)");
  }
  SUBCASE("exit 0 right after a tool call") {
    pi_stream stream;
    stream.feed(join(std::vector<std::string>(tool_run.begin(), tool_run.begin() + 11), "\n"));
    CHECK_EQ(stream.stop_reason(), "toolUse");
    CHECK_FALSE(stream.final_answer_seen());
    CHECK_EQ(stream.outcome(0, "").error,
             "pi stopped after a tool call without a final answer");
  }
  SUBCASE("the stderr tail is bounded") {
    pi_stream stream;
    auto outcome = stream.outcome(2, std::string(5000, 'x') + "END");
    CHECK_EQ(outcome.error.size(), 2048);
    CHECK(outcome.error.ends_with("END"));
  }
}

TEST_CASE("pi_stream: plain text output is kept verbatim") {
  pi_stream stream;
  auto lines = stream.feed("Mock child Pi success for executor\r\n  indented line\n");
  REQUIRE_EQ(lines.size(), 2);
  CHECK_FALSE(lines[0].json);
  CHECK(lines[0].type.empty());
  CHECK_EQ(lines[0].compact, "Mock child Pi success for executor");
  CHECK_EQ(lines[0].display, "Mock child Pi success for executor");
  CHECK_EQ(lines[1].compact, "  indented line");
  CHECK_EQ(stream.json_events(), 0);
  CHECK_EQ(stream.plain_text(),
           "Mock child Pi success for executor\n  indented line\n");
  auto outcome = stream.outcome(0, "");
  CHECK(outcome.success);
  CHECK_EQ(outcome.result, "Mock child Pi success for executor\n  indented line");
  auto failed = stream.outcome(1, "mock failure: boom");
  CHECK_FALSE(failed.success);
  CHECK_EQ(failed.error, "mock failure: boom");

  pi_stream empty;
  CHECK_EQ(empty.outcome(0, "").error, "pi produced no output");
}

TEST_CASE("pi_stream: non-objects and broken JSON are plain text, untyped objects are dropped") {
  pi_stream stream;
  auto lines = stream.feed("42\n{\"type\":\n[1,2]\n{\"no_type\":true}\n");
  REQUIRE_EQ(lines.size(), 3);
  CHECK_EQ(lines[0].compact, "42");
  CHECK_EQ(lines[1].compact, "{\"type\":");
  CHECK_EQ(lines[2].compact, "[1,2]");
  for (const auto& line : lines)
    CHECK_FALSE(line.json);
  CHECK_EQ(stream.json_events(), 1); // the untyped object
}

TEST_CASE("pi_stream: compaction bounds text, tool input and generic values") {
  nlohmann::ordered_json args = nlohmann::ordered_json::object();
  for (int i = 0; i < 25; ++i) {
    std::string key = "k";
    key += std::to_string(100 + i);
    args[key] = i;
  }
  args["k100"] = std::string(5000, 'a');
  nlohmann::ordered_json start{{"type", "tool_execution_start"},
                               {"toolName", "write"},
                               {"args", args}};
  nlohmann::ordered_json end{
    {"type", "message_end"},
    {"text", std::string(9000, 't')},
    {"message",
     {{"role", "assistant"},
      {"content",
       {{{"type", "text"}, {"text", std::string(10000, 'x')}},
        {{"type", "toolCall"}, {"name", "edit"}, {"input", std::string(3000, 'i')}},
        {{"type", "toolResult"}, {"name", "edit"}, {"content", std::string(1500, 'r')}},
        {{"type", "image"}, {"data", "AAAA"}},
        {{"type", "thinking"}, {"thinking", "hmm"}}}},
      {"stopReason", "stop"}}}};
  pi_stream stream;
  auto lines = stream.feed(start.dump() + "\n" + end.dump() + "\n");
  REQUIRE_EQ(lines.size(), 2);

  auto tool = nlohmann::json::parse(lines[0].compact);
  CHECK_EQ(tool["args"].size(), 20);
  CHECK_EQ(tool["args"]["k100"],
           std::string(4096, 'a') + "\n[pi-crew compacted 904 chars]");

  auto message = nlohmann::json::parse(lines[1].compact);
  CHECK_EQ(message["text"], std::string(8192, 't') + "\n[pi-crew compacted 808 chars]");
  auto content = message["message"]["content"];
  REQUIRE_EQ(content.size(), 3); // image and thinking parts are dropped
  CHECK_EQ(content[0]["text"],
           std::string(8192, 'x') + "\n[pi-crew compacted 1808 chars]");
  CHECK_EQ(content[1]["input"],
           std::string(2048, 'i') + "\n[pi-crew compacted 952 chars]");
  CHECK_EQ(content[2]["content"],
           std::string(1024, 'r') + "\n[pi-crew compacted 476 chars]");
  // The tracked answer is not truncated.
  CHECK_EQ(stream.final_text().size(), 10000);
}

// Review F6: compact_value recursed once per level of a worker's `args`, so
// deeply nested JSON from the worker overflowed crew's stack.
TEST_CASE("pi_stream: deeply nested values are cut at a fixed depth") {
  constexpr size_t depth = 1'000'000;
  auto deep = std::string(depth, '[') + std::string(depth, ']');
  pi_stream stream;
  auto lines = stream.feed(
    R"({"type":"tool_execution_start","toolName":"x","args":)" + deep + "}\n"
    + R"({"type":"message_end","message":{"role":"assistant","content":[)"
      R"({"type":"toolCall","name":"t","arguments":)" + deep + "}]}}\n");
  REQUIRE_EQ(lines.size(), 2);
  auto depth_of = [](const nlohmann::json* v) {
    size_t n = 0;
    for (; v->is_array() && !v->empty(); v = &v->front())
      ++n;
    CHECK_EQ(*v, "[pi-crew compacted: nested too deep]");
    return n;
  };
  auto tool = nlohmann::json::parse(lines[0].compact);
  CHECK_EQ(depth_of(&tool["args"]), 32);
  auto message = nlohmann::json::parse(lines[1].compact);
  CHECK_EQ(depth_of(&message["message"]["content"][0]["arguments"]), 32);
}

// Review F5: a usage count of 2^64 or more was cast from double to uint64_t
// (undefined); it saturates now.
TEST_CASE("pi_stream: usage counts beyond uint64 saturate") {
  pi_stream stream;
  stream.feed(
    R"({"type":"message_end","message":{"role":"assistant","content":[)"
    R"({"type":"text","text":"hi"}],"usage":{"input":1e300,"output":-1e300,)"
    R"("cacheRead":1.8446744073709552e19,"cacheWrite":2.5,"turns":1e30}}})"
    "\n");
  const auto& usage = stream.usage();
  CHECK_EQ(usage.input, UINT64_MAX);
  CHECK_EQ(usage.output, 0u);
  CHECK_EQ(usage.cache_read, UINT64_MAX);
  CHECK_EQ(usage.cache_write, 2u);
  CHECK_EQ(usage.turns, UINT64_MAX);
}

TEST_CASE("pi_stream: truncation never splits a UTF-8 character") {
  // 4095 ASCII bytes, then a 2-byte character straddling the 4096 limit.
  auto value = std::string(4095, 'a') + "\xc3\xa9" + std::string(10, 'b');
  nlohmann::json event{{"type", "tool_execution_start"},
                       {"toolName", "bash"},
                       {"args", {{"command", value}}}};
  pi_stream stream;
  auto lines = stream.feed(event.dump() + "\n");
  REQUIRE_EQ(lines.size(), 1);
  auto command = nlohmann::json::parse(lines[0].compact)["args"]["command"]
                   .get<std::string>();
  CHECK_EQ(command, std::string(4095, 'a') + "\n[pi-crew compacted 12 chars]");
}

TEST_CASE("pi_stream: a stderr tail in an error is whole characters of valid "
          "UTF-8") {
  pi_stream stream;
  stream.feed("plain output\n");
  std::string euros;
  for (int i = 0; i < 700; ++i)
    euros += "\xE2\x82\xAC"; // 2100 bytes: the 2 KiB tail starts inside one
  auto error = stream.outcome(1, euros).error;
  CHECK_EQ(error, euros.substr(54));
  CHECK_EQ(stream.outcome(1, "caf\xE9\n").error, "caf\xEF\xBF\xBD");
}

TEST_CASE("pi_stream: rpc mode prompts are told apart with begin_prompt") {
  pi_stream stream;
  auto prompt = [](const char* text, int input) {
    return std::string{R"({"type":"response","command":"prompt","success":true})"} + "\n"
           + R"({"type":"agent_start"})" + "\n"
           + R"({"type":"message_end","message":{"role":"assistant","content":[{"type":"text","text":")"
           + text + R"("}],"usage":{"input":)" + std::to_string(input)
           + R"(,"output":1},"stopReason":"stop"}})" + "\n"
           + R"({"type":"agent_end","messages":[]})" + "\n";
  };
  auto first = stream.feed(prompt("first", 100));
  CHECK_EQ(first.front().compact, R"({"type":"response"})");
  CHECK(stream.agent_ended());
  CHECK_EQ(stream.final_text(), "first");
  CHECK_EQ(stream.usage().input, 100);

  auto second = prompt("second", 7);
  stream.feed(second.substr(0, 30)); // a partial line survives begin_prompt
  stream.begin_prompt();
  CHECK_FALSE(stream.agent_ended());
  CHECK_FALSE(stream.has_answer());
  CHECK_EQ(stream.usage().input, 0);
  CHECK_EQ(stream.json_events(), 0);
  stream.feed(second.substr(30));
  CHECK(stream.agent_ended());
  CHECK_EQ(stream.final_text(), "second");
  CHECK_EQ(stream.usage().input, 7);
  CHECK_EQ(stream.json_events(), 4);

  stream.begin_prompt();
  stream.feed(R"({"type":"response","command":"prompt","success":false,"error":"Agent is busy"})" "\n");
  CHECK_EQ(stream.error_message(), "Agent is busy");
  CHECK_EQ(stream.outcome(0, "").error, "Agent is busy");
}
