#!/usr/bin/env bash
# Generates a benchmark input: an OCI image layout whose layers are half compressible
# (real files from this machine, as container layers hold) and half random, two large
# blobs and many small ones of each, plus an offline manifest `bench.toml` naming it.
# Usage: bench/make-input.sh DIR [TOTAL_MIB]   (default 1850, about 2 GiB)
set -euo pipefail

work=${1:?usage: make-input.sh DIR [TOTAL_MIB]}
total=${2:-1850}
half=$((total / 2))
large=$((half * 43 / 100))       # two large blobs per half, the rest in 160 KiB pieces
small=$((half - 2 * large))
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

tar -cf - /usr/lib /usr/share /usr/bin 2>/dev/null | head -c $((half << 20)) > "$work/usr.tar" || true
dd if="$work/usr.tar" of="$work/c-large-1" bs=1M count=$large status=none
dd if="$work/usr.tar" of="$work/c-large-2" bs=1M skip=$large count=$large status=none
dd if="$work/usr.tar" bs=1M skip=$((2 * large)) status=none | split -b $((160 << 10)) -a 4 - "$work/c-small-"
rm "$work/usr.tar"
head -c $((large << 20)) /dev/urandom > "$work/r-large-1"
head -c $((large << 20)) /dev/urandom > "$work/r-large-2"
head -c $((small << 20)) /dev/urandom | split -b $((160 << 10)) -a 4 - "$work/r-small-"
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
