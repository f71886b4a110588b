#!/usr/bin/env bash
# Builds the local content that offline-manifests/sample.toml names, with no network:
#   layouts/base   an OCI image layout holding a tiny busybox image, ref name `tiny`
#   dist/airlock   a release file (a copy of the airlock binary given as $2, or busybox)
# Usage: build-sample-content.sh OUTDIR [RELEASE-FILE]
# Deterministic: the same busybox gives the same digests.
set -euo pipefail

out=${1:?usage: build-sample-content.sh OUTDIR [RELEASE-FILE]}
release=${2:-}
# The image has no libc, so its busybox must be the static one.
busybox=/bin/busybox
if [[ ! -x "$busybox" ]] || [[ "$(ldd "$busybox" 2>&1)" != *"not a dynamic executable"* ]]; then
  echo "a static /bin/busybox is needed: install the Debian package busybox-static" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rootfs/bin" "$work/rootfs/tmp" "$work/rootfs/root" "$work/rootfs/etc"
cp "$busybox" "$work/rootfs/bin/busybox"
for applet in sh ls cat echo id ps ip mkdir rm sleep env uname hostname wc head tail grep sed true false ln touch chmod; do
  ln -s busybox "$work/rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$work/rootfs/etc/passwd"
printf 'root:x:0:\n' > "$work/rootfs/etc/group"

layout="$out/layouts/base"
rm -rf "$layout"
mkdir -p "$layout/blobs/sha256"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=posix \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  -cf "$work/layer.tar" -C "$work/rootfs" .

put_blob() { # FILE -> prints "digest size"
  local sum size
  sum=$(sha256sum "$1" | cut -d' ' -f1)
  size=$(stat -c %s "$1")
  cp "$1" "$layout/blobs/sha256/$sum"
  echo "$sum $size"
}

read -r layer_sum layer_size < <(put_blob "$work/layer.tar")
printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["/bin/sh"],"WorkingDir":"/root"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"airlock build-sample-content.sh"}]}' \
  "$layer_sum" > "$work/config.json"
read -r config_sum config_size < <(put_blob "$work/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
  "$config_sum" "$config_size" "$layer_sum" "$layer_size" > "$work/manifest.json"
read -r manifest_sum manifest_size < <(put_blob "$work/manifest.json")
printf '{"imageLayoutVersion":"1.0.0"}' > "$layout/oci-layout"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"org.opencontainers.image.ref.name":"tiny"}}]}' \
  "$manifest_sum" "$manifest_size" > "$layout/index.json"

mkdir -p "$out/dist"
cp "${release:-$busybox}" "$out/dist/airlock"
echo "sample content in $out: layouts/base (image sha256:$manifest_sum), dist/airlock"
