// Replay throughput of the event log: writes a 1,000,000-event log (500,000
// tasks, started + completed each) with append_event_line, then times
// replay_log (median of 3) against a nlohmann DOM-per-line baseline.
//
// usage: replay_bench [tasks]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "store/atomic_file.hpp"
#include "store/event_log.hpp"
#include "store/replay.hpp"

using namespace crew;
using clk = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

double seconds_since(clk::time_point start) {
  return std::chrono::duration<double>(clk::now() - start).count();
}

double median(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  return xs[xs.size() / 2];
}

} // namespace

int main(int argc, char** argv) {
  size_t tasks = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 500'000;
  auto tmpl = (fs::temp_directory_path() / "replay-bench-XXXXXX").string();
  fs::path dir = ::mkdtemp(tmpl.data());
  auto path = dir / "events.jsonl";
  std::vector<planned_task> plan(tasks);
  for (size_t i = 0; i < tasks; ++i) {
    plan[i].id = fmt::format("{:06}_step-{}", i + 1, i % 97);
    plan[i].step_id = fmt::format("step-{}", i);
  }
  // -- write -----------------------------------------------------------------
  auto start = clk::now();
  uint64_t seq = 0;
  {
    auto w = event_log_writer::open(path);
    std::string buf;
    buf.reserve(2 << 20);
    auto now = std::chrono::system_clock::now();
    auto emit = [&](std::string_view type, std::string_view task,
                    std::string_view data) {
      ++seq;
      append_event_line(buf,
                        event_fields{type,
                                     "team_20261126011545_0a1b2c3d",
                                     task,
                                     {},
                                     data,
                                     seq,
                                     now + std::chrono::microseconds(seq)});
      if (buf.size() >= (1 << 20)) {
        w.append(buf, seq);
        buf.clear();
      }
    };
    for (size_t i = 0; i < tasks; ++i) {
      emit("task.started", plan[i].id, R"({"attempt":1})");
      emit("task.completed", plan[i].id, R"({"attempt":1,"exitCode":0})");
    }
    w.append(buf, seq);
    w.sync();
  }
  auto write_s = seconds_since(start);
  auto size = fs::file_size(path);
  fmt::print("wrote {} events ({:.1f} MB) in {:.3f} s: {:.0f} events/s "
             "(format + write + one fdatasync)\n",
             seq, size / 1e6, write_s, seq / write_s);
  // -- replay_log ------------------------------------------------------------
  std::vector<double> runs;
  for (int i = 0; i < 3; ++i) {
    start = clk::now();
    auto st = replay_log(path, plan);
    runs.push_back(seconds_since(start));
    if (st.events != seq || !st.violations.empty()
        || st.tasks.back().status != task_status::completed) {
      fmt::print(stderr, "unexpected replay result: {} events, {} violations\n",
                 st.events, st.violations.size());
      return 1;
    }
  }
  auto replay_s = median(runs);
  fmt::print("replay_log: {:.3f} s median of 3: {:.0f} events/s "
             "(task states rebuilt)\n",
             replay_s, seq / replay_s);
  // -- for_each_event (parse only) -------------------------------------------
  runs.clear();
  for (int i = 0; i < 3; ++i) {
    start = clk::now();
    uint64_t n = 0;
    for_each_event(path, [&](const event_view& ev) { n += ev.seq != 0; });
    runs.push_back(seconds_since(start));
  }
  auto scan_s = median(runs);
  fmt::print("for_each_event: {:.3f} s median of 3: {:.0f} events/s\n", scan_s,
             seq / scan_s);
  // -- baseline: nlohmann DOM per line over the first 200,000 lines ----------
  auto text = read_file(path);
  size_t limit = 200'000;
  start = clk::now();
  size_t n = 0, pos = 0;
  uint64_t seq_sum = 0;
  while (n < limit && pos < text.size()) {
    auto nl = text.find('\n', pos);
    auto j = nlohmann::json::parse(text.begin() + pos, text.begin() + nl);
    seq_sum += j["metadata"]["seq"].get<uint64_t>();
    pos = nl + 1;
    ++n;
  }
  auto base_s = seconds_since(start);
  fmt::print("nlohmann DOM per line (parse only, {} lines): {:.3f} s: "
             "{:.0f} events/s (checksum {})\n",
             n, base_s, n / base_s, seq_sum);
  fmt::print("speedup replay_log vs baseline: {:.1f}x\n",
             (seq / replay_s) / (n / base_s));
  fs::remove_all(dir);
  return 0;
}
