#!/usr/bin/env bash
# Install what kpbpf needs on a Debian machine (idempotent), then build the BPF object and the TypeScript.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(clang llvm libbpf-dev libbpf1 bpftool linux-libc-dev gcc-multilib gcc iproute2 iptables nftables ethtool openssl)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]}; run as root or install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# npm ci only when the lock file changed since the last install.
stamp=node_modules/.kpbpf-lock-sha
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
fi

bash scripts/build-bpf.sh
npx tsc -p tsconfig.json

# The kpbpf command on PATH: a link to this checkout's bin/kpbpf.js (root only; otherwise say how).
if [ "$(id -u)" = 0 ]; then
  ln -sfn "$PWD/bin/kpbpf.js" /usr/local/bin/kpbpf
else
  echo "setup: run as root to put kpbpf on PATH (/usr/local/bin/kpbpf), or: alias kpbpf='node $PWD/bin/kpbpf.js'" >&2
fi
