#!/bin/sh
# Build an image with kiln and run it: no daemon, no registry.
#
# 1. makes a busybox base image from Debian's busybox-static
#    (apt-get install busybox-static) and tags it `busybox`;
# 2. builds examples/hello (a two-stage Dockerfile FROM busybox);
# 3. runs it.
# Needs root (containers use namespaces and overlayfs). The image store is
# $KILN_ROOT, else ~/.local/share/kiln.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."

if [ ! -x /bin/busybox ] || ! /bin/busybox --list >/dev/null 2>&1; then
    echo "quickstart: /bin/busybox is missing: apt-get install busybox-static" >&2
    exit 1
fi

kiln=${KILN:-}
if [ -z "$kiln" ]; then
    cargo build --release --quiet --bin kiln
    kiln=${CARGO_TARGET_DIR:-target}/release/kiln
fi

cp /bin/busybox examples/busybox/busybox
"$kiln" build -t busybox examples/busybox
"$kiln" build -t hello examples/hello
"$kiln" run --rm hello
