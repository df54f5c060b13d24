// Fuzzes the event log readers of store/: for_each_event, replay_log,
// find_seq_end + replay_tail, a checkpoint of the replayed state, and
// event_log_writer::open with its torn-tail repair.
//
// Input: the bytes of an events.jsonl. The run's plan has the tasks 01_a,
// 02_b (after a) and 03_c, which the seeds use.
// Documented errors: input_error (corrupt_log, naming file and line).

#include "fuzz/fuzz_support.hpp"
#include "store/checkpoint.hpp"
#include "store/event_log.hpp"
#include "store/replay.hpp"

using namespace crew;

namespace {

const std::vector<planned_task>& plan() {
  static const std::vector<planned_task> tasks = [] {
    std::vector<planned_task> p(3);
    p[0].id = "01_a";
    p[0].step_id = "a";
    p[1].id = "02_b";
    p[1].step_id = "b";
    p[1].depends_on = {"a"};
    p[1].deps = {0};
    p[2].id = "03_c";
    p[2].step_id = "c";
    return p;
  }();
  return tasks;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto path = fuzz::scratch_dir() / "events.jsonl";
  fuzz::write_file(path, fuzz::as_text(data, size));
  uint64_t events = 0;
  read_report rep;
  bool tolerant_ok = fuzz::guarded([&] {
    rep = for_each_event(path, [&](const event_view&) { ++events; });
  });
  bool strict_ok = fuzz::guarded([&] {
    for_each_event(path, [](const event_view&) {}, read_options{0, false});
  });
  fuzz::check(!strict_ok || tolerant_ok, "strict accepts what tolerant rejects");
  if (tolerant_ok)
    fuzz::check(rep.events == events, "one callback per reported event");
  replay_state st;
  bool replayed = fuzz::guarded([&] { st = replay_log(path, plan()); });
  fuzz::check(replayed == tolerant_ok, "replay and reader agree on the file");
  if (replayed && st.added.empty()) {
    // The replayed state as checkpoint.bin, read back.
    auto ck = make_checkpoint(st.tasks);
    ck.seq = st.last_seq;
    ck.status = st.status;
    ck.summary = st.summary;
    for (uint32_t i = 0; i < ck.tasks.size(); ++i)
      (void) checkpoint_task_state(ck, i);
    auto bin = checkpoint_bin(ck);
    auto ck_path = fuzz::scratch_dir() / "checkpoint.bin";
    fuzz::write_file(ck_path, bin);
    auto back = read_checkpoint(ck_path);
    fuzz::check(back.has_value(), "a written checkpoint reads back");
    fuzz::check(checkpoint_bin(*back) == bin, "a checkpoint round-trips");
    // Replay the tail after a few seqs on top of an empty checkpoint.
    for (auto seq : {uint64_t{1}, st.last_seq / 2, st.last_seq}) {
      auto end = find_seq_end(path, seq);
      if (!end)
        continue;
      auto tail_ck = make_checkpoint(std::vector<task_state>(plan().size()));
      tail_ck.seq = seq;
      fuzz::guarded([&] { (void) replay_tail(path, *end, plan(), tail_ck); });
    }
  }
  // The writer validates the log and cuts a torn tail; after that a strict
  // read must accept the file, and a second open must find nothing to cut.
  bool opened = fuzz::guarded([&] {
    auto w = event_log_writer::open(path);
    fuzz::check(w.last_seq() == (tolerant_ok ? rep.last_seq : w.last_seq()),
                "the writer finds the reader's last seq");
  });
  fuzz::check(opened == tolerant_ok, "writer and reader agree on the file");
  if (opened) {
    fuzz::check(fuzz::guarded([&] {
      for_each_event(path, [](const event_view&) {}, read_options{0, false});
    }), "a repaired log reads strictly");
    auto again = event_log_writer::open(path);
    fuzz::check(!again.repair().repaired, "a repaired log needs no repair");
  }
  return 0;
}
