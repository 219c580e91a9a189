#!/usr/bin/env bash
# Installs what the tests need, then runs every test: unit and integration tests on SQLite and
# PostgreSQL, then the Playwright tests in Chromium against the release server.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --test

# The PostgreSQL half of the integration tests runs against this server; each test creates and
# drops its own database there. Without the variable those tests are skipped and say so.
export TEST_POSTGRES_URL="${TEST_POSTGRES_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}"

echo "[test] cargo fmt --check, clippy on the server and on the bundle (no warnings)"
cargo fmt --check
cargo clippy --features ssr --all-targets -- -D warnings
cargo clippy --lib --target wasm32-unknown-unknown --no-default-features --features hydrate -- -D warnings

echo "[test] cargo test (SQLite and PostgreSQL)"
# One test at a time: each integration test runs its own tokio runtime and app, and with
# several of them in one process a page render now and then never finished (a few in a hundred
# suites with 8 at once, none in 18 suites one at a time; a served app has one runtime and
# showed none in 150,000 renders). About 40 s instead of 20.
cargo test --features ssr -- --test-threads=1

echo "[test] release build"
scripts/build.sh --release

echo "[test] the OpenAPI document validates"
# openapi-spec-validator from PyPI, in a virtualenv under target/ (kept between runs).
if [ ! -x target/py/bin/python ]; then
  python3 -m venv target/py
  target/py/bin/pip install --quiet "openapi-spec-validator==0.9.0"
fi
target/release/runtime-policy openapi > target/openapi.json
target/py/bin/python -c 'import json; from openapi_spec_validator import validate; validate(json.load(open("target/openapi.json"))); print("valid OpenAPI 3.1")'

echo "[test] property-based run over the OpenAPI document (schemathesis)"
scripts/api_fuzz.sh

echo "[test] Playwright"
end2end/run.sh
echo "[test] all tests passed"
