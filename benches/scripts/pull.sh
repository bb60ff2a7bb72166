#!/usr/bin/env bash
# pull.sh - `kiln pull` (image lands ready to run: blobs in the store AND
# every layer unpacked into its snapshot) beside `skopeo copy` from the same
# local docker-registry into containers-storage (overlay driver: skopeo
# also unpacks) and into an OCI layout (download only), in one hyperfine
# run, cold every time (the destination is emptied before each run).
# Reported as ratios kiln / anchor (< 1 means kiln is faster); the issue's
# goal is kiln <= 1/6 of skopeo -> containers-storage.
#
# The image: LAYERS tar+gzip layers, ~TOTAL_MB of blobs in all, half of
# the layers random bytes (incompressible), half text files (compress
# well), built as an OCI layout and pushed with skopeo.
#
# Usage: sudo benches/scripts/pull.sh   (env: TOTAL_MB=234 LAYERS=6 RUNS=5 KEEP=1)
# Needs: docker-registry skopeo hyperfine pigz jq python3 (Debian packages).
set -euo pipefail

TOTAL_MB=${TOTAL_MB:-234}
LAYERS=${LAYERS:-6}
RUNS=${RUNS:-5}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
for t in docker-registry skopeo hyperfine pigz jq python3 tar; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install docker-registry skopeo hyperfine pigz jq python3 tar)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run as root (containers-storage with the overlay driver)" >&2; exit 1; }

cargo build --release -q --bin kiln
KILN=$CARGO_TARGET_DIR/release/kiln

WORK=$(mktemp -d /var/tmp/kiln-pull-bench.XXXXXX)
reg_pid=
cleanup() {
  [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] && return
  # containers-storage may leave overlay mounts behind.
  grep -o "$WORK[^ ]*" /proc/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$WORK" 2>/dev/null || true
}
trap cleanup EXIT

# --- the registry -----------------------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$WORK/registry.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $WORK/registry}
http: {addr: 127.0.0.1:$port, secret: bench}
YML
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
reg_pid=$!
for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
REG=127.0.0.1:$port
IMAGE=$REG/bench/big:latest

# --- the image --------------------------------------------------------------
src=$WORK/src
mkdir -p "$src/blobs/sha256"
per=$((TOTAL_MB * 1024 * 1024 / LAYERS))
layers_json=
diffs_json=
for i in $(seq "$LAYERS"); do
  d=$WORK/layer$i
  mkdir -p "$d/data$i"
  if [ $((i % 2)) = 1 ]; then
    # Random: the compressed layer is about as big as its files.
    n=8
    for f in $(seq $n); do head -c $((per / n)) /dev/urandom >"$d/data$i/rand$f.bin"; done
  else
    # Text that gzip shrinks about 2x: numbered lines with random words,
    # sized so the compressed layer is about `per` bytes.
    python3 - "$d/data$i" $((per * 2)) <<'PY'
import os, random, sys
out, total = sys.argv[1], int(sys.argv[2])
words = [("".join(random.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(random.randint(2, 9))))
         for _ in range(5000)]
n_files, written = 40, 0
for f in range(n_files):
    with open(os.path.join(out, f"text{f}.txt"), "w") as fh:
        lines, size = [], 0
        while size < total // n_files:
            line = f"{written} " + " ".join(random.choices(words, k=12)) + "\n"
            lines.append(line); size += len(line); written += 1
        fh.write("".join(lines))
PY
  fi
  tar --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0 -C "$d" -cf "$WORK/layer.tar" .
  diff=$(sha256sum "$WORK/layer.tar" | cut -d' ' -f1)
  pigz -6 -n -c "$WORK/layer.tar" >"$WORK/layer.gz"
  rm -rf "$WORK/layer.tar" "$d"
  dg=$(sha256sum "$WORK/layer.gz" | cut -d' ' -f1)
  size=$(stat -c %s "$WORK/layer.gz")
  mv "$WORK/layer.gz" "$src/blobs/sha256/$dg"
  layers_json+="${layers_json:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$dg\",\"size\":$size}"
  diffs_json+="${diffs_json:+,}\"sha256:$diff\""
