#!/usr/bin/env bash
# Installs what building and testing Runtime Policy needs, skipping whatever is already in place.
#   scripts/setup.sh          toolchain for building and running the app
#   scripts/setup.sh --test   also Chromium, PostgreSQL and the Playwright packages
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/"/, "", $3); print $3}' Cargo.lock)
want_test=false
[ "${1:-}" = "--test" ] && want_test=true

log() { printf '[setup] %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}"
  fi
}

if ! command -v cargo >/dev/null; then
  echo "cargo is missing: install Rust 1.95 with rustup (https://rustup.rs) first" >&2
  exit 1
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# rustfmt and clippy: the test command checks formatting and lints.
if $want_test; then
  for component in rustfmt clippy; do
    if ! rustup component list --installed | grep -q "^$component"; then
      log "rustup component add $component"
      rustup component add "$component"
    fi
  done
fi

# The wasm-bindgen CLI must match the library version in Cargo.lock exactly.
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  # Its published lock file pins a webpki-roots release that crates.io no longer serves, so the
  # crate is built from its registry sources with that one dependency moved to a served release.
  if ! cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --locked 2>/dev/null; then
    src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/wasm-bindgen-cli-"$WASM_BINDGEN_VERSION" | head -n1)
    work=$(mktemp -d)
    cp -r "$src" "$work/cli"
    (cd "$work/cli" && cargo update -p webpki-roots --precise 1.0.10 && cargo install --path . --locked)
    rm -rf "$work"
  fi
fi

if $want_test; then
  apt_install chromium postgresql
  # The test command validates and fuzzes the OpenAPI document with Python packages from PyPI in
  # a virtualenv under target/: Debian's python3 needs python3-venv for that.
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt_install python3-venv
  fi
  # PostgreSQL must answer for the backend tests.
  if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    log "starting PostgreSQL"
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
  fi
  # The tests sign in as postgres/postgres. Under trust authentication the password is ignored;
  # a fresh Debian install asks for one, so give the role that password when it is refused.
  if ! PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d postgres -qtAc 'SELECT 1' >/dev/null 2>&1; then
    log "setting a password for the PostgreSQL role postgres (test use only)"
    as_root runuser -u postgres -- psql -qc "ALTER USER postgres PASSWORD 'postgres'"
  fi
fi

# npm packages: Playwright (no browser download) and binaryen's wasm-opt for release builds.
if [ ! -x end2end/node_modules/.bin/wasm-opt ] || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
  log "npm ci in end2end/"
  (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
fi
log "ready"
