#include "actors/undeliverable.hpp"

#include <iostream>

#include <caf/deep_to_string.hpp>
#include <caf/message.hpp>
#include <caf/message_view.hpp>
#include <caf/sec.hpp>

#include "store/atomic_file.hpp"
#include "store/clock.hpp"
#include "store/json_writer.hpp"

namespace crew {

caf::scheduled_actor::default_handler undeliverable_handler(std::string path) {
  return [path](caf::scheduled_actor* self,
                caf::message_view& x) -> caf::result<caf::message> {
    auto what = std::string{self->name()} + ": no handler for "
                + caf::deep_to_string(x.copy_content_to_message());
    std::string line = R"({"taskId":"","runId":"","reason":"undeliverable",)"
                       R"("attempts":0,"lastError":)";
    append_json_string(line, what);
    line += R"(,"timestamp":")" + iso_now() + R"(","traceId":""})" "\n";
    try {
      if (!path.empty())
        append_file(path, line, false);
      else
        std::cerr << "crew: deadletter: " << what << "\n";
    } catch (const std::exception& e) {
      std::cerr << "crew: deadletter: " << what << " (" << e.what() << ")\n";
    }
    return caf::sec::unexpected_message;
  };
}

} // namespace crew
