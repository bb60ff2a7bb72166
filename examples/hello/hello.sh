#!/bin/sh
cat "$GREETING_FILE"
echo "Running as $(id -un) in $(pwd), $*."
