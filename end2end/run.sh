#!/usr/bin/env bash
# Runs the Playwright tests against the release server on a free port with a fresh database
# in a temporary folder; Playwright starts the server and stops it when the tests end.
set -euo pipefail
cd "$(dirname "$0")"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
E2E_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
export E2E_PORT
export E2E_DATABASE_URL="sqlite://$tmp/e2e.db"
export E2E_TMP="$tmp"

npx playwright test "$@"
