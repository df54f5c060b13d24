// Fuzzes the binary caches of store/checkpoint: read_checkpoint,
// checkpoint_task_state / set_checkpoint_task, read_plan_bin and
// resolve_plan_bin_ids.
//
// Input: the bytes of a checkpoint.bin or plan.bin (the seeds hold both).
// For plan.bin the plan.json size the reader expects is taken from the
// file's own header, so that a mutated file gets past that check.
// Documented errors: none; a damaged file is a cache miss (nullopt/false).

#include <cstring>
#include <unordered_map>

#include "fuzz/fuzz_support.hpp"
#include "store/checkpoint.hpp"

using namespace crew;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto text = fuzz::as_text(data, size);
  auto path = fuzz::scratch_dir() / "cache.bin";
  fuzz::write_file(path, text);
  auto round_trip = fuzz::scratch_dir() / "again.bin";

  if (auto ck = read_checkpoint(path)) {
    // encode(read(encode(x))) == encode(x); the reader ignores unused flag
    // bits, so the input itself need not be reproduced byte for byte.
    auto bin = checkpoint_bin(*ck);
    fuzz::write_file(round_trip, bin);
    auto back = read_checkpoint(round_trip);
    fuzz::check(back.has_value(), "an encoded checkpoint reads back");
    fuzz::check(checkpoint_bin(*back) == bin, "a checkpoint round-trips");
    // Every task converts to a replay state and back (what resume does).
    auto copy = *ck;
    for (uint32_t i = 0; i < ck->tasks.size(); ++i) {
      auto st = checkpoint_task_state(*ck, i);
      (void) checkpoint_error(*ck, i);
      set_checkpoint_task(copy, i, st);
    }
    (void) checkpoint_bin(copy);
  }

  uint64_t plan_json_size = 0;
  if (size >= 20)
    std::memcpy(&plan_json_size, data + 12, sizeof(plan_json_size));
  if (auto plan = read_plan_bin(path, plan_json_size)) {
    std::unordered_map<std::string, uint32_t> ids;
    for (const auto& t : *plan) {
      for (auto d : t.deps)
        fuzz::check(d < plan->size(), "plan.bin deps index the plan");
      ids.emplace(t.id, UINT32_MAX);
    }
    ids.emplace("no-such-task", UINT32_MAX);
    fuzz::check(resolve_plan_bin_ids(path, plan_json_size, ids),
                "ids resolve in a plan.bin that reads");
    for (const auto& [id, i] : ids)
      fuzz::check(i == UINT32_MAX || (i < plan->size() && (*plan)[i].id == id),
                  "a resolved id names its task");
    auto bin = plan_bin(*plan, plan_json_size);
    fuzz::write_file(round_trip, bin);
    auto back = read_plan_bin(round_trip, plan_json_size);
    fuzz::check(back.has_value(), "an encoded plan.bin reads back");
    fuzz::check(plan_bin(*back, plan_json_size) == bin, "plan.bin round-trips");
  } else {
    std::unordered_map<std::string, uint32_t> ids{{"01_a", UINT32_MAX}};
    (void) resolve_plan_bin_ids(path, plan_json_size, ids);
  }
  return 0;
}
