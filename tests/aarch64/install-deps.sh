#!/bin/sh
# Installs what `meson test --suite aarch64` needs on a Debian 12 host: the
# aarch64 cross compiler and qemu-system-aarch64, plus what tests/vm needs
# (busybox-static, cpio, ...). The arm64 kernel image and busybox-static:arm64
# are downloaded by tests/vm/run-vm.sh into its cache through private apt
# lists: no foreign architecture is added to the system.
# Idempotent and quick when everything is present.
set -eu

packages="g++-aarch64-linux-gnu qemu-system-arm cpio gzip"

missing=""
for p in $packages; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    echo "install-deps (aarch64): all present ($packages)"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps (aarch64): missing:$missing - run this script as root (apt-get install)" >&2
    exit 1
fi

echo "install-deps (aarch64): installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # word splitting of the package list is intended
apt-get install -y -qq --no-install-recommends $missing
