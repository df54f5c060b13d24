#pragma once

#include <string>

#include <caf/scheduled_actor.hpp>

namespace crew {

/// The default handler of every actor of a node: a message that nobody
/// handles is recorded as a deadletter entry `{reason: "undeliverable"}` in
/// `path` (the node's `state/deadletter.jsonl`; stderr when empty) instead of
/// CAF's print-and-drop, and a request gets `sec::unexpected_message`.
/// Nothing is dropped silently.
caf::scheduled_actor::default_handler undeliverable_handler(std::string path);

} // namespace crew
