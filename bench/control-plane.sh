#!/usr/bin/env bash
# Control plane throughput and latency with wrk at 64 connections, against a release build
# on this machine (server and wrk share the cores):
#   read:   authenticated GET /api/v1/environments/{id}   (target on 2 cores: 5,000 req/s, p99 < 20 ms)
#   write:  authenticated POST /api/v1/environments      (create: scheduler, policy, audit record,
#                                                          flushed to disk before the answer)
# Usage: bench/control-plane.sh [AIRLOCK-BINARY]   (default target/release/airlock)
# Env: DURATION (seconds per run, default 10), CONNECTIONS (default 64), THREADS (wrk, default 2).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
airlock=${1:-$here/target/release/airlock}
duration=${DURATION:-10}
connections=${CONNECTIONS:-64}
threads=${THREADS:-2}
[[ -x "$airlock" ]] || { echo "build first: cargo build --release" >&2; exit 1; }
for tool in wrk curl jq; do
  if ! command -v "$tool" >/dev/null; then
    [[ $(id -u) -eq 0 ]] || { echo "error: $tool is missing: apt-get install $tool" >&2; exit 1; }
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 && apt-get install -y -qq "$tool" >&2
  fi
done

work=$(mktemp -d -t airlock-cp-bench.XXXXXX)
server=""
cleanup() { [[ -n "$server" ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$airlock" control-plane gen-kek --out "$work/kek" 2>/dev/null
token=$("$airlock" admin init --data-dir "$work/data" --org bench --owner bench@site.internal 2>/dev/null)
"$airlock" control-plane serve --listen 127.0.0.1:0 --data-dir "$work/data" --kek-file "$work/kek" >"$work/serve.out" 2>"$work/serve.log" &
server=$!
for _ in $(seq 50); do grep -q "listening on" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$work/serve.out")
[[ -n "$url" ]] || { cat "$work/serve.log" >&2; exit 1; }

api() { # METHOD PATH [BODY] [TOKEN]
  curl -sf -X "$1" "$url$2" -H "authorization: Bearer ${4:-$token}" -H 'content-type: application/json' ${3:+-d "$3"}
}
org=$(api GET /api/v1/auth/whoami | jq -r .org.id)
api PATCH "/api/v1/orgs/$org" '{"policy":{"max_running_environments_per_user":100000}}' >/dev/null
class=$(api POST /api/v1/classes '{"name":"small","resources":{"cpu_millis":2000,"memory_mib":4096,"disk_gib":20,"pids":1024}}' | jq -r .id)
project=$(api POST /api/v1/projects "{\"name\":\"bench\",\"repository_url\":\"https://git.internal/bench.git\",\"image\":\"mirror.internal/dev/base:1\",\"class_id\":\"$class\"}" | jq -r .id)
exchange=$(api POST /api/v1/runners '{"name":"bench-runner","capacity":100000}' | jq -r .exchange_token)
credential=$(curl -sf -X POST "$url/api/v1/runner/exchange" -H 'content-type: application/json' -d "{\"exchange_token\":\"$exchange\"}" | jq -r .credential)
api POST /api/v1/runner/heartbeat '{"status":"active"}' "$credential" >/dev/null
env=$(api POST /api/v1/environments "{\"project_id\":\"$project\"}" | jq -r .id)

# wrk prints percentiles in us/ms/s; report milliseconds.
ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/, "", v); print v/1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v); print v } else { sub(/s$/, "", v); print v*1000 } }'; }
report() { # NAME WRK-OUTPUT
  local rps p50 p99 errors
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$2")
  p50=$(ms "$(awk '$1 == "50%" {print $2}' <<<"$2")")
  p99=$(ms "$(awk '$1 == "99%" {print $2}' <<<"$2")")
  errors=$(awk '/Non-2xx/ {print $NF}' <<<"$2")
  printf '%-34s %10.0f req/s   p50 %6.2f ms   p99 %6.2f ms   non-2xx %s\n' "$1" "$rps" "$p50" "$p99" "${errors:-0}"
}

cat >"$work/create.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"project_id":"$project"}'
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer $token"
LUA

echo "control plane at $url; wrk -t$threads -c$connections -d${duration}s; $(nproc) cores" >&2
read_out=$(wrk -t"$threads" -c"$connections" -d"${duration}s" --latency -H "authorization: Bearer $token" "$url/api/v1/environments/$env")
api POST /api/v1/runner/heartbeat '{"status":"active"}' "$credential" >/dev/null
write_out=$(wrk -t"$threads" -c"$connections" -d"${duration}s" --latency -s "$work/create.lua" "$url/api/v1/environments")
report "GET /api/v1/environments/{id}" "$read_out"
report "POST /api/v1/environments" "$write_out"
created=$(api GET "/api/v1/runners?limit=1" | jq -r '.items[0].environments')
audit=$(api GET "/api/v1/audit/verify" | jq -r '"\(.records) records, chain ok: \(.ok)"')
echo "environments on the runner: $created; audit: $audit" >&2
