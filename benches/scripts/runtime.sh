#!/usr/bin/env bash
# runtime.sh - start-to-exit latency of /bin/true: kiln-runtime-linux beside
# `crun run` and `runc run` of the same OCI bundle, measured in one hyperfine
# run, reported as ratios.
#
#   kiln-overlay : kiln, fresh overlay rootfs (new upper+work per run) over
#                  the bundle's busybox rootfs as the lower
#   kiln-overlay-shm : the same with upper+work on tmpfs (/dev/shm), which
#                  shows how much of the overlay cost is the upper's disk
#   kiln-bundle  : kiln running the bundle in place (`run bundle DIR`)
#   crun, runc   : `crun run` / `runc run` of the same bundle (config.json
#                  written by kiln: Docker's default spec incl. seccomp)
#
# crun 1.8 refuses to run on a hybrid cgroup host whose v2 `unified` mount has
# controllers; like /work/shared/bench/anchors.sh (in_legacy_cg), the whole
# hyperfine run happens in a private mount namespace without
# /sys/fs/cgroup/unified, so every runtime sees the same pure-v1 host and no
# per-run wrapper cost is added to any of them.
#
# Usage: sudo benches/scripts/runtime.sh        (env: RUNS=200 WARMUP=20)
set -euo pipefail

RUNS=${RUNS:-200}
WARMUP=${WARMUP:-20}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d /tmp/kiln-runtime-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

for t in hyperfine crun runc jq unshare; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install hyperfine crun runc jq util-linux)" >&2; exit 1; }
done
[ -x /bin/busybox ] || { echo "missing /bin/busybox (apt-get install busybox-static)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root (crun/runc run need it)" >&2; exit 1; }

cargo build --release -q -p kiln-runtime-linux --example run
KILN=$CARGO_TARGET_DIR/release/examples/run

# The bundle: Docker's default spec for /bin/true, busybox rootfs.
B=$WORK/bundle
"$KILN" write-bundle "$B" /bin/true >/dev/null
R=$B/rootfs
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,proc,sys,dev}
cp /bin/busybox "$R/bin/busybox"
for a in $(/bin/busybox --list-full); do
  [ "$a" = linuxrc ] || [ -e "$R/$a" ] || ln -s /bin/busybox "$R/$a"
done
chmod 1777 "$R/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$R/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$R/etc/group"

# Sanity: every runtime runs the bundle.
"$KILN" overlay "$R" /bin/true
"$KILN" bundle "$B"

JSON=$WORK/runtime.json
unshare -m --propagation private -- bash -c '
  umount /sys/fs/cgroup/unified 2>/dev/null || true
  set -e
  crun run -b "$1" kiln-bench-sanity-crun
  runc run -b "$1" kiln-bench-sanity-runc
  hyperfine -N --runs "$3" --warmup "$4" --export-json "$5" --style basic \
    -n kiln-overlay "$2 overlay $1/rootfs /bin/true" \
    -n kiln-overlay-shm "env TMPDIR=/dev/shm $2 overlay $1/rootfs /bin/true" \
    -n kiln-bundle  "$2 bundle $1" \
    -n crun         "crun run -b $1 kiln-bench-crun" \
    -n runc         "runc run -b $1 kiln-bench-runc"
' bash "$B" "$KILN" "$RUNS" "$WARMUP" "$JSON"

echo
echo "start-to-exit of /bin/true (median, ms) and kiln's ratio to each runtime"
jq -r '
  (.results | map({(.command): .median}) | add) as $m
  | .results[] | "\(.command)\t\(.median * 1000 | . * 100 | round / 100) ms\tmean \(.mean * 1000 | . * 100 | round / 100) ms"
' "$JSON"
jq -r --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" '
  (.results | map({(.command): .median}) | add) as $m
  | "load average at the end: \($load)",
    "ratio kiln-overlay/crun = \($m["kiln-overlay"] / $m["crun"] | . * 1000 | round / 1000)",
    "ratio kiln-overlay/runc = \($m["kiln-overlay"] / $m["runc"] | . * 1000 | round / 1000)",
    "ratio kiln-overlay-shm/crun = \($m["kiln-overlay-shm"] / $m["crun"] | . * 1000 | round / 1000)",
    "ratio kiln-overlay-shm/runc = \($m["kiln-overlay-shm"] / $m["runc"] | . * 1000 | round / 1000)",
    "ratio kiln-bundle/crun  = \($m["kiln-bundle"] / $m["crun"] | . * 1000 | round / 1000)",
    "ratio kiln-bundle/runc  = \($m["kiln-bundle"] / $m["runc"] | . * 1000 | round / 1000)"
' "$JSON"
mkdir -p "$ROOT/target/bench-results"
cp "$JSON" "$ROOT/target/bench-results/runtime.json"
