#!/bin/sh
# The cross file works as a user would use it: configure this project for
# aarch64 in a fresh build directory and build cnctl, which must come out as
# a static aarch64 executable.
# usage: check-cross-file.sh SOURCE_DIR WORK_DIR
set -eu
src=$1
work=$2
cross="$src/tests/aarch64/aarch64-linux-gnu.ini"
rm -rf "$work"
if ! meson setup --cross-file "$cross" "$work" "$src" -Dtests=disabled -Dbench=disabled -Dexamples=disabled \
        -Dtools=enabled >"$work.log" 2>&1; then
    cat "$work.log"
    echo "check-cross-file: FAIL: meson setup with $cross failed (run tests/aarch64/install-deps.sh)" >&2
    exit 1
fi
ninja -C "$work" src/cnctl/cnctl
info=$(file -L "$work/src/cnctl/cnctl")
echo "$info"
case "$info" in
    *"ARM aarch64"*"statically linked"*) echo "check-cross-file: OK" ;;
    *) echo "check-cross-file: FAIL: cnctl is not a static aarch64 executable" >&2; exit 1 ;;
esac
