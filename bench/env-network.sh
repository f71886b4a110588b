#!/usr/bin/env bash
# An environment's network against the host's, in one run on this machine (as root): a TCP
# server in a network namespace standing for the site (veth to the host, routed), reached
#   from an environment   its own namespace, veth, the runner's bridge, the nftables policy
#                         (allow-list lookup, conntrack) and masquerading
#   from the host         the host's namespace, routed straight to the veth
#   throughput            one connection reading MIB MiB (median of RUNS)
#   latency               1-byte request/response round trips (median of 200 x RUNS)
# Usage: bench/env-network.sh     Env: MIB (default 256), RUNS (default 5), PROFILE (release), NO_BUILD (use the built harness), BENCH_DIR, CARGO_TARGET_DIR.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
mib=${MIB:-256}
runs=${RUNS:-5}
[[ $(id -u) -eq 0 ]] || { echo "run as root: environments need namespaces, veths and nftables" >&2; exit 1; }
for tool in runc docker-registry skopeo busybox ip nft curl python3; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: scripts/install-deps.sh" >&2; exit 1; }
done

# PROFILE=dev measures with the debug build of the harness (the path measured is the kernel's;
# both sides use the same harness), to skip a release build of the whole dependency tree.
profile=${PROFILE:-release}
[[ $profile == dev ]] && outdir=debug || outdir=$profile
perf=${CARGO_TARGET_DIR:-$here/target}/$outdir/examples/engine_perf
if [[ -z "${NO_BUILD:-}" ]]; then
  echo "building ($profile) ..." >&2
  (cd "$here" && cargo build --profile "$profile" --quiet -p airlock-runner --example engine_perf)
fi

work=${BENCH_DIR:-$(mktemp -d -t airlock-net-bench.XXXXXX)}
chmod 711 "$work"
registry_pid=""
cleanup() {
  [[ -n "$registry_pid" ]] && kill "$registry_pid" 2>/dev/null
  for id in $(runc --root "$work/data/runc" list -q 2>/dev/null); do runc --root "$work/data/runc" delete --force "$id" >/dev/null 2>&1 || true; done
  awk -v w="$work/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
  ip netns del albench0-env_netbench 2>/dev/null || true
  ip link del albench0 2>/dev/null || true
  nft delete table inet albench0 2>/dev/null || true
  nft delete table bridge albench0 2>/dev/null || true
  [[ -z "${BENCH_DIR:-}" ]] && rm -rf "$work"
  true
}
trap cleanup EXIT

source "$here/bench/common.sh"
start_docker_registry "$work"
addr=$registry_addr
"$perf" layout "$work/layout"
skopeo copy --quiet --dest-tls-verify=false "oci:$work/layout:1" "docker://$addr/devcontainers/bench:1"

echo "measuring ($runs runs of $mib MiB) ..." >&2
result=$("$perf" net --data "$work/data" --image "$addr/devcontainers/bench:1" --plain-http "$addr" --mib "$mib" --runs "$runs" | grep '^RESULT')
read -r _ _ env_tp host_tp env_lat host_lat <<<"$result"
cat <<REPORT
environment network vs host, $(nproc) cores, $mib MiB x $runs runs
                        environment   host        ratio (environment/host)
throughput (MiB/s)      $(printf '%-13s %-11s' "$env_tp" "$host_tp") $(ratio "$env_tp" "$host_tp")
latency, round trip (ms) $(printf '%-12s %-11s' "$env_lat" "$host_lat") $(ratio "$env_lat" "$host_lat")
REPORT
