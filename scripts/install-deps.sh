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
  "curl:curl"
  "openssl:openssl"
  "node:nodejs"
  "npm:npm"
  "runc:runc"
  "ssh:openssh-client"
  "ssh-keygen:openssh-client"
  "sftp:openssh-client"
  # The SSH gateway's sftp tests run OpenSSH's SFTP server as an environment would.
  "/usr/lib/openssh/sftp-server:openssh-sftp-server"
  "git:git"
  # crates/airlock-runner/tests/git.rs: git http-backend under fcgiwrap behind nginx (HTTPS with
  # basic auth), and OpenSSH's sshd with git-shell, as the site's git servers (the demo's too).
  "/usr/sbin/fcgiwrap:fcgiwrap"
  "/usr/sbin/nginx:nginx-light"
  "/usr/sbin/sshd:openssh-server"
  "ip:iproute2"
  "unshare:util-linux"
  "nft:nftables"
  # tests/metrics.rs: `promtool check metrics` on every component's /metrics, and the alert rules.
  "promtool:prometheus"
  # tests/site_backup.rs: the backup key is made by age-keygen and the backup opened by age.
  "age:age"
  "age-keygen:age"
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

# ovsx (the Open VSX CLI, from npm) for the mirror's gallery test, in a project-local folder
# the tests look in (.tools/node). Pinned, so every machine runs the same client.
if [[ $purpose == test ]]; then
  ovsx_version=1.3.0
  tools="$(cd "$(dirname "$0")/.." && pwd)/.tools/node"
  if [[ ! -x "$tools/node_modules/.bin/ovsx" ]]; then
    echo "installing ovsx@$ovsx_version into $tools" >&2
    if ! npm install --prefix "$tools" --no-audit --no-fund --loglevel=error "ovsx@$ovsx_version" >&2; then
      echo "error: cannot install ovsx@$ovsx_version with npm into $tools; the mirror's ovsx test needs it" >&2
      exit 1
    fi
  fi
fi

# oidc-provider (node's certified OpenID Connect provider, from npm) for the control plane's
# single sign-on tests (crates/airlock-control-plane/tests/sso.rs), pinned, into .tools/node.
if [[ $purpose == test ]]; then
  oidc_version=9.13.3
  tools="$(cd "$(dirname "$0")/.." && pwd)/.tools/node"
  installed=$(node -p "require('$tools/node_modules/oidc-provider/package.json').version" 2>/dev/null || true)
  if [[ $installed != "$oidc_version" ]]; then
    echo "installing oidc-provider@$oidc_version into $tools" >&2
    if ! npm install --prefix "$tools" --no-audit --no-fund --loglevel=error "oidc-provider@$oidc_version" >&2; then
      echo "error: cannot install oidc-provider@$oidc_version with npm into $tools; the SSO tests need it" >&2
      exit 1
    fi
  fi
fi

# Independent validators for the accreditation package (tests/accreditation.rs runs
# scripts/validate-accreditation.py with this python): compliance-trestle (`trestle validate`,
# OSCAL), cyclonedx-python-lib's strict JSON validator (CycloneDX 1.6) and spdx-tools
# (`pyspdxtools`, SPDX 2.3), pinned, from PyPI into a project-local venv (.tools/venv).
if [[ $purpose == test ]]; then
  venv="$(cd "$(dirname "$0")/.." && pwd)/.tools/venv"
  py_pins=("compliance-trestle==5.2.0" "cyclonedx-python-lib[json-validation]==11.12.0" "spdx-tools==0.8.5")
  py_check='import importlib.metadata as m, sys
want = {"compliance-trestle": "5.2.0", "cyclonedx-python-lib": "11.12.0", "spdx-tools": "0.8.5", "jsonschema": None}
sys.exit(any(m.version(p) != v for p, v in want.items() if v) or not m.version("jsonschema"))'
  if ! "$venv/bin/python" -c "$py_check" 2>/dev/null; then
    echo "installing ${py_pins[*]} into $venv" >&2
    if ! python3 -c "import venv, ensurepip" 2>/dev/null; then
      if [[ $(id -u) -ne 0 ]]; then
        echo "error: python3 cannot make virtual environments; run as root or: sudo apt-get install python3-venv" >&2
        exit 1
      fi
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq >&2
      apt-get install -y -qq --no-install-recommends python3-venv >&2
    fi
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >&2 \
      || ! "$venv/bin/pip" install --quiet --disable-pip-version-check "${py_pins[@]}" >&2 \
      || ! "$venv/bin/python" -c "$py_check"; then
      echo "error: cannot install ${py_pins[*]} into $venv; the accreditation test needs them" >&2
      exit 1
    fi
  fi
fi

# Real Python packaging clients for the package-mirror tests (tests/packages.rs): uv (`uv pip
# compile --generate-hashes`, `uv pip install`) and build + setuptools + wheel to build the test
# wheels and sdist without network (`python -m build --no-isolation`), pinned, from PyPI into a
# project-local venv (.tools/pkg-venv). pip itself comes with the venv.
if [[ $purpose == test ]]; then
  pkg_venv="$(cd "$(dirname "$0")/.." && pwd)/.tools/pkg-venv"
  pkg_pins=("uv==0.8.22" "build==1.3.0" "setuptools==80.9.0" "wheel==0.45.1")
  pkg_check='import importlib.metadata as m, sys
want = {"uv": "0.8.22", "build": "1.3.0", "setuptools": "80.9.0", "wheel": "0.45.1"}
sys.exit(any(m.version(p) != v for p, v in want.items()))'
  if ! "$pkg_venv/bin/python" -c "$pkg_check" 2>/dev/null || [[ ! -x "$pkg_venv/bin/uv" ]]; then
    echo "installing ${pkg_pins[*]} into $pkg_venv" >&2
    rm -rf "$pkg_venv"
    if ! python3 -m venv "$pkg_venv" >&2 \
      || ! "$pkg_venv/bin/pip" install --quiet --disable-pip-version-check "${pkg_pins[@]}" >&2 \
      || ! "$pkg_venv/bin/python" -c "$pkg_check"; then
      echo "error: cannot install ${pkg_pins[*]} into $pkg_venv; the package-mirror tests need them" >&2
      exit 1
    fi
  fi
fi
