#!/usr/bin/env bash
# Installs, with apt-get, the Debian packages airlock's demo and tests use, when missing.
# Usage: scripts/install-deps.sh [demo|test]
# In CI (CI=true) a prerequisite that cannot be installed is an error, never a skip.
set -euo pipefail

purpose=${1:-test}
# command-to-check:package
needs=(
  "minisign:minisign"
  "skopeo:skopeo"
  "docker-registry:docker-registry"
  "zstd:zstd"
  "tar:tar"
  "sha256sum:coreutils"
)
missing=()
for pair in "${needs[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
# The sample image needs the static busybox (the dynamic one cannot run in an image with no libc).
if [[ ! -x /bin/busybox ]] || [[ "$(ldd /bin/busybox 2>&1)" != *"not a dynamic executable"* ]]; then
  missing+=(busybox-static)
fi

if ((${#missing[@]})); then
  echo "installing for the $purpose: ${missing[*]}" >&2
  if [[ $(id -u) -ne 0 ]]; then
    echo "error: missing ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
