#!/bin/bash
# cmake_consumer.sh SRCDIR WORKDIR [PREFIX] - builds and runs cmake-consumer/
# (find_package(cnasio) + cnasio::cnasio, nothing else) against cnasio installed
# in PREFIX. Without PREFIX, first stages `meson install` of SRCDIR (prefix /usr)
# into WORKDIR/stage with --destdir, so the package must be relocatable.
# Also checks cnasioConfigVersion.cmake's answers.
set -euo pipefail
src=$(cd "$1" && pwd) work=$2 prefix=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "FAIL: $*"; exit 1; }
command -v cmake > /dev/null || { echo "SKIP: cmake is not installed (scripts/install-deps.sh)"; exit 77; }
quiet() { local log=$1; shift; "$@" > "$log" 2>&1 || { tail -n 30 "$log"; fail "$*"; }; }

rm -rf "$work"
mkdir -p "$work"
if [ -z "$prefix" ]; then
    quiet "$work/setup.log" meson setup "$work/meson" "$src" --prefix /usr \
        -Dtests=disabled -Dexamples=disabled -Dbench=disabled -Dtools=disabled
    quiet "$work/install.log" meson install -C "$work/meson" --destdir "$work/stage"
    prefix=$work/stage/usr
fi
config_dir=$prefix/share/cmake/cnasio
for f in cnasioConfig.cmake cnasioConfigVersion.cmake; do
    test -f "$config_dir/$f" || fail "$config_dir/$f not installed"
done

# The version file: what find_package(cnasio VERSION) accepts. While the major
# version is 0, only the same minor series, and never older than asked for.
version=$(sed -n 's/^set(PACKAGE_VERSION "\(.*\)")$/\1/p' "$config_dir/cnasioConfigVersion.cmake")
IFS=. read -r major minor patch <<< "$version"
printf '%s\n' 'cmake_minimum_required(VERSION 3.16)' 'include("${F}")' 'message("${PACKAGE_VERSION_COMPATIBLE}")' > "$work/probe.cmake"
probe() { # probe EXPECTED ARGS... : -D settings as find_package would make them
    local got
    got=$(cmake "${@:2}" -DF="$config_dir/cnasioConfigVersion.cmake" -P "$work/probe.cmake" 2>&1) || true
    [ "$got" = "$1" ] || fail "cnasioConfigVersion.cmake ${*:2}: compatible=$got, expected $1"
}
probe TRUE
probe TRUE -DPACKAGE_FIND_VERSION="$version"
probe TRUE -DPACKAGE_FIND_VERSION="$major.$minor"
probe FALSE -DPACKAGE_FIND_VERSION="$major.$minor.$((patch + 1))"
probe FALSE -DPACKAGE_FIND_VERSION="$major.$((minor + 1))"
probe FALSE -DPACKAGE_FIND_VERSION="$((major + 1)).0"
probe TRUE -DPACKAGE_FIND_VERSION_RANGE=1 -DPACKAGE_FIND_VERSION_MIN="$major.$minor" \
    -DPACKAGE_FIND_VERSION_MAX="$((major + 1)).0" -DPACKAGE_FIND_VERSION_RANGE_MAX=INCLUDE
probe FALSE -DPACKAGE_FIND_VERSION_RANGE=1 -DPACKAGE_FIND_VERSION_MIN="$major.$minor" \
    -DPACKAGE_FIND_VERSION_MAX="$version" -DPACKAGE_FIND_VERSION_RANGE_MAX=EXCLUDE

# The consumer, configured with the prefix as its only hint.
cp -r "$here/cmake-consumer" "$work/project"
quiet "$work/cmake.log" cmake -S "$work/project" -B "$work/build" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_BUILD_TYPE=Release
found=$(sed -n 's/^cnasio_DIR:PATH=//p' "$work/build/CMakeCache.txt")
[ "$found" -ef "$config_dir" ] || fail "CMake found cnasio in '$found', not in $config_dir"
quiet "$work/build.log" cmake --build "$work/build" -j 2
# C++20, Boost and threads came from the target (threads add no flag with
# glibc 2.34+, where libc has them), and the headers from the prefix.
grep -qx -- '-- cnasio::cnasio links: Boost::headers;Threads::Threads' "$work/cmake.log" ||
    fail "cnasio::cnasio does not bring Boost::headers and Threads::Threads"
grep -Eq -- '-std=(gnu|c)\+\+20' "$work/build/CMakeFiles/frames.dir/flags.make" ||
    fail "no C++20 flag from cnasio::cnasio"
grep -q "$(realpath "$prefix")/include/cnasio/connector/framing.hpp\|$prefix/include/cnasio/connector/framing.hpp" \
    "$work/build/CMakeFiles/frames.dir/main.cpp.o.d" || fail "the program did not use $prefix/include"

out=$("$work/build/frames")
echo "$out"
expected="14:1 seq 1 ack 7, 4 bytes
1:1 seq 2 ack 9, 4 bytes
io_context ran on a second thread"
[ "$out" = "$expected" ] || fail "unexpected output"
echo "PASS: CMake consumer of cnasio in $prefix (found $found)"
