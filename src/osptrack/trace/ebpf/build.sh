#!/usr/bin/env bash
# Builds osptrack-ebpf (the eBPF tracer's loader) into $1 (default: this folder's bin/).
# Needs clang, bpftool and libbpf-dev (Debian 12 packages; scripts/setup.sh installs them). The
# kernel's own BTF (/sys/kernel/btf/vmlinux) gives vmlinux.h, so the object is CO-RE.
set -euo pipefail
SRC=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$SRC/bin}
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
bpftool btf dump file /sys/kernel/btf/vmlinux format c >"$TMP/vmlinux.h"
clang -g -O2 -target bpf -D__TARGET_ARCH_x86 -I"$TMP" -I"$SRC" -c "$SRC/tracer.bpf.c" -o "$TMP/tracer.bpf.o"
bpftool gen skeleton "$TMP/tracer.bpf.o" name tracer_bpf >"$TMP/tracer.skel.h"
cc -O2 -Wall -I"$TMP" -I"$SRC" "$SRC/loader.c" -o "$TMP/osptrack-ebpf" -lbpf -lelf -lz
# Syscall names by number (SIGSYS records name the trapped syscall), from the kernel headers.
printf '#include <asm/unistd_64.h>\n' | cc -E -dM - | awk '$2 ~ /^__NR_/ {print $3 "\t" substr($2, 6)}' | sort -n >"$TMP/syscalls.tsv"
install -m 0644 "$TMP/syscalls.tsv" "$OUT/syscalls.tsv"
install -m 0755 "$TMP/osptrack-ebpf" "$OUT/osptrack-ebpf"
echo "$OUT/osptrack-ebpf"
