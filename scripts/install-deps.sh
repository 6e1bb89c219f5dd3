#!/bin/sh
# Installs everything cnasio's build, tests, demo and CI need on a fresh
# Debian 12 machine, from Debian's own archive:
#   build:     g++ meson ninja-build pkgconf libboost1.81-dev doctest-dev linux-libc-dev
#   cnctl:     libcli11-dev (header-only command-line parser; Boost.JSON comes with libboost1.81-dev)
#   packaging: git (the wrap test clones the tree), python3 (doc snippet test),
#              cmake (CMake consumer test), man-db (man page tests),
#              debhelper dh-dkms dkms lintian bash-completion (Debian package test;
#              without recommends, dkms pulls in no kernel headers)
#   fuzzing:   clang libclang-rt-14-dev (libFuzzer and the sanitizer runtimes)
#   bench:     valgrind (callgrind counts instructions where perf cannot)
# then runs the VM and aarch64 suites' own install scripts when they exist.
# Idempotent: when everything is present it only checks (a second or so).
# Run as root (or with sudo available).
set -eu

packages="g++ meson ninja-build pkgconf libboost1.81-dev doctest-dev linux-libc-dev
          libcli11-dev git python3 cmake man-db
          debhelper dh-dkms dkms lintian bash-completion
          clang libclang-rt-14-dev valgrind"

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "install-deps: need root to run: $*" >&2
        exit 1
    fi
}

missing=""
for p in $packages; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing="$missing $p"
    fi
done

if [ -n "$missing" ]; then
    echo "install-deps: installing$missing"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # shellcheck disable=SC2086 # the package list is meant to split
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
else
    echo "install-deps: build, fuzz and bench packages present"
fi

# The suites that boot kernels know best what they need; each script is
# idempotent too. Run as root so they can apt-get when needed.
for suite in vm aarch64; do
    script="$root/tests/$suite/install-deps.sh"
    if [ -f "$script" ]; then
        echo "install-deps: tests/$suite/install-deps.sh"
        as_root bash "$script"
    fi
done
