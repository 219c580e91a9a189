#!/usr/bin/env bash
# Figures, not tests: starts the release server on a fresh SQLite database in a temporary folder
# with a superuser, measures on 127.0.0.1, prints one report and stops the server.
#   /healthz req/s (the reference for this machine at this moment);
#   the signed-in settings page: req/s, p50, p99 at 10 connections and at 1, and the ratio to /healthz;
#   save_policy: median and p99 over 200 audited changes;
#   run creation per second (10 blocks each, worker API);
#   bytes of a first visit to the signed-in settings page as a browser receives them (br/gzip);
#   database queries behind one signed-in settings page.
# Needs a release build (scripts/build.sh --release); installs Debian's wrk when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/release/runtime-policy
[ -x "$bin" ] || { echo "bench: build first: scripts/build.sh --release" >&2; exit 1; }
if ! command -v wrk >/dev/null; then
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get install -y wrk >/dev/null 2>&1 || { $sudo_cmd apt-get update >/dev/null && $sudo_cmd apt-get install -y wrk >/dev/null; }
fi
duration="${BENCH_SECONDS:-10}"

tmp=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
base="http://127.0.0.1:$port"
export DATABASE_URL="sqlite://$tmp/bench.db" RUST_LOG=warn
password="bench-password-$RANDOM$RANDOM"
printf '%s\n' "$password" | "$bin" user create bench@example.com --role superuser >/dev/null
token=$("$bin" token create bench 2>/dev/null)
LEPTOS_SITE_ADDR="127.0.0.1:$port" "$bin" serve >"$tmp/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 1 100); do curl -fs "$base/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

# Sign in once; the session cookie serves every signed-in request below.
cookie=$(curl -s -o /dev/null -D - -X POST "$base/api/login" \
  --data-urlencode "email=bench@example.com" --data-urlencode "password=$password" |
  tr -d '\r' | awk -F'[ ;]' 'tolower($1) == "set-cookie:" { print $2 }' | tail -1)
[ -n "$cookie" ] || { echo "bench: sign-in failed" >&2; exit 1; }

# wrk's latency report in ms: "req/s p50 p99".
wrk_figures() {
  wrk --latency "$@" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) } /^Requests\/sec/ { rps = $2 }
    END { printf "%.0f %.2f %.2f\n", rps, p50, p99 }'
}

read -r health_rps health_p50 health_p99 < <(wrk_figures -t2 -c10 -d"${duration}s" "$base/healthz")
page="$base/app/settings/superuser/worker"
read -r page10_rps page10_p50 page10_p99 < <(wrk_figures -t2 -c10 -d"${duration}s" -H "Cookie: $cookie" "$page")
read -r page1_rps page1_p50 page1_p99 < <(wrk_figures -t1 -c1 -d"${duration}s" -H "Cookie: $cookie" "$page")

# save_policy and run creation, timed one request at a time over one connection.
read -r save_median save_p99 runs_per_s < <(BASE="$base" COOKIE="$cookie" TOKEN="$token" python3 - <<'PY'
import http.client, json, os, statistics, time, urllib.parse
base = urllib.parse.urlparse(os.environ["BASE"])
conn = http.client.HTTPConnection(base.hostname, base.port)
def post(path, body, headers):
    conn.request("POST", path, body=body, headers=headers)
    res = conn.getresponse(); data = res.read()
    if res.status >= 400: raise SystemExit(f"bench: {path} answered {res.status}: {data[:200]!r}")
    return data
form = {"Cookie": os.environ["COOKIE"], "Content-Type": "application/x-www-form-urlencoded"}
times = []
for i in range(200):
    body = urllib.parse.urlencode({"key": "worker.claim_batch_size", "value": str(1 + i % 2), "expected_version": str(i), "reason": "bench"})
    start = time.perf_counter(); out = post("/api/save_policy", body, form); times.append((time.perf_counter() - start) * 1000)
    if "Saved" not in out.decode(): raise SystemExit(f"bench: save {i} did not save: {out[:200]!r}")
times.sort()
api = {"Authorization": "Bearer " + os.environ["TOKEN"], "Content-Type": "application/json"}
blocks = json.dumps({"blocks": [f"block {i}" for i in range(10)]})
start = time.perf_counter()
for _ in range(200):
    post("/api/v1/runs", blocks, api)
rate = 200 / (time.perf_counter() - start)
print(f"{statistics.median(times):.2f} {times[int(len(times) * 0.99) - 1]:.2f} {rate:.0f}")
PY
)

# A first visit to the signed-in settings page: the page and every file it names, compressed
# as a browser accepts them.
first_visit=$(curl -s -H "Cookie: $cookie" -H 'Accept-Encoding: br, gzip' -o /dev/null -w '%{size_download}' "$page")
for path in $(curl -s -H "Cookie: $cookie" "$page" | grep -o '/pkg/[^"]*' | sort -u) /favicon.svg; do
  n=$(curl -s -H 'Accept-Encoding: br, gzip' -o /dev/null -w '%{size_download}' "$base$path")
  first_visit=$((first_visit + n))
done

# Database queries behind one signed-in settings page (after a first visit), counted from the
# statement log of a second server on the same database.
kill $server 2>/dev/null || true
wait $server 2>/dev/null || true
RUST_LOG=warn,sqlx::query=debug LEPTOS_SITE_ADDR="127.0.0.1:$port" "$bin" serve >"$tmp/queries.log" 2>&1 &
server=$!
up=false
for _ in $(seq 1 100); do curl -fs "$base/healthz" >/dev/null 2>&1 && { up=true; break; }; sleep 0.1; done
$up || { echo "bench: the server did not start again:" >&2; cat "$tmp/queries.log" >&2; exit 1; }
curl -s -o /dev/null -H "Cookie: $cookie" "$page"
sleep 0.5
# The least of three loads: the server's own background work (heartbeat, webhook outbox) also
# logs statements, and one of them can fall inside a window.
queries=""
for _ in 1 2 3; do
  before=$(grep -c 'sqlx::query' "$tmp/queries.log" || true)
  curl -s -o /dev/null -H "Cookie: $cookie" "$page"
  sleep 0.5
  n=$(( $(grep -c 'sqlx::query' "$tmp/queries.log" || true) - before ))
  if [ -z "$queries" ] || [ "$n" -lt "$queries" ]; then queries=$n; fi
done

ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
cat <<EOF
runtime-policy benchmark ($(nproc) cores, server and load generator on one machine, ${duration}s per wrk run)
/healthz, 10 connections:              $health_rps req/s, p50 $health_p50 ms, p99 $health_p99 ms
settings page, 10 connections:         $page10_rps req/s, p50 $page10_p50 ms, p99 $page10_p99 ms ($(ratio "$page10_rps" "$health_rps") of /healthz)
settings page, 1 connection:           $page1_rps req/s, p50 $page1_p50 ms, p99 $page1_p99 ms
save_policy (200 audited changes):     median $save_median ms, p99 $save_p99 ms
run creation (10 blocks, worker API):  $runs_per_s runs/s
first visit, settings page (br/gzip): $first_visit bytes
queries per signed-in settings page:   $queries
EOF
