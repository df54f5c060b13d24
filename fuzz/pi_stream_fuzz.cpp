// Fuzzes the pi JSON stream parser (runtime/workers/pi/pi_stream): feed in
// chunks, finish, begin_prompt (rpc mode) and outcome.
//
// Input: a 2-byte little-endian header, then the worker's stdout. The low 15
// bits of the header are the chunk size (0: all at once); with the high bit
// set, begin_prompt() is called after each agent_end, as in rpc mode.
// Documented errors: none (any bytes are valid worker output).

#include <nlohmann/json.hpp>

#include "fuzz/fuzz_support.hpp"
#include "runtime/workers/pi/pi_stream.hpp"

using namespace crew;

namespace {

void check_lines(const std::vector<pi_line>& lines) {
  for (const auto& line : lines) {
    if (!line.json)
      continue;
    fuzz::check(!line.type.empty(), "a kept event has a type");
    // The compact form is one line of valid JSON (it is written to the
    // transcript verbatim).
    fuzz::check(line.compact.find('\n') == std::string::npos,
                "a compact event is one line");
    fuzz::check(nlohmann::json::accept(line.compact),
                "a compact event is valid JSON");
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2)
    return 0;
  unsigned header = data[0] | (unsigned{data[1]} << 8);
  size_t chunk = header & 0x7fff;
  bool rpc = (header & 0x8000) != 0;
  auto text = fuzz::as_text(data + 2, size - 2);
  if (chunk == 0)
    chunk = text.size() + 1;
  pi_stream stream;
  uint64_t activity = 0;
  for (size_t pos = 0; pos < text.size(); pos += chunk) {
    check_lines(stream.feed(text.substr(pos, chunk)));
    fuzz::check(stream.activity() > activity, "a chunk counts as activity");
    activity = stream.activity();
    if (rpc && stream.agent_ended()) {
      (void) stream.outcome(0, {});
      stream.begin_prompt();
    }
  }
  check_lines(stream.finish());
  auto ok = stream.outcome(0, {});
  fuzz::check(ok.success == ok.error.empty(), "success iff no error");
  auto failed = stream.outcome(1, text.substr(text.size() / 2));
  fuzz::check(!failed.success, "exit code 1 never succeeds");
  return 0;
}
