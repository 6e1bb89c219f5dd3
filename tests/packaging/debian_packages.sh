#!/bin/bash
# debian_packages.sh SRCDIR WORKDIR - builds the Debian packages from a copy of
# the tree (dpkg-buildpackage -us -uc -b; the checkout stays as it was), runs
# lintian (no errors allowed), installs them with apt, checks what a user gets
# (cnctl --version, man -w, bash completion, pkg-config and CMake consumers,
# `dkms build` of cnasio_echo against an installed Debian kernel's headers),
# and removes them again, also when a check fails. Needs root.
set -euo pipefail  # so no `producer | grep -q`: grep's early exit would fail the producer (SIGPIPE)
src=$(cd "$1" && pwd) work=$2
here=$(cd "$(dirname "$0")" && pwd)
packages=(libcnasio-dev cnasio-tools cnasio-echo-dkms)
fail() { echo "FAIL: $*"; exit 1; }
quiet() { local log=$1; shift; "$@" > "$log" 2>&1 || { tail -n 40 "$log"; fail "$*"; }; }
t0=$(date +%s)
lap() { echo "  [$(($(date +%s) - t0))s] $*"; }

[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (installs packages)"; exit 77; }
for tool in dpkg-buildpackage dh lintian dkms apt-get; do
    command -v "$tool" > /dev/null || { echo "SKIP: $tool is not installed (scripts/install-deps.sh)"; exit 77; }
done
for p in "${packages[@]}"; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep 'installed' > /dev/null; then
        fail "$p is already installed: this test installs and removes it (apt-get purge ${packages[*]})"
    fi
done

# A copy of the files git knows (tracked, and new ones not ignored), so that
# the build neither sees nor leaves build directories in the checkout.
rm -rf "$work"
version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
tree=$work/cnasio-$version
mkdir -p "$tree"
status_before=$(git -C "$src" status --porcelain --ignored)
(cd "$src" && git ls-files -z --cached --others --exclude-standard | tar -cf - --no-recursion --null -T -) |
    tar -xf - -C "$tree"
quiet "$work/builddeps.log" dpkg-checkbuilddeps "$tree/debian/control"
(cd "$tree" && DEB_BUILD_OPTIONS="parallel=2 ${DEB_BUILD_OPTIONS:-}" \
    dpkg-buildpackage -us -uc -b > "$work/build.log" 2>&1) || { tail -n 40 "$work/build.log"; fail "dpkg-buildpackage"; }
[ "$(git -C "$src" status --porcelain --ignored)" = "$status_before" ] || fail "building changed the checkout $src"
lap "built: $(cd "$work" && ls ./*.deb | xargs -n1 basename | xargs)"

# lintian: no errors; warnings and notes are listed.
changes=$(ls "$work"/cnasio_"${version}"_*.changes)
lintian --fail-on error --display-info "$changes" > "$work/lintian.log" 2>&1 || lintian_rc=$?
grep -v 'running with root privileges' "$work/lintian.log" | sort | sed 's/^/  lintian: /' || true
echo "  lintian: $(grep -c '^E:' "$work/lintian.log" || true) errors, $(grep -c '^W:' "$work/lintian.log" || true) warnings, $(grep -c '^I:' "$work/lintian.log" || true) notes"
[ "${lintian_rc:-0}" -eq 0 ] || fail "lintian reports errors"
lap "lintian"

# What each package holds.
contents() { dpkg-deb -c "$work/$1"_"$version"_*.deb | awk '{print $6}' | sed 's|^\./|/|'; }
expect_in() {
    local pkg=$1 list
    list=$(contents "$pkg")
    shift
    for f in "$@"; do grep -qx -- "$f" <<< "$list" || fail "$pkg lacks $f"; done
}
expect_in libcnasio-dev /usr/include/cnasio/cnasio.hpp /usr/share/pkgconfig/cnasio.pc \
    /usr/share/cmake/cnasio/cnasioConfig.cmake /usr/share/cmake/cnasio/cnasioConfigVersion.cmake \
    /usr/share/man/man7/cnasio.7.gz /usr/share/doc/libcnasio-dev/copyright
expect_in cnasio-tools /usr/bin/cnctl /usr/share/man/man1/cnctl.1.gz /usr/share/bash-completion/completions/cnctl
expect_in cnasio-echo-dkms "/usr/src/cnasio-echo-$version/dkms.conf" "/usr/src/cnasio-echo-$version/cnasio_echo.c" \
    "/usr/src/cnasio-echo-$version/cnasio_echo_proto.h" "/usr/src/cnasio-echo-$version/Kbuild" \
    "/usr/src/cnasio-echo-$version/Makefile"
contents libcnasio-dev | grep '^/usr/share/doc/libcnasio-dev/README.md' > /dev/null || fail "libcnasio-dev lacks README.md"
[ "$(dpkg-deb -f "$work"/libcnasio-dev_*.deb Architecture)" = all ] || fail "libcnasio-dev is not Architecture: all"

# Install, and remove whatever happens from here on.
cleanup() {
    apt-get purge -y -qq "${packages[@]}" > "$work/purge.log" 2>&1 || { cat "$work/purge.log"; echo "FAIL: purge"; }
    for p in "${packages[@]}"; do
        if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep 'installed' > /dev/null; then echo "FAIL: $p still installed"; fi
    done
    if [ -e "/usr/src/cnasio-echo-$version" ] || [ -e /var/lib/dkms/cnasio-echo ]; then
        echo "FAIL: DKMS leftovers after purge: $(ls -d /usr/src/cnasio-echo-* /var/lib/dkms/cnasio-echo 2>/dev/null | xargs)"
    fi
}
trap cleanup EXIT
quiet "$work/install.log" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "$work"/libcnasio-dev_"$version"_all.deb "$work"/cnasio-tools_"$version"_*.deb \
    "$work"/cnasio-echo-dkms_"$version"_all.deb
lap "installed"

# cnctl, its manual page and completion.
[ "$(/usr/bin/cnctl --version)" = "cnctl $version (cnasio)" ] || fail "cnctl --version: $(/usr/bin/cnctl --version)"
[ "$(man -w cnctl)" = /usr/share/man/man1/cnctl.1.gz ] || fail "man -w cnctl: $(man -w cnctl 2>&1)"
[ "$(man -w 7 cnasio)" = /usr/share/man/man7/cnasio.7.gz ] || fail "man -w 7 cnasio: $(man -w 7 cnasio 2>&1)"
# bash-completion finds the file by itself on the first TAB after "cnctl".
loaded=$(bash -c '. /usr/share/bash-completion/bash_completion; __load_completion cnctl && complete -p cnctl')
[[ "$loaded" == *"-F _cnctl cnctl" ]] || fail "bash-completion does not load cnctl's completion: $loaded"
bash "$here/completion.sh" /usr/bin/cnctl /usr/share/bash-completion/completions/cnctl > "$work/completion.log" ||
    { cat "$work/completion.log"; fail "installed completion"; }

# pkg-config and CMake consumers of the installed headers, with the same program.
[ "$(pkg-config --modversion cnasio)" = "$version" ] || fail "pkg-config --modversion cnasio"
mkdir -p "$work/pc"
# shellcheck disable=SC2046 # the flags are meant to split
(cd "$work/pc" && c++ $(pkg-config --cflags cnasio) "$here/cmake-consumer/main.cpp" $(pkg-config --libs cnasio) -o frames) ||
    fail "pkg-config build"
(cd "$work/pc" && c++ $(pkg-config --cflags cnasio) -M "$here/cmake-consumer/main.cpp" > frames.d) ||
    fail "pkg-config: c++ -M"
grep -q ' /usr/include/cnasio/connector/framing.hpp' "$work/pc/frames.d" ||
    fail "the pkg-config build did not use /usr/include/cnasio"
pc_out=$("$work/pc/frames") || fail "pkg-config program failed"
cmake_out=$(bash "$here/cmake_consumer.sh" "$src" "$work/cmake" /usr) || { echo "$cmake_out"; fail "CMake consumer"; }
[ "$(head -n 3 <<< "$cmake_out")" = "$pc_out" ] || fail "pkg-config and CMake programs differ: $pc_out"
lap "consumers: pkg-config and CMake (/usr/share/cmake/cnasio)"

# DKMS: the package registered the module; build it for each installed Debian
# 6.1 kernel with headers (the running kernel here has none; loading it, and
# so `dkms install`, is for a machine that runs that kernel).
dkms status cnasio-echo | grep "cnasio-echo/$version" > /dev/null || fail "dkms status does not list cnasio-echo/$version"
built=0
for build_dir in /lib/modules/6.1.*/build; do
    [ -e "$build_dir/Makefile" ] || continue
    kver=$(basename "$(dirname "$build_dir")")
    quiet "$work/dkms-$kver.log" dkms build --force -m cnasio-echo -v "$version" -k "$kver"
    ko=$(find "/var/lib/dkms/cnasio-echo/$version/$kver" -name 'cnasio_echo.ko*' | head -n 1)
    [ -n "$ko" ] || fail "dkms build for $kver left no cnasio_echo.ko"
    vermagic=$(modinfo -F vermagic "$ko")
    [[ "$vermagic" == "$kver "* ]] || fail "$ko has vermagic '$vermagic', not $kver"
    modinfo -F parm "$ko" | grep '^idx:' > /dev/null || fail "$ko has no idx parameter"
    lap "dkms build for $kver: $(basename "$ko"), vermagic $vermagic"
    built=$((built + 1))
done
[ "$built" -gt 0 ] || fail "no Debian 6.1 kernel headers under /lib/modules/6.1.*/build (tests/vm/install-deps.sh installs them)"

trap - EXIT
cleanup > "$work/cleanup.log"
if [ -s "$work/cleanup.log" ]; then cat "$work/cleanup.log"; exit 1; fi
lap "purged: no packages or DKMS files left"
echo "PASS: Debian packages $version built, lintian clean of errors, installed, used and removed"
