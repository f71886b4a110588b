#!/usr/bin/env bash
# The connected side's main job, end to end on this machine with no network:
# make a signing key, build the sample content, pack a signed bundle, verify and inspect it,
# then import it into a mirror and pull its image back out with skopeo.
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
"$airlock" bundle sample --out "$work/content"

step "3. pack the signed bundle"
"$airlock" bundle create --manifest "$work/content/sample.toml" --key "$work/release.key" \
  --out "$work/sample.airlock.tar.zst" --expires 30d

step "4. verify it as the air-gapped side will: signature, then every byte, in one pass"
"$airlock" bundle verify "$work/sample.airlock.tar.zst" --trusted-key "$work/release.pub"

step "5. inspect it (reads only the head of the file)"
"$airlock" bundle inspect "$work/sample.airlock.tar.zst" --trusted-key "$work/release.pub"

step "6. the stock minisign tool agrees"
"$airlock" bundle manifest "$work/sample.airlock.tar.zst" > "$work/check.json"
tar --zstd -xOf "$work/sample.airlock.tar.zst" airlock-bundle.json.minisig > "$work/check.json.minisig"
minisign -Vm "$work/check.json" -p "$work/release.pub" -x "$work/check.json.minisig"

step "7. air-gapped side: import it into a mirror (verified while it streams in, committed atomically)"
"$airlock" mirror import "$work/sample.airlock.tar.zst" --trusted-key "$work/release.pub" --data-dir "$work"
"$airlock" mirror ls --data-dir "$work"

step "8. serve it, and pull the image with an unmodified client (skopeo)"
"$airlock" mirror serve --data-dir "$work" --listen 127.0.0.1:0 > "$work/serve.out" 2> "$work/serve.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
addr=$(sed -n 's|.*http://||p' "$work/serve.out" | head -n1)
[[ -n "$addr" ]] || { echo "the mirror did not start; see $work/serve.log" >&2; exit 1; }
skopeo inspect --tls-verify=false "docker://$addr/devcontainers/base:tiny" | head -n 4
echo "..."

step "9. the history says who imported what, when, signed by whom"
"$airlock" mirror history --data-dir "$work"
kill $server; wait $server 2>/dev/null || true

cat <<DONE

Done. Everything is in $work:
  sample.airlock.tar.zst       the bundle to carry across the gap
  sample.airlock-bundle.json   its manifest, kept as the base of the next delta
  release.pub                  the key the mirror must trust (release.key stays here)
  mirror/                      the air-gapped mirror's data (serve it: airlock mirror serve --data-dir $work)
DONE
