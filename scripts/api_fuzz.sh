#!/usr/bin/env bash
# Property-based run over the OpenAPI document: schemathesis (from PyPI, in target/py) sends
# generated requests to every /api/v1 operation of a release server on a fresh SQLite database,
# once with a personal API token (policy:write, audit:read) and once with a worker token, and
# fails on any 5xx answer or on an answer that does not match the document's statuses.
# Called by scripts/test.sh after the release build; it stops the server itself.
set -euo pipefail
cd "$(dirname "$0")/.."

bin="$PWD/target/release/runtime-policy"
py="$PWD/target/py/bin"
if [ ! -x "$py/st" ]; then
  "$py/pip" install --quiet "schemathesis==4.32.5"
fi

tmp=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

export DATABASE_URL="sqlite://$tmp/fuzz.db"
export RUST_LOG=warn
printf 'a long enough password\n' | "$bin" user create fuzz@example.com --role superuser >/dev/null
api_token=$("$bin" api-token create fuzz --user fuzz@example.com --scope policy:write --scope audit:read 2>/dev/null)
worker_token=$("$bin" token create fuzz-worker 2>/dev/null)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
LEPTOS_SITE_ADDR="127.0.0.1:$port" LEPTOS_SITE_ROOT=target/site "$bin" serve >"$tmp/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

run() {
  "$py/st" run "http://127.0.0.1:$port/api/v1/openapi.json" --checks not_a_server_error,status_code_conformance \
    --max-examples 25 --workers 1 --seed 1 "$@"
}
(cd "$tmp" && run -H "Authorization: Bearer $api_token" --include-path-regex '^/api/v1/(policy|audit)')
(cd "$tmp" && run -H "Authorization: Bearer $worker_token" --include-path-regex '^/api/v1/runs')
if grep -q "panicked" "$tmp/server.log"; then
  echo "the server panicked during the run:" >&2
  grep -A3 "panicked" "$tmp/server.log" >&2
  exit 1
fi
echo "[fuzz] no 5xx and no undocumented status from any /api/v1 operation"
