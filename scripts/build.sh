#!/usr/bin/env bash
# Builds the server binary and the site (wasm bundle, CSS, public files) into target/.
#   scripts/build.sh            debug build
#   scripts/build.sh --release  release build (wasm optimised with wasm-opt)
# The site goes to target/site, which is LEPTOS_SITE_ROOT's default.
set -euo pipefail
cd "$(dirname "$0")/.."

release=false
for arg in "$@"; do
  case "$arg" in
    --release) release=true ;;
    *) echo "build: unknown argument $arg (allowed: --release)" >&2; exit 2 ;;
  esac
done

site=target/site
pkg=$site/pkg
name=runtime-policy

if $release; then
  cargo build --release --features ssr --bin runtime-policy
  cargo build --lib --target wasm32-unknown-unknown --no-default-features --features hydrate --profile wasm-release
  wasm=target/wasm32-unknown-unknown/wasm-release/runtime_policy.wasm
else
  cargo build --features ssr --bin runtime-policy
  cargo build --lib --target wasm32-unknown-unknown --no-default-features --features hydrate
  wasm=target/wasm32-unknown-unknown/debug/runtime_policy.wasm
fi

rm -rf "$pkg.tmp"
mkdir -p "$pkg.tmp" "$site"
wasm-bindgen --target web --no-typescript --out-dir "$pkg.tmp" --out-name "$name" "$wasm"
if $release; then
  # Debian's binaryen is too old and breaks hydration; use the npm one (scripts/setup.sh).
  wasm_opt=end2end/node_modules/.bin/wasm-opt
  "$wasm_opt" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-reference-types --enable-multivalue \
    "$pkg.tmp/${name}_bg.wasm" -o "$pkg.tmp/${name}_bg.wasm"
fi
cp style/main.css "$pkg.tmp/$name.css"
if $release; then
  # Brotli and gzip copies beside each file, served to browsers that accept them (Node's zlib,
  # already installed for the end-to-end tests).
  node -e '
    const fs = require("fs"), zlib = require("zlib"), path = require("path");
    const dir = process.argv[1];
    for (const f of fs.readdirSync(dir)) {
      if (!/\.(js|wasm|css)$/.test(f)) continue;
      const data = fs.readFileSync(path.join(dir, f));
      fs.writeFileSync(path.join(dir, f + ".br"), zlib.brotliCompressSync(data, {
        params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: data.length } }));
      fs.writeFileSync(path.join(dir, f + ".gz"), zlib.gzipSync(data, { level: 9 }));
    }' "$pkg.tmp"
fi
cp -r public/. "$site/"
# Each bundle lives in a folder named after a hash of its content (pkg/<hash>/), so browsers may
# keep its files for a year; pkg/current names the newest, which a server picks at start. Older
# bundles stay for a week (the three newest always), for servers still running an older build.
hash=$(cat "$pkg.tmp/$name.js" "$pkg.tmp/${name}_bg.wasm" "$pkg.tmp/$name.css" | sha256sum | cut -c1-16)
mkdir -p "$pkg"
find "$pkg" -maxdepth 1 -type f ! -name current -mtime +7 -delete
if [ -d "$pkg/$hash" ]; then
  rm -rf "$pkg.tmp"
else
  mv "$pkg.tmp" "$pkg/$hash"
fi
touch "$pkg/$hash"
printf '%s\n' "$hash" > "$pkg/current.tmp"
mv "$pkg/current.tmp" "$pkg/current"
ls -1dt "$pkg"/*/ | tail -n +4 | while read -r old; do
  if [ -n "$(find "$old" -maxdepth 0 -mtime +7)" ]; then rm -rf "$old"; fi
done
echo "built: $( $release && echo release || echo debug ) server and site in $site (bundle $hash)"
