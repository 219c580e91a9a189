#!/usr/bin/env bash
# Installs what is missing, builds the release server and site, and serves the app on the
# embedded SQLite default (see README.md for the configuration variables).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/build.sh --release
exec target/release/runtime-policy serve
