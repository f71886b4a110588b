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
mkdir -p "$layout/blobs/sha256"
descs=()
add_blob() { # FILE: moves it into the layout, records a layer descriptor
  local sum size
  sum=$(sha256sum "$1" | cut -d' ' -f1)
  size=$(stat -c %s "$1")
  mv "$1" "$layout/blobs/sha256/$sum"
  descs+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:$sum\",\"size\":$size}")
}

echo "generating the input set in $work ..." >&2
# Compressible: real files from this machine, as container layers hold.
tar -cf - /usr/lib /usr/share /usr/bin 2>/dev/null | head -c $((925 << 20)) > "$work/usr.tar" || true
head -c $((400 << 20)) "$work/usr.tar" > "$work/c-large-1"
tail -c +$(((400 << 20) + 1)) "$work/usr.tar" | head -c $((400 << 20)) > "$work/c-large-2"
tail -c +$(((800 << 20) + 1)) "$work/usr.tar" | split -b $((160 << 10)) -a 4 - "$work/c-small-"
rm "$work/usr.tar"
# Random: does not compress.
head -c $((400 << 20)) /dev/urandom > "$work/r-large-1"
head -c $((400 << 20)) /dev/urandom > "$work/r-large-2"
head -c $((125 << 20)) /dev/urandom | split -b $((160 << 10)) -a 4 - "$work/r-small-"
for f in "$work"/c-* "$work"/r-*; do add_blob "$f"; done

printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' > "$work/config"
config_sum=$(sha256sum "$work/config" | cut -d' ' -f1); config_size=$(stat -c %s "$work/config")
mv "$work/config" "$layout/blobs/sha256/$config_sum"
layers=$(IFS=,; echo "${descs[*]}")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
  "$config_sum" "$config_size" "$layers" > "$work/manifest"
manifest_sum=$(sha256sum "$work/manifest" | cut -d' ' -f1); manifest_size=$(stat -c %s "$work/manifest")
mv "$work/manifest" "$layout/blobs/sha256/$manifest_sum"
printf '{"imageLayoutVersion":"1.0.0"}' > "$layout/oci-layout"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"bench"}}]}' \
  "$manifest_sum" "$manifest_size" > "$layout/index.json"
cat > "$work/bench.toml" <<TOML
[bundle]
name = "bench"
channel = "bench"

[[image]]
name = "bench/set"
tag = "v1"
source = "oci-layout:./layout:bench"
TOML
"$airlock" keygen --out "$work/key" --force >/dev/null
input_bytes=$(du -sb "$layout" | cut -f1)
blob_count=$(ls "$layout/blobs/sha256" | wc -l)

# Median wall time of RUNS runs of a shell command, after one warm-up run.
time_cmd() {
  local cmd=$1 cleanup=${2:-true} times=()
  eval "$cmd" >/dev/null 2>&1; eval "$cleanup"
  for _ in $(seq "$runs"); do
    local start end
    start=$(date +%s.%N); eval "$cmd" >/dev/null 2>&1; end=$(date +%s.%N)
    eval "$cleanup"
    times+=("$(awk "BEGIN { print $end - $start }")")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p"
}

ours_create=$(time_cmd "'$airlock' bundle create --manifest '$work/bench.toml' --key '$work/key.key' --out '$work/bench.airlock.tar.zst' --created 2026-01-01T00:00:00Z")
base_create=$(time_cmd "tar -cf - -C '$layout' . | zstd -T0 -3 -q -f -o '$work/baseline.tar.zst'")
ours_verify=$(time_cmd "'$airlock' bundle verify '$work/bench.airlock.tar.zst' --trusted-key '$work/key.pub'")
base_verify=$(time_cmd "mkdir -p '$work/x' && zstd -dc '$work/bench.airlock.tar.zst' | tar -xf - -C '$work/x' && find '$work/x/blobs' -type f -print0 | xargs -0 sha256sum" "rm -rf '$work/x'")

ours_size=$(stat -c %s "$work/bench.airlock.tar.zst"); base_size=$(stat -c %s "$work/baseline.tar.zst")
ratio() { awk "BEGIN { printf \"%.2f\", $1 / $2 }"; }
cat <<REPORT
input: $input_bytes bytes in $blob_count blobs (half compressible, half random); $(nproc) cores; median of $runs runs
                       airlock    baseline   ratio (airlock/baseline; < 1 is faster)
create (s)             $(printf '%-10.2f %-10.2f' "$ours_create" "$base_create") $(ratio "$ours_create" "$base_create")   target <= 1.10   baseline: tar -c | zstd -T0 -3
verify (s)             $(printf '%-10.2f %-10.2f' "$ours_verify" "$base_verify") $(ratio "$ours_verify" "$base_verify")   target <  1.00   baseline: zstd -dc | tar -x; sha256sum every blob
output size (bytes)    $ours_size $base_size
REPORT
