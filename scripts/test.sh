#!/usr/bin/env bash
# Installs what the tests need, then runs every test: unit and integration tests on SQLite and
# PostgreSQL, then the Playwright tests in Chromium against the release server.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --test

# The PostgreSQL half of the integration tests runs against this server; each test creates and
# drops its own database there. Without the variable those tests are skipped and say so.
export TEST_POSTGRES_URL="${TEST_POSTGRES_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}"

echo "[test] cargo test (SQLite and PostgreSQL)"
cargo test --features ssr

echo "[test] release build"
scripts/build.sh --release

echo "[test] Playwright"
end2end/run.sh
echo "[test] all tests passed"
