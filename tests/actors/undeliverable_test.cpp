#include "actors/undeliverable.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/journal.hpp"
#include "messages/type_ids.hpp"
#include "tests/support/temp_dir.hpp"

using namespace crew;

TEST_CASE("undeliverable: a message no handler matches becomes a deadletter entry") {
  test::temp_dir dir;
  auto path = (dir.path / "deadletter.jsonl").string();
  caf::actor_system_config cfg;
  cfg.add_message_types<caf::id_block::crew>();
  caf::actor_system sys{cfg};
  auto j = sys.spawn(crew::journal, fsync_policy::none, metric_sink_actor{}, path);
  {
    caf::scoped_actor self{sys};
    // An untyped sender can put anything into a typed actor's mailbox.
    self->send(caf::actor_cast<caf::actor>(j), std::string{"no one handles this"});
    // a request gets an error instead of silence
    bool answered_with_error = false;
    self->request(caf::actor_cast<caf::actor>(j), caf::infinite, int32_t{42})
      .receive([](const caf::message&) {},
               [&](const caf::error& err) {
                 answered_with_error = err == caf::sec::unexpected_message;
               });
    CHECK(answered_with_error);
  }
  caf::anon_send_exit(j, caf::exit_reason::user_shutdown);
  sys.await_all_actors_done();
  std::ifstream in{path};
  std::stringstream text;
  text << in.rdbuf();
  auto s = text.str();
  CHECK(s.find("\"reason\":\"undeliverable\"") != std::string::npos);
  CHECK(s.find("no one handles this") != std::string::npos);
  CHECK(s.find("crew.journal") != std::string::npos);
}
