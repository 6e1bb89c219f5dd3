#!/bin/bash
# Builds (once, then from a cache) a small x86-64 kernel from Debian's
# linux-source-6.1 package that lacks a connector feature, so that the VM
# tests can meet error::connector_unsupported and error::proc_events_unsupported
# for real: every Debian kernel has CONFIG_CONNECTOR=y and CONFIG_PROC_EVENTS=y.
#
# usage: tiny-kernel.sh VARIANT [--cache DIR] [--jobs N]
#   VARIANT   no-connector    CONFIG_CONNECTOR off (socket() -> EPROTONOSUPPORT)
#             no-proc-events  CONFIG_CONNECTOR=y, CONFIG_PROC_EVENTS off
#                             (LISTEN to {1,1} is dropped: no ack)
#             both            build both, print nothing (CI warms the cache)
#   --cache   default $CNASIO_TINY_KERNEL_CACHE, else /var/cache/cnasio-tiny-kernels
#             if writable, else ./tiny-kernel-cache
#   --jobs    make -j (default: the number of CPUs)
# Prints the path of the bzImage on stdout (logs go to stderr). The cache key
# is the variant, the source package's version and a hash of the configuration
# asked for (and of $recipe), so changing either rebuilds. A build is checked: every
# option asked for must be in the final .config with the value asked for
# (Kconfig silently drops an option whose dependencies are unmet).
#
# Cost (measured 2026-12-01 on the 2-CPU development VM, -j2 under nice 5,
# load average 10-14 from four other engineers' builds): the first variant
# took 70 min of wall time (source download 1 s, xz extraction ~2 min, the
# rest compiling); the second variant, built in the same object tree, about a
# minute (see build_one); a cached variant takes 0.2 s and boots to a verdict
# in 6 s. At load 2-3 a full build took 6 min 53 s.
#
# The base is `make tinyconfig` plus what run-vm.sh's initramfs boot needs:
# an ELF and #! loader, the initramfs (gzip), a serial console, proc/sys/dev/
# tmpfs mounts, ioperm for the isa-debug-exit verdict port, and the syscalls
# static glibc + Boost.Asio programs use (futex, epoll, eventfd, timerfd,
# signalfd, POSIX timers, multi-user ids). Needs: make gcc flex bison bc
# libelf-dev libssl-dev xz-utils apt-get (tests/vm/install-deps.sh).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
variant="" cache="${CNASIO_TINY_KERNEL_CACHE:-}" jobs=$(nproc)
die() { echo "tiny-kernel: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
    case "$1" in
        --cache) cache=$2; shift 2 ;;
        --jobs) jobs=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d'; exit 0 ;;
        no-connector|no-proc-events|both) variant=$1; shift ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
[ -n "$variant" ] || die "VARIANT is required: no-connector, no-proc-events or both"
if [ -z "$cache" ]; then
    if mkdir -p /var/cache/cnasio-tiny-kernels 2>/dev/null && [ -w /var/cache/cnasio-tiny-kernels ]; then
        cache=/var/cache/cnasio-tiny-kernels
    else
        cache=$PWD/tiny-kernel-cache
    fi
fi
mkdir -p "$cache" || die "cannot create $cache"
cache=$(cd "$cache" && pwd)

need=()
for tool in make gcc flex bison bc xz apt-get dpkg-deb sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
[ -f /usr/include/libelf.h ] || need+=("libelf-dev")
[ -f /usr/include/openssl/ssl.h ] || need+=("libssl-dev")
[ ${#need[@]} -eq 0 ] || die "missing ${need[*]}; install them with: sudo $here/install-deps.sh"

# What every variant has. Values are checked after olddefconfig.
common_config='
CONFIG_64BIT=y
CONFIG_PRINTK=y
CONFIG_BUG=y
CONFIG_TTY=y
CONFIG_SERIAL_8250=y
CONFIG_SERIAL_8250_CONSOLE=y
CONFIG_BLK_DEV_INITRD=y
CONFIG_RD_GZIP=y
CONFIG_BINFMT_ELF=y
CONFIG_BINFMT_SCRIPT=y
CONFIG_PROC_FS=y
CONFIG_SYSFS=y
CONFIG_DEVTMPFS=y
CONFIG_SHMEM=y
CONFIG_TMPFS=y
CONFIG_MULTIUSER=y
CONFIG_FUTEX=y
CONFIG_EPOLL=y
CONFIG_EVENTFD=y
CONFIG_TIMERFD=y
CONFIG_SIGNALFD=y
CONFIG_POSIX_TIMERS=y
CONFIG_X86_IOPL_IOPERM=y
CONFIG_NET=y
CONFIG_UNIX=y
CONFIG_UNWINDER_GUESS=y
'
case_config() {  # VARIANT -> its own lines
    case "$1" in
        no-connector) printf '%s\n' '# CONFIG_CONNECTOR is not set' ;;
        no-proc-events) printf '%s\n' 'CONFIG_CONNECTOR=y' '# CONFIG_PROC_EVENTS is not set' ;;
    esac
}

