#!/usr/bin/env bash
# The connected side's main job, end to end on this machine with no network:
# make a signing key, build the sample content, pack a signed bundle, verify it, inspect it.
# Usage: scripts/demo.sh [AIRLOCK-BINARY] [WORKDIR]
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
airlock=${1:-$here/target/release/airlock}
work=${2:-$(mktemp -d -t airlock-demo.XXXXXX)}
mkdir -p "$work"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "1. a signing key (minisign format): $work/release.key, $work/release.pub"
"$airlock" keygen --out "$work/release" --force

step "2. sample content, built locally: a busybox image in an OCI layout and a release file"
cp "$here/offline-manifests/sample.toml" "$work/sample.toml"
"$here/offline-manifests/build-sample-content.sh" "$work" "$airlock"

step "3. pack the signed bundle"
"$airlock" bundle create --manifest "$work/sample.toml" --key "$work/release.key" \
  --out "$work/sample.airlock.tar.zst" --expires 30d

step "4. verify it as the air-gapped side will: signature, then every byte, in one pass"
"$airlock" bundle verify "$work/sample.airlock.tar.zst" --trusted-key "$work/release.pub"

step "5. inspect it (reads only the head of the file)"
"$airlock" bundle inspect "$work/sample.airlock.tar.zst" --trusted-key "$work/release.pub"

step "6. the stock minisign tool agrees"
"$airlock" bundle manifest "$work/sample.airlock.tar.zst" > "$work/check.json"
tar --zstd -xOf "$work/sample.airlock.tar.zst" airlock-bundle.json.minisig > "$work/check.json.minisig"
minisign -Vm "$work/check.json" -p "$work/release.pub" -x "$work/check.json.minisig"

cat <<DONE

Done. Everything is in $work:
  sample.airlock.tar.zst       the bundle to carry across the gap
  sample.airlock-bundle.json   its manifest, kept as the base of the next delta
  release.pub                  the key the mirror must trust (release.key stays here)
DONE
