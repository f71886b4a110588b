#!/usr/bin/env bash
# The mirror against Debian's docker-registry (CNCF distribution) serving the same content,
# side by side in one run, and import against the tools a site would otherwise use:
#   blob GET throughput     wrk -c4  on the largest blob        (target: >= 1.5x distribution)
#     and the servers' own CPU time per MiB sent during that run (on 2 cores wrk saturates
#     before either server does, so throughput alone hides what serving costs)
#   manifest GET requests/s wrk -c64 on the image manifest      (target: >= 1.5x distribution)
#   import                  airlock mirror import  vs  zstd -dc | tar -x, then sha256sum
#                                                               (target: faster)
# Usage: bench/mirror.sh [AIRLOCK-BINARY]   (default target/release/airlock)
# Env: BENCH_DIR, RUNS (import runs, default 3), SIZE_MIB (default 1024), DURATION (wrk, 10s).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
airlock=${1:-$here/target/release/airlock}
runs=${RUNS:-3}
duration=${DURATION:-10s}
work=${BENCH_DIR:-$(mktemp -d -t airlock-bench.XXXXXX)}
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [[ -z "${BENCH_DIR:-}" ]] && rm -rf "$work"
}
trap cleanup EXIT
[[ -x "$airlock" ]] || { echo "build first: cargo build --release" >&2; exit 1; }
for tool in wrk docker-registry zstd; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install $tool" >&2; exit 1; }
done
source "$here/bench/common.sh"

echo "generating the input set in $work ..." >&2
"$here/bench/make-input.sh" "$work" "${SIZE_MIB:-1024}"
"$airlock" keygen --out "$work/key" --force >/dev/null
"$airlock" bundle create --manifest "$work/bench.toml" --key "$work/key.key" --out "$work/bench.airlock.tar.zst" >/dev/null

# Import: our one pass against decompress-and-extract followed by hashing every blob.
ours_import=$(time_cmd "'$airlock' mirror import '$work/bench.airlock.tar.zst' --trusted-key '$work/key.pub' --data-dir '$work/m'" "rm -rf '$work/m'")
base_import=$(time_cmd "mkdir -p '$work/x' && zstd -dc '$work/bench.airlock.tar.zst' | tar -xf - -C '$work/x' && find '$work/x/blobs' -type f -print0 | xargs -0 sha256sum" "rm -rf '$work/x'")

# Serve the same content from both.
"$airlock" mirror import "$work/bench.airlock.tar.zst" --trusted-key "$work/key.pub" --data-dir "$work/m" >/dev/null
"$airlock" mirror serve --data-dir "$work/m" --listen 127.0.0.1:0 > "$work/serve.out" 2>/dev/null &
pids+=($!)
mirror_pid=$!
start_docker_registry "$work"
pids+=("$registry_pid")
for _ in $(seq 100); do
  grep -q listening "$work/serve.out" 2>/dev/null && break
  sleep 0.1
done
mirror_addr=$(sed -n 's|.*http://||p' "$work/serve.out" | sed -n 1p)
"$airlock" mirror push --to "http://$registry_addr" --data-dir "$work/m" >/dev/null

manifest_type=application/vnd.oci.image.manifest.v1+json
largest=$(ls -S "$work/layout/blobs/sha256" | sed -n 1p)
cat > "$work/report.lua" <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d\n", summary.requests, summary.bytes, summary.duration,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout))
end
LUA
# wrk → "requests bytes duration_us errors"
measure() { # ADDR PATH CONNECTIONS
  wrk -t2 -c"$3" -d"$duration" -s "$work/report.lua" -H "Accept: $manifest_type" "http://$1$2" | sed -n 's/^RESULT //p'
}
# CPU seconds (user + system) a process has used so far.
cpu_seconds() { awk -v tck="$(getconf CLK_TCK)" '{ print ($14 + $15) / tck }' "/proc/$1/stat"; }
blob_path="/v2/bench/set/blobs/sha256:$largest"
manifest_path="/v2/bench/set/manifests/v1"
ours_cpu0=$(cpu_seconds "$mirror_pid")
read -r _ ours_blob_bytes ours_blob_us ours_blob_err < <(measure "$mirror_addr" "$blob_path" 4)
ours_cpu=$(awk "BEGIN { print $(cpu_seconds "$mirror_pid") - $ours_cpu0 }")
base_cpu0=$(cpu_seconds "$registry_pid")
read -r _ base_blob_bytes base_blob_us base_blob_err < <(measure "$registry_addr" "$blob_path" 4)
base_cpu=$(awk "BEGIN { print $(cpu_seconds "$registry_pid") - $base_cpu0 }")
read -r ours_req _ ours_req_us ours_req_err < <(measure "$mirror_addr" "$manifest_path" 64)
read -r base_req _ base_req_us base_req_err < <(measure "$registry_addr" "$manifest_path" 64)

mib_s() { awk "BEGIN { printf \"%.0f\", $1 / 1048576 / ($2 / 1e6) }"; }
per_s() { awk "BEGIN { printf \"%.0f\", $1 / ($2 / 1e6) }"; }
ours_tp=$(mib_s "$ours_blob_bytes" "$ours_blob_us"); base_tp=$(mib_s "$base_blob_bytes" "$base_blob_us")
ours_rps=$(per_s "$ours_req" "$ours_req_us"); base_rps=$(per_s "$base_req" "$base_req_us")
per_cpu() { awk "BEGIN { printf \"%.0f\", $1 / 1048576 / $2 }"; }
ours_eff=$(per_cpu "$ours_blob_bytes" "$ours_cpu"); base_eff=$(per_cpu "$base_blob_bytes" "$base_cpu")
cat <<REPORT
input: $(du -sb "$work/layout" | cut -f1) bytes; largest blob $(stat -c %s "$work/layout/blobs/sha256/$largest") bytes; $(nproc) cores; wrk $duration
                             airlock    baseline   ratio (airlock/baseline)
blob GET (MiB/s, c=4)        $(printf '%-10s %-10s' "$ours_tp" "$base_tp") $(ratio "$ours_tp" "$base_tp")   target >= 1.50   baseline: docker-registry $(docker-registry --version 2>/dev/null | awk '{print $3}')
blob GET (MiB per server CPU-s) $(printf '%-7s %-10s' "$ours_eff" "$base_eff") $(ratio "$ours_eff" "$base_eff")   (server CPU: $ours_cpu s / $base_cpu s)
manifest GET (req/s, c=64)   $(printf '%-10s %-10s' "$ours_rps" "$base_rps") $(ratio "$ours_rps" "$base_rps")   target >= 1.50
import (s, median of $runs)     $(printf '%-10.2f %-10.2f' "$ours_import" "$base_import") $(ratio "$ours_import" "$base_import")   target <  1.00   baseline: zstd -dc | tar -x; sha256sum every blob
errors (airlock/baseline)    blob $ours_blob_err/$base_blob_err, manifest $ours_req_err/$base_req_err
REPORT
