#!/usr/bin/env bash
# Pull and push of a multi-layer image against a local docker-registry:
# kiln (registry-client's `copy` example) beside `skopeo copy`, in the same
# run, reported as time ratios (skopeo / kiln, > 1 means kiln is faster) and
# peak RSS of each (from /usr/bin/time -v).
#
# Usage: benches/scripts/registry.sh [TOTAL_MB (default 500)] [LAYERS (default 5)] [RUNS (default 3)]
# Needs: docker-registry skopeo (Debian packages), GNU time (/usr/bin/time).
set -euo pipefail
TOTAL_MB=${1:-500}
LAYERS=${2:-5}
RUNS=${3:-3}
here=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
for t in docker-registry skopeo /usr/bin/time sha256sum pigz jq; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install docker-registry skopeo time coreutils pigz jq)" >&2; exit 1; }
done
cargo build --quiet --release -p kiln-registry-client --example copy
KILN="$CARGO_TARGET_DIR/release/examples/copy"

work=$(mktemp -d /tmp/kiln-registry-bench.XXXXXX)
reg_pid=
cleanup() { [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# A fresh registry (new port, empty storage) for each run: skopeo's blob
# info cache remembers which registry holds which blob and would mount
# instead of uploading on later runs against the same registry.
start_registry() {
  [ -n "$reg_pid" ] && { kill "$reg_pid" 2>/dev/null; wait "$reg_pid" 2>/dev/null || true; }
  rm -rf "$work/storage"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat >"$work/config.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $work/storage}
  delete: {enabled: true}
http: {addr: 127.0.0.1:$port, secret: bench}
YML
  docker-registry serve "$work/config.yml" >"$work/registry.log" 2>&1 &
  reg_pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
  REG=127.0.0.1:$port
}

# An OCI layout with LAYERS incompressible layers totalling TOTAL_MB.
src=$work/src
mkdir -p "$src/blobs/sha256"
layer_mb=$((TOTAL_MB / LAYERS))
layers_json=
diffs_json=
for i in $(seq "$LAYERS"); do
  # Real gzip streams (of random data, so about the size asked for): skopeo
  # would otherwise compress the layers itself when pushing.
  head -c $((layer_mb * 1024 * 1024)) /dev/urandom >"$work/layer.raw"
  diff=$(sha256sum "$work/layer.raw" | cut -d' ' -f1)
  pigz -1 -c "$work/layer.raw" >"$work/layer" && rm "$work/layer.raw"
  d=$(sha256sum "$work/layer" | cut -d' ' -f1)
  size=$(stat -c %s "$work/layer")
  mv "$work/layer" "$src/blobs/sha256/$d"
  layers_json+="${layers_json:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$d\",\"size\":$size}"
  diffs_json+="${diffs_json:+,}\"sha256:$diff\""
done
arch=$(uname -m); case $arch in x86_64) arch=amd64;; aarch64) arch=arm64;; esac
printf '{"architecture":"%s","os":"linux","rootfs":{"type":"layers","diff_ids":[%s]}}' "$arch" "$diffs_json" >"$work/config.json"
cd_=$(sha256sum "$work/config.json" | cut -d' ' -f1); cs=$(stat -c %s "$work/config.json")
mv "$work/config.json" "$src/blobs/sha256/$cd_"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' "$cd_" "$cs" "$layers_json" >"$work/manifest.json"
md=$(sha256sum "$work/manifest.json" | cut -d' ' -f1); ms=$(stat -c %s "$work/manifest.json")
mv "$work/manifest.json" "$src/blobs/sha256/$md"
echo '{"imageLayoutVersion":"1.0.0"}' >"$src/oci-layout"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' "$md" "$ms" >"$src/index.json"

# measure NAME CMD...: prints "seconds max_rss_kb"
measure() {
  local out=$work/time.$1; shift
  /usr/bin/time -v -o "$out" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" "$out" >&2; exit 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$out")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out")
  echo "$wall $rss"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A T R
for run in $(seq "$RUNS"); do
  start_registry
  # Push: each tool into a fresh repository (nothing to skip).
  read -r t r < <(measure sp skopeo copy --quiet --dest-tls-verify=false "oci:$src:latest" "docker://$REG/bench/skopeo$run:latest")
  T[skopeo_push]+="$t "; R[skopeo_push]+="$r "
  read -r t r < <(measure kp "$KILN" push "$src:latest" "$REG/bench/kiln$run:latest")
  T[kiln_push]+="$t "; R[kiln_push]+="$r "
  # Pull: into fresh OCI layouts.
  rm -rf "$work/d1" "$work/d2"
  read -r t r < <(measure sl skopeo copy --quiet --src-tls-verify=false "docker://$REG/bench/skopeo$run:latest" "oci:$work/d1:latest")
  T[skopeo_pull]+="$t "; R[skopeo_pull]+="$r "
  read -r t r < <(measure kl "$KILN" pull "$REG/bench/skopeo$run:latest" "$work/d2:latest")
  T[kiln_pull]+="$t "; R[kiln_pull]+="$r "
  [ "$(jq -r '.manifests[0].digest' "$work/d1/index.json")" = "$(jq -r '.manifests[0].digest' "$work/d2/index.json")" ] \
    || { echo "kiln and skopeo pulled different manifests" >&2; exit 1; }
done

m() { tr ' ' '\n' <<<"${1% }" | median; }
echo "image: $LAYERS layers, $((layer_mb * LAYERS)) MB; median of $RUNS runs; local docker-registry over http"
printf "%-6s %10s %10s %8s %12s %12s\n" op skopeo_s kiln_s ratio skopeo_MB/s kiln_MB/s
for op in push pull; do
  s=$(m "${T[skopeo_$op]}"); k=$(m "${T[kiln_$op]}")
  awk -v op="$op" -v s="$s" -v k="$k" -v mb="$((layer_mb * LAYERS))" \
    'BEGIN {printf "%-6s %10.2f %10.2f %7.2fx %12.0f %12.0f\n", op, s, k, s/k, mb/s, mb/k}'
done
printf '%-6s %14s %14s\n' op skopeo_rss_MB kiln_rss_MB
for op in push pull; do
  s=$(m "${R[skopeo_$op]}"); k=$(m "${R[kiln_$op]}")
  awk -v op="$op" -v s="$s" -v k="$k" 'BEGIN {printf "%-6s %14.1f %14.1f\n", op, s/1024, k/1024}'
done
