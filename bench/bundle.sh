#!/usr/bin/env bash
# Bundle create and verify against the tools a site would otherwise use, on one generated
# set of about 2 GiB (half compressible, half random; a few large blobs and many small ones).
#   create:  airlock bundle create      vs  tar -c | zstd -T0        (target: within 1.1x)
#   verify:  airlock bundle verify      vs  zstd -dc | tar -x, then sha256sum of every blob
#                                           (target: faster: one pass against two)
# Usage: bench/bundle.sh [AIRLOCK-BINARY]   (default target/release/airlock)
# Env: BENCH_DIR (work folder, default a new temp dir), RUNS (default 3; the median is kept).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
airlock=${1:-$here/target/release/airlock}
runs=${RUNS:-3}
work=${BENCH_DIR:-$(mktemp -d -t airlock-bench.XXXXXX)}
trap '[[ -z "${BENCH_DIR:-}" ]] && rm -rf "$work"' EXIT
[[ -x "$airlock" ]] || { echo "build first: cargo build --release" >&2; exit 1; }

layout="$work/layout"
echo "generating the input set in $work ..." >&2
"$here/bench/make-input.sh" "$work"
"$airlock" keygen --out "$work/key" --force >/dev/null
input_bytes=$(du -sb "$layout" | cut -f1)
blob_count=$(ls "$layout/blobs/sha256" | wc -l)

source "$here/bench/common.sh"

ours_create=$(time_cmd "'$airlock' bundle create --manifest '$work/bench.toml' --key '$work/key.key' --out '$work/bench.airlock.tar.zst' --created 2026-01-01T00:00:00Z")
base_create=$(time_cmd "tar -cf - -C '$layout' . | zstd -T0 -3 -q -f -o '$work/baseline.tar.zst'")
# airlock fsyncs the bundle before renaming it into place; the same durability for the baseline:
synced_create=$(time_cmd "tar -cf - -C '$layout' . | zstd -T0 -3 -q -f -o '$work/baseline.tar.zst' && sync '$work/baseline.tar.zst'")
ours_verify=$(time_cmd "'$airlock' bundle verify '$work/bench.airlock.tar.zst' --trusted-key '$work/key.pub'")
base_verify=$(time_cmd "mkdir -p '$work/x' && zstd -dc '$work/bench.airlock.tar.zst' | tar -xf - -C '$work/x' && find '$work/x/blobs' -type f -print0 | xargs -0 sha256sum" "rm -rf '$work/x'")

ours_size=$(stat -c %s "$work/bench.airlock.tar.zst"); base_size=$(stat -c %s "$work/baseline.tar.zst")
cat <<REPORT
input: $input_bytes bytes in $blob_count blobs (half compressible, half random); $(nproc) cores; median of $runs runs
                       airlock    baseline   ratio (airlock/baseline; < 1 is faster)
create (s)             $(printf '%-10.2f %-10.2f' "$ours_create" "$base_create") $(ratio "$ours_create" "$base_create")   target <= 1.10   baseline: tar -c | zstd -T0 -3
create, both durable   $(printf '%-10.2f %-10.2f' "$ours_create" "$synced_create") $(ratio "$ours_create" "$synced_create")                    baseline: the same, then sync FILE
verify (s)             $(printf '%-10.2f %-10.2f' "$ours_verify" "$base_verify") $(ratio "$ours_verify" "$base_verify")   target <  1.00   baseline: zstd -dc | tar -x; sha256sum every blob
output size (bytes)    $ours_size $base_size
REPORT
