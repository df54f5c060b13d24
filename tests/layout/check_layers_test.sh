#!/usr/bin/env bash
# The layering check catches what it is for: a temporary tree with one
# violation of each kind must fail, naming the file and line; the same tree
# without them must pass.
set -euo pipefail
check="$1"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mk() { mkdir -p "$(dirname "$tmp/$1")"; printf '%s\n' "$2" >"$tmp/$1"; }
mk runtime/scheduling/engine.hpp '#include "runtime/workers/sim.hpp"'
mk runtime/workers/sim.hpp '#include <string>'
mk store/log.hpp '#include <caf/expected.hpp>'
"$check" "$tmp" >/dev/null || { echo "FAIL: a clean tree was refused"; "$check" "$tmp"; exit 1; }

expect_violation() { # file content what-the-message-names
  mk "$1" "$2"
  if out="$("$check" "$tmp")"; then
    echo "FAIL: $1 ($2) was not reported"; exit 1
  fi
  grep -q -- "$3" <<<"$out" || { echo "FAIL: the report does not name $3:"; echo "$out"; exit 1; }
  rm "$tmp/$1"
}
expect_violation store/bad.cpp '#include "runtime/scheduling/engine.hpp"' 'store/bad.cpp:1: store/ may not include runtime/scheduling/'
expect_violation runtime/workers/up.cpp '#include "runtime/scheduling/engine.hpp"' 'runtime/workers/ may not include runtime/scheduling/'
expect_violation runtime/scheduling/act.cpp '#include <caf/typed_actor.hpp>' 'CAF actor header <caf/typed_actor.hpp>'
expect_violation config/c.cpp '#include <caf/stateful_actor.hpp>' 'CAF actor header'
expect_violation actors/a.cpp '#include <caf/all.hpp>' 'includes caf/all.hpp'
expect_violation actors/b.cpp '#include "runtime/operations/create.hpp"' 'actors/ may not include runtime/operations/'
expect_violation runtime/loose.cpp '#include <string>' 'in no room'
"$check" "$tmp" >/dev/null
echo "check-layers: 7 violations caught, the clean tree passes"
