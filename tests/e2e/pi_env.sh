# shellcheck shell=bash
# Sourced helper: an isolated environment for running the real `pi` CLI
# against tests/e2e/fake_llm.py. Nothing touches the real HOME.
#
#   source tests/e2e/pi_env.sh
#   pi_env_setup <pi binary | dir holding it> <fake server port> [base dir]
#   ... run "$PI_BIN" --mode json --no-session --model fake/fake-model <prompt.txt
#   pi_env_cleanup            # removes the base dir if pi_env_setup created it
#
# pi_env_setup exports:
#   PI_BIN                 absolute path of the pi binary
#   PI_E2E_DIR             base dir (mktemp -d unless given)
#   HOME                   $PI_E2E_DIR/home
#   PI_CODING_AGENT_DIR    $PI_E2E_DIR/agent   (models.json, settings.json, auth.json)
#   PI_CODING_AGENT_SESSION_DIR  $PI_E2E_DIR/sessions (only used without --no-session)
#   PI_OFFLINE=1 PI_SKIP_VERSION_CHECK=1 PI_TELEMETRY=0
#   FAKE_LLM_API_KEY=sk-fake  (models.json names this variable as the apiKey)
#   NO_PROXY/no_proxy=127.0.0.1,localhost, and unsets every *_proxy variable
#   PI_E2E_FLAGS           flags for reproducible runs (no context files,
#                          extensions, skills, prompt templates, themes)
# and prepends the pi binary's directory to PATH.
#
# Provider "fake" (api openai-completions, baseUrl http://127.0.0.1:<port>/v1):
# models fake-model, fake-fail, fake-hang, fake-second. The model id decides
# what fake_llm.py does (see its docstring).
#
# settings.json turns off pi's own retries (pitfall 3): the agent-level retry
# ("retry.enabled": false, "retry.maxRetries": 0) and the OpenAI SDK retries
# ("retry.provider.maxRetries": 0). Keys checked against pi 0.73.1
# docs/settings.md and dist/core/settings-manager.js (getRetrySettings /
# getProviderRetrySettings). "retry.provider.timeoutMs" is the SDK request
# timeout; PI_E2E_PROVIDER_TIMEOUT_MS overrides the default 600000.

pi_env_setup() {
    local pi="${1:?pi_env_setup: pi binary or bin dir required}"
    local port="${2:?pi_env_setup: fake server port required}"
    local base="${3:-}"

    if [[ -d "$pi" ]]; then
        pi="$pi/pi"
    fi
    if [[ ! -x "$pi" ]]; then
        echo "pi_env_setup: no executable pi at $pi" >&2
        return 1
    fi
    PI_BIN="$(cd "$(dirname "$pi")" && pwd)/$(basename "$pi")"
    export PI_BIN

    if [[ -z "$base" ]]; then
        base="$(mktemp -d "${TMPDIR:-/tmp}/crew-pi-e2e.XXXXXX")" || return 1
        _PI_ENV_OWNS_DIR=1
    else
        mkdir -p "$base" || return 1
        _PI_ENV_OWNS_DIR=0
    fi
    PI_E2E_DIR="$(cd "$base" && pwd)"
    export PI_E2E_DIR

    export HOME="$PI_E2E_DIR/home"
    export PI_CODING_AGENT_DIR="$PI_E2E_DIR/agent"
    export PI_CODING_AGENT_SESSION_DIR="$PI_E2E_DIR/sessions"
    mkdir -p "$HOME" "$PI_CODING_AGENT_DIR" "$PI_CODING_AGENT_SESSION_DIR" || return 1

    export PI_OFFLINE=1
    export PI_SKIP_VERSION_CHECK=1
    export PI_TELEMETRY=0
    export FAKE_LLM_API_KEY=sk-fake
    unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
    export NO_PROXY=127.0.0.1,localhost
    export no_proxy=127.0.0.1,localhost
    PATH="$(dirname "$PI_BIN"):$PATH"
    export PATH
    export PI_E2E_FLAGS="--no-context-files --no-extensions --no-skills --no-prompt-templates --no-themes"
    export FAKE_LLM_PORT="$port"

    cat >"$PI_CODING_AGENT_DIR/models.json" <<EOF
{
  "providers": {
    "fake": {
      "baseUrl": "http://127.0.0.1:${port}/v1",
      "api": "openai-completions",
      "apiKey": "FAKE_LLM_API_KEY",
      "compat": { "supportsDeveloperRole": false, "supportsReasoningEffort": false, "supportsStore": false },
      "models": [
        { "id": "fake-model",  "name": "Fake Model",        "contextWindow": 128000, "maxTokens": 4096 },
        { "id": "fake-fail",   "name": "Fake Failing (429)", "contextWindow": 128000, "maxTokens": 4096 },
        { "id": "fake-hang",   "name": "Fake Hanging",      "contextWindow": 128000, "maxTokens": 4096 },
        { "id": "fake-second", "name": "Fake Second",       "contextWindow": 128000, "maxTokens": 4096 }
      ]
    }
  }
}
EOF

    cat >"$PI_CODING_AGENT_DIR/settings.json" <<EOF
{
  "defaultProvider": "fake",
  "defaultModel": "fake-model",
  "enableInstallTelemetry": false,
  "quietStartup": true,
  "retry": {
    "enabled": false,
    "maxRetries": 0,
    "provider": { "maxRetries": 0, "timeoutMs": ${PI_E2E_PROVIDER_TIMEOUT_MS:-600000} }
  }
}
EOF
}

pi_env_cleanup() {
    if [[ "${_PI_ENV_OWNS_DIR:-0}" == 1 && -n "${PI_E2E_DIR:-}" && -d "$PI_E2E_DIR" ]]; then
        rm -rf -- "$PI_E2E_DIR"
    fi
    _PI_ENV_OWNS_DIR=0
}
