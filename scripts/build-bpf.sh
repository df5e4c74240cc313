#!/usr/bin/env bash
# Builds the XDP object build/kp.bpf.o and the benchmark baselines build/bench/*.bpf.o.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! command -v clang >/dev/null 2>&1; then
	echo "build-bpf: clang not found; install it with: apt-get install -y clang llvm libbpf-dev" >&2
	exit 1
fi
if [ ! -f /usr/include/bpf/bpf_helpers.h ]; then
	echo "build-bpf: libbpf headers not found; install them with: apt-get install -y libbpf-dev" >&2
	exit 1
fi
multiarch="$(gcc -dumpmachine 2>/dev/null || clang -dumpmachine)"
case "$(uname -m)" in
x86_64) arch=x86 ;;
aarch64) arch=arm64 ;;
*) arch="$(uname -m)" ;;
esac

# -g keeps BTF: the loader and test/maps/btf-layout.test.ts need it.
cflags=(-O2 -g -target bpf "-D__TARGET_ARCH_${arch}" "-I/usr/include/${multiarch}" -Wall -Werror ${KP_BPF_CFLAGS:-})

mkdir -p build/bench
compile() {
	local src="$1" out="$2"
	clang "${cflags[@]}" -c "$src" -o "$out.tmp"
	mv "$out.tmp" "$out"
	echo "build-bpf: $out"
}
compile bpf/kp.bpf.c build/kp.bpf.o
for src in bpf/bench/*.bpf.c; do
	compile "$src" "build/bench/$(basename "$src" .c).o"
done
