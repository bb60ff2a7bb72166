#!/usr/bin/env bash
# layers.sh - kiln-image-layers beside the command-line anchors, measured in
# the same hyperfine runs and reported as ratios (kiln time / anchor time;
# < 1 means kiln is faster):
#
#   sha256       : layer_tool sha256    vs sha256sum, openssl dgst -sha256
#   write zstd   : layer_tool write zstd (all cores)  vs tar -c | zstd -T0 -3
#   write gzip   : layer_tool write gzip              vs tar -c | gzip -6, pigz -6
#   apply        : layer_tool apply (zstd layer)      vs zstd -dc | tar -x
#   diff         : layer_tool diff (tree compare, 1% changed) and
#                  layer_tool upper (overlay upper dir)  vs  tar -c of the changed files
#
# Usage: benches/scripts/layers.sh
#   env: LAYER_MB=256 (change set size; the issue's reference is 1024)
#        FILES=20000  (tree size for diff; reference 100000)
#        RUNS=5
set -euo pipefail

LAYER_MB=${LAYER_MB:-256}
FILES=${FILES:-20000}
RUNS=${RUNS:-5}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d /var/tmp/kiln-layers-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

for t in hyperfine jq zstd pigz gzip tar sha256sum openssl; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install hyperfine jq zstd pigz openssl)" >&2; exit 1; }
done

cargo build --release -q -p kiln-image-layers --example layer_tool
KILN=$CARGO_TARGET_DIR/release/examples/layer_tool

# A change set of LAYER_MB MiB of moderately compressible data (text and
# binary-like), in files from 1 KiB to 8 MiB.
SRC=$WORK/src
mkdir -p "$SRC"
python3 - "$SRC" "$LAYER_MB" <<'PY'
import os, random, sys
root, mb = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
words = [b"container ", b"layer ", b"\0\0\0\1", b"kiln ", b"/usr/lib/", b"\x7fELF", b"digest ", b"0123456789"]
chunk = bytearray()
while len(chunk) < (4 << 20):
    chunk += rng.getrandbits(64).to_bytes(8, "little") if rng.random() < 0.33 else rng.choice(words)
left, i = mb << 20, 0
sizes = [8 << 20, 1 << 20, 64 << 10, 1 << 10]
while left > 0:
    n = min(sizes[i % 4], left)
    d = os.path.join(root, "d%d" % (i % 16)); os.makedirs(d, exist_ok=True)
    off = (i * 7919) % (len(chunk) - 1)
    data = (chunk[off:] + chunk)[:n] if n <= len(chunk) else (chunk * (n // len(chunk) + 1))[:n]
    open(os.path.join(d, "f%d" % i), "wb").write(data)
    left -= n; i += 1
PY
BIG=$WORK/big.bin
cat "$SRC"/d0/* > "$BIG"

ratio() { # json name-of-kiln name-of-anchor
  jq -r --arg k "$2" --arg a "$3" '
    (.results[] | select(.command==$k) | .mean) as $km |
    (.results[] | select(.command==$a) | .mean) as $am |
    "\($k) / \($a) = \(($km/$am*100|round)/100)  (kiln \($km*1000|round) ms, anchor \($am*1000|round) ms)"' "$1"
}
mbps() { # json command bytes
  jq -r --arg c "$2" --argjson b "$3" '.results[] | select(.command==$c) | "\($c): \(($b/1048576/.mean)|round) MB/s"' "$1"
}

echo "== sha256 of $(du -m "$BIG" | cut -f1) MiB"
hyperfine -N -w 1 -r "$RUNS" --export-json "$WORK/sha.json" \
  -n kiln "$KILN sha256 $BIG" -n sha256sum "sha256sum $BIG" -n openssl "openssl dgst -sha256 $BIG" >/dev/null
BYTES=$(stat -c %s "$BIG")
for c in kiln sha256sum openssl; do mbps "$WORK/sha.json" $c "$BYTES"; done
ratio "$WORK/sha.json" kiln sha256sum; ratio "$WORK/sha.json" kiln openssl

echo "== write ${LAYER_MB} MiB change set"
hyperfine -w 1 -r "$RUNS" --export-json "$WORK/write.json" \
  -n kiln-zstd-mt "$KILN write $SRC $WORK/k.zst zstd $(nproc)" \
  -n kiln-zstd-1t "$KILN write $SRC $WORK/k1.zst zstd 1" \
  -n tar-zstd-T0 "tar -C $SRC -cf - . | zstd -T0 -3 -q -f -o $WORK/t.zst" \
  -n kiln-gzip "$KILN write $SRC $WORK/k.gz gzip" \
  -n tar-gzip "tar -C $SRC -cf - . | gzip -6 > $WORK/t.gz" \
  -n tar-pigz "tar -C $SRC -cf - . | pigz -6 > $WORK/t.pigz" >/dev/null
BYTES=$((LAYER_MB << 20))
for c in kiln-zstd-mt kiln-zstd-1t tar-zstd-T0 kiln-gzip tar-gzip tar-pigz; do mbps "$WORK/write.json" $c "$BYTES"; done
ratio "$WORK/write.json" kiln-zstd-mt tar-zstd-T0
ratio "$WORK/write.json" kiln-gzip tar-gzip
ratio "$WORK/write.json" kiln-gzip tar-pigz
ls -l "$WORK"/k.zst "$WORK"/t.zst "$WORK"/k.gz "$WORK"/t.gz | awk '{print "  size", $9, $5}'

echo "== apply the zstd layer"
hyperfine -w 1 -r "$RUNS" --export-json "$WORK/apply.json" \
  -p "rm -rf $WORK/x && mkdir $WORK/x" \
  -n kiln-apply "$KILN apply $WORK/k.zst $WORK/x" \
  -n tar-x "zstd -dc $WORK/k.zst | tar -x -C $WORK/x" >/dev/null
mbps "$WORK/apply.json" kiln-apply "$BYTES"; mbps "$WORK/apply.json" tar-x "$BYTES"
ratio "$WORK/apply.json" kiln-apply tar-x

echo "== diff a ${FILES}-file tree with 1% changed"
python3 - "$WORK" "$FILES" <<'PY'
import os, sys, shutil
w, n = sys.argv[1], int(sys.argv[2])
for side in ("b",):
    for i in range(n):
        d = os.path.join(w, side, "d%d" % (i % 100), "e%d" % (i % 7)); os.makedirs(d, exist_ok=True)
        open(os.path.join(d, "f%d" % i), "w").write("file %d" % i)
PY
cp -a "$WORK/b" "$WORK/a"  # same mtimes: only the 1% below differ
mkdir -p "$WORK/u"
for ((i = 0; i < FILES; i += 100)); do
  rel="d$((i % 100))/e$((i % 7))/f$i"
  echo "changed $i" > "$WORK/a/$rel"
  mkdir -p "$WORK/u/$(dirname "$rel")"; echo "changed $i" > "$WORK/u/$rel"
done
hyperfine -N -w 1 -r "$RUNS" --export-json "$WORK/diff.json" \
  -n kiln-tree-compare "$KILN diff $WORK/b $WORK/a $WORK/d.tar none" \
  -n kiln-overlay-upper "$KILN upper $WORK/u $WORK/u.tar none" \
  -n tar-c-changed "tar -C $WORK/u -cf $WORK/t.tar ." >/dev/null
jq -r '.results[] | "\(.command): \(.mean*1000|round) ms"' "$WORK/diff.json"
ratio "$WORK/diff.json" kiln-overlay-upper tar-c-changed
