#!/usr/bin/env bash
# Development loop: builds the debug server and bundle, serves them, and on every saved change
# under src/, style/, public/, migrations/ or Cargo.toml rebuilds and restarts the server (the
# old one keeps serving until the new build is ready; a failed build leaves it running).
# Settings come from the environment or flags as for `runtime-policy serve`; Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
export LEPTOS_ENV="${LEPTOS_ENV:-DEV}"
stamp=$(mktemp)
server=""
stop_server() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=""
  fi
}
trap 'stop_server; rm -f "$stamp"' EXIT
trap 'exit 130' INT TERM

build_and_serve() {
  local started=$SECONDS
  if scripts/build.sh; then
    stop_server
    target/debug/runtime-policy serve "$@" &
    server=$!
    echo "[dev] serving the new build ($((SECONDS - started)) s after the change)"
  else
    echo "[dev] the build failed; the previous server (if any) keeps running. Fix and save again."
  fi
}

touch "$stamp"
build_and_serve "$@"
while sleep 1; do
  if [ -n "$(find src style public migrations Cargo.toml -newer "$stamp" -type f -print -quit 2>/dev/null)" ]; then
    touch "$stamp"
    echo "[dev] change seen: rebuilding"
    build_and_serve "$@"
  fi
done
