#!/bin/sh
# Installs what `meson test --suite aarch64` needs on a Debian 12 host: the
# aarch64 cross compiler, qemu-system-aarch64, cpio/gzip for the initramfs and
# file (to check the cross file's output), and CLI11's headers (libcli11-dev,
# header-only) for the cross-built cnctl. The arm64 kernel image and busybox-static:arm64
# are downloaded by tests/vm/run-vm.sh into its cache through private apt
# lists: no foreign architecture is added to the system.
# Idempotent and quick when everything is present.
set -eu

packages="g++-aarch64-linux-gnu qemu-system-arm cpio gzip file libcli11-dev"
# Named by aarch64-linux-gnu.ini: Boost's, CLI11's and doctest's headers, nothing else.
host_headers=/usr/local/share/cnasio/aarch64-host-headers

link_host_headers() {
    [ -L "$host_headers/boost" ] && [ -L "$host_headers/CLI" ] && [ -L "$host_headers/doctest" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps (aarch64): $host_headers missing - run this script as root" >&2
        exit 1
    fi
    mkdir -p "$host_headers"
    ln -sfn /usr/include/boost "$host_headers/boost"
    ln -sfn /usr/include/CLI "$host_headers/CLI"
    ln -sfn /usr/include/doctest "$host_headers/doctest"
}

missing=""
for p in $packages; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    link_host_headers
    echo "install-deps (aarch64): all present ($packages, $host_headers)"
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
link_host_headers
