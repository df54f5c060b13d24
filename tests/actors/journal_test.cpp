#include "actors/journal.hpp"

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <doctest/doctest.h>

#include "store/event_log.hpp"
#include "store/replay.hpp"
#include "tests/support/temp_dir.hpp"

using namespace crew;
namespace fs = std::filesystem;

namespace {

constexpr const char* run_id = "team_20250101000000_0badcafe";

std::string line(uint64_t seq, std::string_view type = "run.running") {
  std::string out;
  event_fields ev;
  ev.type = type;
  ev.run_id = run_id;
  ev.message = "m";
  ev.seq = seq;
  ev.time = std::chrono::system_clock::now();
  append_event_line(out, ev);
  return out;
}

struct journal_fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys;
  test::temp_dir dir{"crew-journal"};
  fs::path log;

  static caf::actor_system_config& configure(caf::actor_system_config& cfg) {
    cfg.add_message_types<caf::id_block::crew>();
    cfg.set("logger.console", caf::atom("none"));
    return cfg;
  }

  journal_fixture() : sys(configure(cfg)) {
    log = dir.path / "state" / "events.jsonl";
  }

  journal_actor spawn(fsync_policy policy) {
    return sys.spawn(crew::journal, policy, crew::metric_sink_actor{},
                     std::string{});
  }

  /// Opens `path` for `id`; returns (last seq, note) or fails the test.
  std::pair<uint64_t, std::string> open(const journal_actor& j,
                                        const std::string& id,
                                        const fs::path& path) {
    caf::scoped_actor self{sys};
    std::pair<uint64_t, std::string> out{0, "<none>"};
    self->request(j, caf::infinite, caf::open_atom_v, id, path.string(),
                  uint64_t{0}, uint64_t{0}, uint64_t{0})
      .receive(
        [&](uint64_t seq, std::string& note) {
          out = {seq, std::move(note)};
        },
        [&](const caf::error& err) { FAIL("open failed: ", sys.render(err)); });
    return out;
  }

  /// Appends and returns the reply (or an error).
  caf::expected<uint64_t> append(const journal_actor& j, const std::string& id,
                                 const std::string& bytes, uint64_t seq) {
    caf::scoped_actor self{sys};
    caf::expected<uint64_t> out{caf::sec::runtime_error};
    self->request(j, caf::infinite, append_atom_v, id, bytes, seq)
      .receive([&](uint64_t durable) { out = durable; },
               [&](caf::error& err) { out = std::move(err); });
    return out;
  }

  bool close(const journal_actor& j, const std::string& id) {
    caf::scoped_actor self{sys};
    bool out = false;
    self->request(j, caf::infinite, caf::close_atom_v, id)
      .receive([&](bool closed) { out = closed; },
               [&](const caf::error& err) {
                 FAIL("close failed: ", sys.render(err));
               });
    return out;
  }

  std::vector<uint64_t> seqs_in_log(const fs::path& path) {
    std::vector<uint64_t> out;
    for_each_event(path, [&](const event_view& ev) { out.push_back(ev.seq); });
    return out;
  }
};

} // namespace

