#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace crew {

/// Replacement for every redacted value.
constexpr const char* redacted_marker = "***";

/// Decides whether a key or variable name names a secret. The name is split
/// into lowercase words on `_`, `-`, `.`, spaces and camelCase boundaries
/// (`APIKey` -> `api`, `key`). It is secret if a word is one of `token`,
/// `secret(s)`, `password(s)`, `passwd`, `credential(s)`, `auth`,
/// `authorization`, `apikey`, `cookie(s)`, or if it is `key` directly after
/// `api`, `access`, `private`, `secret` or `session`.
///
/// This fixes pi-crew's substring regex (inventory §6.7), which also hides
/// `tokens`, `input_tokens`, `maxTokens`, `monkey`, `keyboard` and `author`.
/// All of those stay readable here.
bool is_secret_name(std::string_view name);

/// Returns a copy of `value` in which every object member with a secret key
/// (see `is_secret_name`) becomes `"***"`, whatever its type. Other members
/// and array items are redacted recursively, and strings pass through
/// `redact_text`.
nlohmann::json redact(const nlohmann::json& value);

/// Rewrites `NAME=value` and `NAME: value` in free text when NAME is secret
/// (`API_TOKEN=abc` -> `API_TOKEN=***`, `password: hunter2` ->
/// `password: ***`, `"secret": "x"` -> `"secret": "***"`). NAME may contain
/// letters, digits, `_`, `.` and `-`. An unquoted value ends at whitespace,
/// `,`, `;`, `&` or a quote. A quoted value ends at its closing quote. After
/// `Bearer ` or `Basic `, the credential that follows is redacted too.
std::string redact_text(std::string_view text);

} // namespace crew
