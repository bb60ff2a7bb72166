#!/usr/bin/env bash
# build.sh - `kiln build` beside `buildah bud` on the same Dockerfiles and
# contexts, in one hyperfine run per scenario, reported as ratios
# (kiln mean / buildah mean; < 1 means kiln is faster).
#
# Scenarios (the anchors of /work/shared/bench/anchors.sh, section build):
#   b1.cold     5-step Dockerfile on a busybox base, --no-cache
#   b1.warm     rebuild with nothing changed
#   b1.change1  rebuild after changing one context file
#   b2.cold     two stages that can run in parallel (50 MiB dd each) + final
#   b2.one      the same with one such stage: b2.cold / b2.one near 1 means
#               the two stages really ran side by side (but the final stage
#               of b2 copies twice the data, and on 2 cores one stage's
#               layer compression already uses both: see b2.seq)
#   b2.seq      b2 with stages run one at a time (kiln: KILN_PARALLELISM=1,
#               buildah: --jobs=1): b2.cold / b2.seq is the speed-up that
#               running the stages side by side brings
#   b3.cold     COPY . /app of a 20,000-file context (200 dirs, 64-4096 B)
#   b3.warm     the same rebuilt with nothing changed
#
# Both tools build from a local busybox base (no registry involved):
# buildah from private containers-storage (overlay driver, --pull=false,
# --isolation=oci, --network=none, --layers), kiln from its own store
# ($KILN_ROOT in the work dir, RUN with --network=none). Like anchors.sh,
# everything runs in a mount namespace without /sys/fs/cgroup/unified so
# runc sees a pure cgroup-v1 host.
#
# Usage: sudo benches/scripts/build.sh     (env: RUNS=5 RUNS_HEAVY=3 KEEP=1)
set -euo pipefail

RUNS=${RUNS:-5}
RUNS_HEAVY=${RUNS_HEAVY:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d /var/tmp/kiln-build-bench.XXXXXX)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$WORK" 2>/dev/null || true' EXIT

for t in hyperfine buildah runc jq python3 unshare; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install hyperfine buildah runc jq python3 util-linux)" >&2; exit 1; }
done
[ -x /bin/busybox ] || { echo "missing /bin/busybox (apt-get install busybox-static)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

cargo build --release -q --bin kiln
KILN=$CARGO_TARGET_DIR/release/kiln

# Private state for both tools.
export KILN_ROOT=$WORK/kiln
mkdir -p "$WORK/conf" "$WORK/tmp"
export CONTAINERS_STORAGE_CONF=$WORK/conf/storage.conf CONTAINERS_REGISTRIES_CONF=$WORK/conf/registries.conf
export TMPDIR=$WORK/tmp
cat > "$CONTAINERS_STORAGE_CONF" <<CONF
[storage]
driver = "overlay"
graphroot = "$WORK/containers/storage"
runroot = "$WORK/containers/run"
CONF
echo 'unqualified-search-registries = []' > "$CONTAINERS_REGISTRIES_CONF"
# runc, as anchors.sh configures it (crun refuses this hybrid cgroup host).
export CONTAINERS_CONF=$WORK/conf/containers.conf
printf '[containers]\nnetns = "none"\n[engine]\ncgroup_manager = "cgroupfs"\nruntime = "runc"\n' > "$CONTAINERS_CONF"
legacy_cg() { unshare -m --propagation private -- bash -c 'umount /sys/fs/cgroup/unified 2>/dev/null || true; exec "$@"' bash "$@"; }

# The busybox base, the same rootfs for both.
R=$WORK/rootfs
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,proc,sys,dev}
cp /bin/busybox "$R/bin/busybox"
for a in $(/bin/busybox --list-full); do
  [ "$a" = linuxrc ] || [ -e "$R/$a" ] || ln -s /bin/busybox "$R/$a"
done
chmod 1777 "$R/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$R/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$R/etc/group"
ctr=$(buildah from scratch)
buildah copy -q "$ctr" "$R" / >/dev/null
buildah config --cmd /bin/sh "$ctr"
buildah commit -q --format oci "$ctr" localhost/kiln-bench-busybox:latest >/dev/null
buildah rm "$ctr" >/dev/null
BASECTX=$WORK/basectx
mkdir -p "$BASECTX"
cp -a "$R" "$BASECTX/rootfs"
printf 'FROM scratch\nCOPY rootfs/ /\nCMD ["/bin/sh"]\n' > "$BASECTX/Dockerfile"
"$KILN" build -q -t localhost/kiln-bench-busybox "$BASECTX" >/dev/null
BASE=localhost/kiln-bench-busybox:latest