TEST_CASE_FIXTURE(journal_fixture,
                  "journal: appends are answered with their seq, in order") {
  auto j = spawn(fsync_policy::batch);
  auto [seq, note] = open(j, run_id, log);
  CHECK_EQ(seq, 0u);
  CHECK_EQ(note, "");
  std::string expected;
  for (uint64_t i = 1; i <= 5; ++i) {
    auto bytes = line(i);
    expected += bytes;
    auto res = append(j, run_id, bytes, i);
    REQUIRE(res);
    CHECK_EQ(*res, i);
  }
  // one append with several lines
  auto batch = line(6) + line(7) + line(8);
  expected += batch;
  auto res = append(j, run_id, batch, 8);
  REQUIRE(res);
  CHECK_EQ(*res, 8u);
  CHECK_EQ(test::slurp(log), expected);
  CHECK_EQ(seqs_in_log(log), (std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 7, 8}));
  // opening again while open: the current last seq, no note
  auto again = open(j, run_id, log);
  CHECK_EQ(again.first, 8u);
  CHECK_EQ(again.second, "");
  CHECK(close(j, run_id));
  CHECK_FALSE(close(j, run_id));
  caf::anon_send_exit(j, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(journal_fixture,
                  "journal: pipelined appends are each answered with their "
                  "seq") {
  auto j = spawn(fsync_policy::batch);
  open(j, run_id, log);
  caf::scoped_actor self{sys};
  std::vector<uint64_t> replies;
  // send all first: the journal sees them before its commit point
  auto send_one = [&](uint64_t i) {
    return self->request(j, caf::infinite, append_atom_v,
                         std::string{run_id}, line(i), i);
  };
  auto h1 = send_one(1);
  auto h2 = send_one(2);
  auto h3 = send_one(3);
  auto h4 = send_one(4);
  for (auto* h : {&h1, &h2, &h3, &h4})
    h->receive([&](uint64_t durable) { replies.push_back(durable); },
               [&](const caf::error& err) { FAIL(sys.render(err)); });
  CHECK_EQ(replies, (std::vector<uint64_t>{1, 2, 3, 4}));
  CHECK_EQ(seqs_in_log(log), (std::vector<uint64_t>{1, 2, 3, 4}));
  caf::anon_send_exit(j, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(journal_fixture,
                  "journal: a torn tail is repaired on open with a note") {
  fs::create_directories(log.parent_path());
  auto good = line(1) + line(2);
  auto torn = line(3);
  torn.pop_back(); // no trailing newline
  torn.resize(torn.size() / 2);
  test::append_to(log, good + torn);
  auto j = spawn(fsync_policy::batch);
  auto [seq, note] = open(j, run_id, log);
  CHECK_EQ(seq, 2u);
  CHECK_FALSE(note.empty());
  CHECK_EQ(test::slurp(log), good);
  auto res = append(j, run_id, line(3), 3);
  REQUIRE(res);
  CHECK_EQ(*res, 3u);
  CHECK_EQ(seqs_in_log(log), (std::vector<uint64_t>{1, 2, 3}));
  caf::anon_send_exit(j, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(journal_fixture,
                  "journal: append to an unopened run is an error reply") {
  auto j = spawn(fsync_policy::batch);
  auto res = append(j, "team_20250101000000_00000000", line(1), 1);
  CHECK_FALSE(res);
  CHECK(res.error());
  CHECK_FALSE(fs::exists(log));
  // the journal survives the error
  open(j, run_id, log);
  auto ok = append(j, run_id, line(1), 1);
  REQUIRE(ok);
  CHECK_EQ(*ok, 1u);
  caf::anon_send_exit(j, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(journal_fixture,
                  "journal: opening a log with damage before the tail fails") {
  fs::create_directories(log.parent_path());
  test::append_to(log, line(1) + "garbage\n" + line(3));
  auto j = spawn(fsync_policy::batch);
  caf::scoped_actor self{sys};
  bool failed = false;
  self->request(j, caf::infinite, caf::open_atom_v, std::string{run_id},
                log.string(), uint64_t{0}, uint64_t{0}, uint64_t{0})
    .receive([&](uint64_t, std::string&) {},
             [&](const caf::error&) { failed = true; });
  CHECK(failed);
  caf::anon_send_exit(j, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(journal_fixture, "journal: every fsync policy answers") {
  for (auto policy :
       {fsync_policy::none, fsync_policy::batch, fsync_policy::always}) {
    CAPTURE(to_string(policy));
    auto path = dir.path / to_string(policy) / "events.jsonl";
    auto j = spawn(policy);
    CHECK_EQ(open(j, run_id, path).first, 0u);
    for (uint64_t i = 1; i <= 3; ++i) {
      auto res = append(j, run_id, line(i), i);
      REQUIRE(res);
      CHECK_EQ(*res, i);
    }
    CHECK(close(j, run_id));
    CHECK_EQ(seqs_in_log(path), (std::vector<uint64_t>{1, 2, 3}));
    caf::anon_send_exit(j, caf::exit_reason::user_shutdown);
  }
}

TEST_CASE_FIXTURE(journal_fixture, "journal: two runs share one journal") {
  auto j = spawn(fsync_policy::batch);
  auto other = dir.path / "other" / "events.jsonl";
  std::string other_id = "team_20250101000000_00000001";
  open(j, run_id, log);
  open(j, other_id, other);
  for (uint64_t i = 1; i <= 3; ++i) {
    CHECK_EQ(*append(j, run_id, line(i), i), i);
    CHECK_EQ(*append(j, other_id, line(i), i), i);
  }
  CHECK(close(j, run_id));
  CHECK_EQ(*append(j, other_id, line(4), 4), 4u);
  CHECK_FALSE(append(j, run_id, line(4), 4));
  CHECK_EQ(seqs_in_log(log), (std::vector<uint64_t>{1, 2, 3}));
  CHECK_EQ(seqs_in_log(other), (std::vector<uint64_t>{1, 2, 3, 4}));
  caf::anon_send_exit(j, caf::exit_reason::user_shutdown);
}
