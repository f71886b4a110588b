#!/usr/bin/env bash
# Bundler fetch: `airlock bundle lock` + `bundle create` (cold content cache) from a local
# docker-registry, against `skopeo copy docker://… oci:…` of the same images, in the same run.
# Then the bytes a delta saves when one layer of one image in the set changes.
#   fetch:  airlock lock + create (fetch, verify, pack)  vs  skopeo copy of every image  (target: ratio <= 1.00)
#   warm:   airlock create again with the cache warm (downloads nothing)
# Usage: bench/fetch.sh [AIRLOCK-BINARY]   (default target/release/airlock)
# Env: BENCH_DIR (work folder, default a new temp dir), IMAGES (default 4), LAYER_MB (default 48),
#      RUNS (default 3; the median is kept).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
airlock=${1:-$here/target/release/airlock}
images=${IMAGES:-4}
layer_mb=${LAYER_MB:-48}
runs=${RUNS:-3}
work=${BENCH_DIR:-$(mktemp -d -t airlock-fetch-bench.XXXXXX)}
[[ -x "$airlock" ]] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v docker-registry >/dev/null && command -v skopeo >/dev/null || { echo "needs docker-registry and skopeo (scripts/install-deps.sh)" >&2; exit 1; }

source "$here/bench/common.sh"
registry_pid=""
cleanup() { [[ -n "$registry_pid" ]] && { kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; }; [[ -z "${BENCH_DIR:-}" ]] && rm -rf "$work"; true; }
trap cleanup EXIT
start_docker_registry "$work"
port=${registry_addr##*:}

# One OCI layout per image: a base layer shared by all images, then two layers of its own.
# Layers are half real files (compressible), half random.
make_image() { # NAME TAG SEED_FOR_LAST_LAYER
  local layout="$work/layouts/$1-$2" descs=() sum size
  mkdir -p "$layout/blobs/sha256"
  add() { sum=$(sha256sum "$1" | cut -d' ' -f1); size=$(stat -c %s "$1"); mv "$1" "$layout/blobs/sha256/$sum"
          descs+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:$sum\",\"size\":$size}"); }
  cp "$work/shared.tar" "$work/l0"; add "$work/l0"
  # The middle layer is the same in every version of an image; only the last one changes.
  [[ -f "$work/mid-$1" ]] || { head -c $((layer_mb << 19)) "$work/usr.tar"; head -c $((layer_mb << 19)) /dev/urandom; } > "$work/mid-$1"
  cp "$work/mid-$1" "$work/l1"; add "$work/l1"
  { echo "$3"; head -c $((layer_mb << 20)) /dev/urandom; } > "$work/l2"; add "$work/l2"
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' > "$work/c"
  local config_sum config_size; config_sum=$(sha256sum "$work/c" | cut -d' ' -f1); config_size=$(stat -c %s "$work/c"); mv "$work/c" "$layout/blobs/sha256/$config_sum"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
    "$config_sum" "$config_size" "$(IFS=,; echo "${descs[*]}")" > "$work/m"
  local m_sum m_size; m_sum=$(sha256sum "$work/m" | cut -d' ' -f1); m_size=$(stat -c %s "$work/m"); mv "$work/m" "$layout/blobs/sha256/$m_sum"
  printf '{"imageLayoutVersion":"1.0.0"}' > "$layout/oci-layout"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
    "$m_sum" "$m_size" "$2" > "$layout/index.json"
  skopeo copy -q --preserve-digests --dest-tls-verify=false "oci:$layout:$2" "docker://127.0.0.1:$port/bench/$1:$2"
}

echo "generating $images images in $work ..." >&2
tar -cf - /usr/lib /usr/share 2>/dev/null | head -c $((layer_mb << 20)) > "$work/usr.tar" || true
cp "$work/usr.tar" "$work/shared.tar"
for i in $(seq "$images"); do make_image "img$i" v1 "seed-$i"; done

manifest() { # FILE TAG-OF-IMAGE-1
  { printf '[bundle]\nname = "bench"\nchannel = "bench"\n'
    for i in $(seq "$images"); do
      local tag=v1; [[ $i -eq 1 ]] && tag=$2
      printf '\n[[image]]\nname = "bench/img%s"\ntag = "v1"\nsource = "registry:127.0.0.1:%s/bench/img%s:%s"\nbase_url = "http://127.0.0.1:%s"\n' "$i" "$port" "$i" "$tag" "$port"
    done; } > "$1"
}
manifest "$work/bench.toml" v1
"$airlock" keygen --out "$work/key" --force >/dev/null
input_bytes=$(du -sb "$work/registry" | cut -f1)

time_cmd() { # median wall time of RUNS runs of CMD, running CLEANUP before each
  local cmd=$1 cleanup=$2 times=()
  for _ in $(seq "$runs"); do
    eval "$cleanup"; sync
    local start end; start=$(date +%s.%N); eval "$cmd" >/dev/null 2>&1; end=$(date +%s.%N)
    times+=("$(awk "BEGIN { print $end - $start }")")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p"
}
create="'$airlock' bundle create --manifest '$work/bench.toml' --key '$work/key.key' --out '$work/bench.airlock.tar.zst' --cache-dir '$work/cache' --created 2026-01-01T00:00:00Z --sequence 1 --jobs 4"
ours=$(time_cmd "'$airlock' bundle lock --manifest '$work/bench.toml' --cache-dir '$work/cache' && $create" "rm -rf '$work/cache' '$work/bench.lock'")
copies=""
for i in $(seq "$images"); do copies+="skopeo copy -q --src-tls-verify=false docker://127.0.0.1:$port/bench/img$i:v1 oci:$work/skopeo:img$i && "; done
base=$(time_cmd "${copies}true" "rm -rf '$work/skopeo'")
warm=$(time_cmd "$create" "true")

# Delta: image 1 gets a new last layer; everything else is unchanged.
make_image img1 v2 "changed"
manifest "$work/bench2.toml" v2
"$airlock" bundle create --manifest "$work/bench2.toml" --key "$work/key.key" --out "$work/full2.airlock.tar.zst" --cache-dir "$work/cache" --created 2026-01-02T00:00:00Z --sequence 2 >/dev/null
"$airlock" bundle create --manifest "$work/bench2.toml" --key "$work/key.key" --out "$work/delta2.airlock.tar.zst" --cache-dir "$work/cache" --created 2026-01-02T00:00:00Z --sequence 2 --base "$work/bench.airlock-bundle.json" >/dev/null
full_size=$(stat -c %s "$work/full2.airlock.tar.zst"); delta_size=$(stat -c %s "$work/delta2.airlock.tar.zst")

cat <<REPORT
input: $images images ($((3 * images)) layers of about $layer_mb MiB, one shared), $input_bytes bytes in the registry; $(nproc) cores; median of $runs runs
                           airlock    baseline   ratio (airlock/baseline; < 1 is faster)
fetch, cold cache (s)      $(printf '%-10.2f %-10.2f' "$ours" "$base") $(ratio "$ours" "$base")   target <= 1.00   airlock: lock + create (fetch, verify, pack); baseline: skopeo copy docker:// oci: per image
create, warm cache (s)     $(printf '%-10.2f' "$warm")            (downloads nothing)
delta, one layer changed   full $full_size bytes, delta $delta_size bytes: saves $((full_size - delta_size)) bytes ($(awk "BEGIN { printf \"%.0f\", 100 * ($full_size - $delta_size) / $full_size }")%)
REPORT