done
arch=$(uname -m); case $arch in x86_64) arch=amd64;; aarch64) arch=arm64;; esac
printf '{"architecture":"%s","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[%s]}}' "$arch" "$diffs_json" >"$WORK/config.json"
cd_=$(sha256sum "$WORK/config.json" | cut -d' ' -f1); cs=$(stat -c %s "$WORK/config.json")
mv "$WORK/config.json" "$src/blobs/sha256/$cd_"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' "$cd_" "$cs" "$layers_json" >"$WORK/manifest.json"
md=$(sha256sum "$WORK/manifest.json" | cut -d' ' -f1); ms=$(stat -c %s "$WORK/manifest.json")
mv "$WORK/manifest.json" "$src/blobs/sha256/$md"
echo '{"imageLayoutVersion":"1.0.0"}' >"$src/oci-layout"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' "$md" "$ms" >"$src/index.json"
skopeo copy --quiet --dest-tls-verify=false "oci:$src:latest" "docker://$IMAGE"
blob_mb=$(du -sm "$src/blobs" | cut -f1)

# --- the tools' private state -----------------------------------------------
export KILN_ROOT=$WORK/kiln KILN_CERTS_D=$WORK/no-certs
mkdir -p "$WORK/conf" "$WORK/tmp" "$KILN_CERTS_D"
export TMPDIR=$WORK/tmp
export CONTAINERS_STORAGE_CONF=$WORK/conf/storage.conf CONTAINERS_REGISTRIES_CONF=$WORK/conf/registries.conf
cat >"$CONTAINERS_STORAGE_CONF" <<CONF
[storage]
driver = "overlay"
graphroot = "$WORK/cs/storage"
runroot = "$WORK/cs/run"
CONF
printf 'unqualified-search-registries = []\n[[registry]]\nlocation = "%s"\ninsecure = true\n' "$REG" >"$CONTAINERS_REGISTRIES_CONF"
reset_cs="grep -o '$WORK/cs[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null; rm -rf $WORK/cs"

# Correctness first: kiln's pull is the image skopeo pushed, every layer is
# unpacked (one snapshot per layer), and a second pull is a no-op.
"$KILN" pull -q "$IMAGE" >/dev/null
[ "$(ls "$KILN_ROOT/snapshots" | grep -c '^sha256-')" = "$LAYERS" ] || { echo "kiln pull left $(ls "$KILN_ROOT/snapshots") snapshots, expected $LAYERS" >&2; exit 1; }
jq -e --arg d "sha256:$md" '.manifests[] | select(.digest == $d)' "$KILN_ROOT/store/index.json" >/dev/null \
  || { echo "kiln stored a different manifest" >&2; exit 1; }
second=$("$KILN" pull "$IMAGE")
grep -q 'Image is up to date' <<<"$second" || { echo "second pull was not a no-op: $second" >&2; exit 1; }

echo "image: $LAYERS layers, $blob_mb MB of blobs (half random, half text); local docker-registry over http"
echo "load before: $(uptime)"
hyperfine --runs "$RUNS" --export-json "$WORK/pull.json" \
  -n "kiln pull (store + snapshots)" --prepare "rm -rf $KILN_ROOT" "$KILN pull -q $IMAGE" \
  -n "skopeo copy containers-storage" --prepare "$reset_cs" \
     "skopeo copy --quiet --src-tls-verify=false docker://$IMAGE containers-storage:localhost/bench/big:latest" \
  -n "skopeo copy oci:DIR" --prepare "rm -rf $WORK/oci" \
     "skopeo copy --quiet --src-tls-verify=false docker://$IMAGE oci:$WORK/oci:latest"
echo "load after: $(uptime)"

jq -r --argjson mb "$blob_mb" '
  .results as $r
  | ($r[0].mean) as $k
  | "tool                              mean_s  stddev   MB/s  kiln/tool",
    ($r[] | "\(.command | .[0:32] | . + " " * (32 - length))  \(.mean * 100 | round / 100)    \(.stddev * 100 | round / 100)   \($mb / .mean | round)   \($k / .mean * 1000 | round / 1000)")
' "$WORK/pull.json"
jq -r '.results as $r | "goal (kiln <= 1/6 of skopeo -> containers-storage): kiln/skopeo = \($r[0].mean / $r[1].mean * 1000 | round / 1000) -> \(if $r[0].mean * 6 <= $r[1].mean then "met" else "NOT met" end)"' "$WORK/pull.json"
