#!/bin/sh
# Installs what `meson test --suite vm` needs on a Debian 12 host: qemu to boot
# a kernel, busybox-static + cpio + gzip for the initramfs, the kernel headers
# (Kbuild) and a C/C++ toolchain for the module and the static guest programs.
# Kernel images are not installed: run-vm.sh downloads and extracts them into
# its cache (installing linux-image-* would run initramfs-tools: minutes).
# Idempotent and quick when everything is present.
set -eu

# flex bison bc libelf-dev libssl-dev xz-utils: tiny-kernel.sh compiles small
# kernels from Debian's linux-source-6.1 (downloaded into its cache, not installed).
packages="qemu-system-x86 busybox-static cpio gzip make gcc g++ libc6-dev linux-headers-amd64
flex bison bc libelf-dev libssl-dev xz-utils"

missing=""
for p in $packages; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    echo "install-deps: all present ($packages)"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing:$missing - run this script as root (apt-get install)" >&2
    exit 1
fi

echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # word splitting of the package list is intended
apt-get install -y -qq --no-install-recommends $missing
