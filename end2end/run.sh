#!/usr/bin/env bash
# Runs the Playwright tests against the release server on a free port with a fresh database
# in a temporary folder; Playwright starts the server and stops it when the tests end.
# Before that, the same binary creates two superusers (one reviews the other's change requests)
# and a member in that database (passwords on stdin) and their credentials are exported for
# the specs.
# E2E_SERVER_CMD overrides the server command (e.g. 'target/debug/runtime-policy serve').
set -euo pipefail
cd "$(dirname "$0")"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
E2E_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
export E2E_PORT
export E2E_DATABASE_URL="sqlite://$tmp/e2e.db"
export E2E_TMP="$tmp"

server_cmd="${E2E_SERVER_CMD:-target/release/runtime-policy serve}"
bin="../${server_cmd%% *}"
export E2E_SUPERUSER_EMAIL="root@e2e.example"
export E2E_SUPERUSER_PASSWORD="e2e-superuser-$RANDOM$RANDOM"
export E2E_REVIEWER_EMAIL="reviewer@e2e.example"
export E2E_REVIEWER_PASSWORD="e2e-reviewer-$RANDOM$RANDOM"
export E2E_MEMBER_EMAIL="member@e2e.example"
export E2E_MEMBER_PASSWORD="e2e-member-$RANDOM$RANDOM"
printf '%s\n' "$E2E_SUPERUSER_PASSWORD" |
  DATABASE_URL="$E2E_DATABASE_URL" RUST_LOG=warn "$bin" user create "$E2E_SUPERUSER_EMAIL" --role superuser
printf '%s\n' "$E2E_REVIEWER_PASSWORD" |
  DATABASE_URL="$E2E_DATABASE_URL" RUST_LOG=warn "$bin" user create "$E2E_REVIEWER_EMAIL" --role superuser
printf '%s\n' "$E2E_MEMBER_PASSWORD" |
  DATABASE_URL="$E2E_DATABASE_URL" RUST_LOG=warn "$bin" user create "$E2E_MEMBER_EMAIL" --role member

# The specs change keys through the CLI too (a concurrent editor), with the same binary.
export E2E_BIN="$(cd .. && pwd)/${server_cmd%% *}"

npx playwright test "$@"