# Contexts (as anchors.sh make_build_contexts).
C1=$WORK/ctx/b1 C2=$WORK/ctx/b2 C3=$WORK/ctx/b3 C2ONE=$WORK/ctx/b2one
mkdir -p "$C1/files" "$C2" "$C3" "$C2ONE"
for i in 1 2 3 4 5; do echo "file $i" > "$C1/files/f$i.txt"; done
cat > "$C1/Dockerfile" <<DF
FROM $BASE
RUN echo hi > /a
COPY files/ /files/
ENV ANCHOR=1
WORKDIR /files
RUN ls -la /files > /ls.txt
CMD ["/bin/sh"]
DF
cat > "$C2/Dockerfile" <<DF
FROM $BASE AS a
RUN dd if=/dev/urandom of=/a.bin bs=1M count=50 2>/dev/null
FROM $BASE AS b
RUN dd if=/dev/urandom of=/b.bin bs=1M count=50 2>/dev/null
FROM $BASE
COPY --from=a /a.bin /a.bin
COPY --from=b /b.bin /b.bin
DF
cat > "$C2ONE/Dockerfile" <<DF
FROM $BASE AS a
RUN dd if=/dev/urandom of=/a.bin bs=1M count=50 2>/dev/null
FROM $BASE
COPY --from=a /a.bin /a.bin
DF
python3 - "$C3/small" <<'PY'
import os, random, sys
random.seed(20000)
root = sys.argv[1]
for i in range(20000):
    d = os.path.join(root, "d%03d" % (i % 200))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d.txt" % i), "w") as f:
        n = random.randint(64, 4096)
        f.write(random.randbytes(n // 2 + 1).hex()[:n])
PY
printf 'FROM %s\nCOPY . /app\n' "$BASE" > "$WORK/ctx/b3.Dockerfile"

BUD="buildah bud -q --layers --pull=false --isolation=oci --network=none"
KB="$KILN build -q --network=none"
PRUNE_BUD="buildah rmi -f bench-b1 bench-b2 bench-b2one bench-b3 >/dev/null 2>&1 || true; buildah rmi --prune >/dev/null 2>&1 || true"

# scenario ID RUNS WARMUP PREPARE KILN_CMD BUILDAH_CMD
declare -a ROWS
scenario() {
  local id=$1 runs=$2 warm=$3 prep=$4 k=$5 b=$6
  local json=$WORK/$id.json
  echo ">> $id"
  local args=(--runs "$runs" --warmup "$warm" --export-json "$json" --style basic)
  if [ -n "$prep" ]; then args+=(--prepare "$prep"); fi
  legacy_cg hyperfine "${args[@]}" -n kiln "$k" -n buildah "$b" >"$WORK/$id.log" 2>&1 || {
      echo "   FAILED:"; tail -5 "$WORK/$id.log"; return 0; }
  local km bm
  km=$(jq '.results[] | select(.command=="kiln") | .mean' "$json")
  bm=$(jq '.results[] | select(.command=="buildah") | .mean' "$json")
  ROWS+=("$(printf '%-11s | %9.3f s | %9.3f s | %6.3f' "$id" "$km" "$bm" "$(echo "$km / $bm" | bc -l)")")
}

# Sanity: both tools build b1.
legacy_cg $KB -t bench-b1 "$C1" >/dev/null
legacy_cg $BUD -t bench-b1 "$C1" >/dev/null

scenario b1.cold "$RUNS" 1 "" "$KB --no-cache -t bench-b1 $C1" "$BUD --no-cache -t bench-b1 $C1"
scenario b1.warm "$RUNS" 1 "" "$KB -t bench-b1 $C1" "$BUD -t bench-b1 $C1"
scenario b1.change1 "$RUNS" 1 "date +%s%N > $C1/files/f3.txt" "$KB -t bench-b1 $C1" "$BUD -t bench-b1 $C1"
scenario b2.cold "$RUNS_HEAVY" 0 "" "$KB --no-cache -t bench-b2 $C2" "$BUD --no-cache --jobs=2 -t bench-b2 $C2"
scenario b2.one "$RUNS_HEAVY" 0 "" "$KB --no-cache -t bench-b2one $C2ONE" "$BUD --no-cache --jobs=2 -t bench-b2one $C2ONE"
scenario b2.seq "$RUNS_HEAVY" 0 "" "KILN_PARALLELISM=1 $KB --no-cache -t bench-b2 $C2" "$BUD --no-cache --jobs=1 -t bench-b2 $C2"
scenario b3.cold "$RUNS_HEAVY" 1 "" "$KB --no-cache -f $WORK/ctx/b3.Dockerfile -t bench-b3 $C3/small" "$BUD --no-cache -f $WORK/ctx/b3.Dockerfile -t bench-b3 $C3/small"
scenario b3.warm "$RUNS" 1 "" "$KB -f $WORK/ctx/b3.Dockerfile -t bench-b3 $C3/small" "$BUD -f $WORK/ctx/b3.Dockerfile -t bench-b3 $C3/small"

echo
echo "scenario    | kiln mean   | buildah mean| ratio (kiln/buildah)"
printf '%s\n' "${ROWS[@]}"
# Two independent stages against one: ~1.0 when they run in parallel.
mean() { jq ".results[] | select(.command==\"$2\") | .mean" "$WORK/$1.json" 2>/dev/null; }
if [ -f "$WORK/b2.cold.json" ] && [ -f "$WORK/b2.one.json" ]; then
  for tool in kiln buildah; do
    printf 'two stages / one stage (%s): %.2f\n' "$tool" "$(echo "$(mean b2.cold $tool) / $(mean b2.one $tool)" | bc -l)"
  done
fi
if [ -f "$WORK/b2.cold.json" ] && [ -f "$WORK/b2.seq.json" ]; then
  for tool in kiln buildah; do
    printf 'two stages side by side / one after the other (%s): %.2f\n' "$tool" "$(echo "$(mean b2.cold $tool) / $(mean b2.seq $tool)" | bc -l)"
  done
fi
echo "(hyperfine JSON and logs in $WORK when KEEP=1)"