# ---- source: Debian's linux-source-6.1, downloaded once ----
src_version() {
    apt-cache policy linux-source-6.1 2>/dev/null | sed -n 's/^ *Candidate: //p' | head -n1
}
exec 9>"$cache/.lock"
flock 9
version=$(cat "$cache/source.version" 2>/dev/null || true)
tarball=$cache/linux-source-6.1.tar.xz
if [ -z "$version" ] || [ ! -s "$tarball" ]; then
    version=$(src_version)
    [ -n "$version" ] && [ "$version" != "(none)" ] || die "apt knows no linux-source-6.1 (apt-get update?)"
    tmp=$(mktemp -d "$cache/dl.XXXXXX") || die "mktemp"
    echo "tiny-kernel: downloading linux-source-6.1 $version" >&2
    (cd "$tmp" && apt-get -q -o APT::Sandbox::User=root download "linux-source-6.1=$version") >&2 ||
        { rm -rf "$tmp"; die "apt-get download linux-source-6.1 failed (needs the Debian mirror)"; }
    dpkg-deb --fsys-tarfile "$tmp"/linux-source-6.1_*.deb | tar -x -O ./usr/src/linux-source-6.1.tar.xz >"$tarball.part" &&
        mv "$tarball.part" "$tarball" || { rm -rf "$tmp" "$tarball.part"; die "extracting the source tarball failed"; }
    rm -rf "$tmp"
    echo "$version" >"$cache/source.version"
fi
# Bump when the build steps change in a way the configuration does not show.
recipe=1

build_one() {  # VARIANT -> prints the bzImage path
    local v=$1
    local key
    key="$v-$version-$({ echo "$recipe"; printf '%s' "$common_config"; case_config "$v"; } | sha256sum | cut -c1-12)"
    local out=$cache/$key
    if [ -s "$out/bzImage" ]; then
        echo "tiny-kernel: cached $out/bzImage" >&2
        echo "$out/bzImage"
        return 0
    fi
    local tree=$cache/src-$version
    if [ ! -f "$tree/.extracted" ]; then
        echo "tiny-kernel: extracting the source" >&2
        rm -rf "$tree" && mkdir -p "$tree" &&
            tar -xJf "$tarball" -C "$tree" --strip-components=1 && touch "$tree/.extracted" ||
            die "extracting $tarball failed"
    fi
    # One object tree for every variant: Kbuild's fixdep tracks which
    # objects read which CONFIG_ symbol, so switching variants recompiles
    # only the connector's users. Measured on a warm tree (make V=2, -j1,
    # nice 15): no-proc-events -> no-connector 50 s wall, 3 files compiled;
    # back 80 s, 3 files compiled (the objects of the other variant stay in
    # the tree). A cold cache therefore costs one full build plus about a
    # minute for the second variant.
    local obj=$cache/obj
    mkdir -p "$obj"
    local t0 t1
    t0=$(date +%s)
    local -a kmake=(make -C "$tree" O="$obj" -j"$jobs" CC=gcc)
    "${kmake[@]}" tinyconfig >"$obj/config.log" 2>&1 || { cat "$obj/config.log" >&2; die "make tinyconfig failed"; }
    { printf '%s' "$common_config"; case_config "$v"; } >"$obj/fragment.config"
    cat "$obj/fragment.config" >>"$obj/.config"
    "${kmake[@]}" olddefconfig >>"$obj/config.log" 2>&1 || { cat "$obj/config.log" >&2; die "make olddefconfig failed"; }
    local line name bad=0
    while IFS= read -r line; do
        [ -n "$line" ] || continue
        if [[ "$line" =~ ^#\ (CONFIG_[A-Z0-9_]+)\ is\ not\ set$ ]]; then
            name=${BASH_REMATCH[1]}
            grep -q "^$name=" "$obj/.config" && { echo "tiny-kernel: $name is set, asked off" >&2; bad=1; }
        else
            grep -qx "$line" "$obj/.config" || { echo "tiny-kernel: $line did not stick (unmet dependency?)" >&2; bad=1; }
        fi
    done <"$obj/fragment.config"
    [ $bad = 0 ] || die "the $v configuration is not what was asked for (see $obj/.config)"
    echo "tiny-kernel: building $v ($version, -j$jobs)" >&2
    "${kmake[@]}" bzImage >"$obj/build.log" 2>&1 || { tail -n 40 "$obj/build.log" >&2; die "building the $v kernel failed"; }
    t1=$(date +%s)
    mkdir -p "$out.part"
    cp "$obj/arch/x86/boot/bzImage" "$out.part/bzImage" && cp "$obj/.config" "$out.part/config" &&
        echo "$((t1 - t0))" >"$out.part/build-seconds" || die "saving the $v kernel failed"
    rm -rf "$out" && mv "$out.part" "$out"
    echo "tiny-kernel: built $v in $((t1 - t0)) s" >&2
    echo "$out/bzImage"
}

case "$variant" in
    both) build_one no-connector >/dev/null && build_one no-proc-events >/dev/null ;;
    *) build_one "$variant" ;;
esac
