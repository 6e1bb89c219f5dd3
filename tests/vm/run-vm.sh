#!/bin/bash
# Boots a Debian kernel under qemu with the cnasio_echo module and statically
# linked guest test programs, and decides the verdict from two independent
# signals: qemu's exit status (33 pass / 35 fail, which the guest sets through
# isa-debug-exit on x86-64 and semihosting on arm64, see guest/vm_exit.cpp)
# and a verdict line (carrying a per-run nonce) in the console log. A guest
# test failure or skip, an oops/BUG/WARNING in dmesg, a kernel panic, a hang
# (hard timeout) or a missing verdict line all fail, with the console log
# printed. Missing tools fail too (never a skip), naming what to install.
#
# usage: run-vm.sh --kernel 6.1|5.10 --work DIR [options] [GUEST_PROGRAM...]
#   --kernel 6.1        Debian 12's kernel (headers from linux-headers-amd64)
#   --kernel 5.10       Debian 11's kernel, fetched with a private apt config
#   --kernel 6.12       bookworm-backports' kernel, likewise (a 6.6+ kernel)
#   --kernel tiny-no-connector | tiny-no-proc-events
#                       a small 6.1 kernel without CONFIG_CONNECTOR / without
#                       CONFIG_PROC_EVENTS, built once by tiny-kernel.sh (its
#                       own cache); no headers: use it with --no-module
#   --arch arm64        boot Debian 12's arm64 kernel under qemu-system-aarch64
#                       -M virt -cpu cortex-a72 (no module unless --module;
#                       programs must be static aarch64 ones, vm-exit included)
#   --headers DIR --vmlinuz FILE [--kmakefile FILE]
#                       any other kernel: a Kbuild tree and its image
#   --work DIR          scratch + log directory (created)
#   --cache DIR         downloaded kernels (default $CNASIO_VM_CACHE, else
#                       /var/cache/cnasio-vm if writable, else DIR/cache)
#   --source DIR        project root (default: two levels above this script)
#   --vm-exit FILE      static vm-exit helper (default: built from guest/)
#   --build-guests      also build every tests/vm/guest/*.cpp test program
#   --module-args ARGS  insmod parameters
#   --w1                also load Debian's w1 core (wire.ko, kept from the
#                       kernel's image package) and the cnasio_w1_virtual bus
#                       master (examples/kernel; built like cnasio_echo, also
#                       on arm64), and require the w1 connector (3:1)
#   --w1-args ARGS      insmod parameters for cnasio_w1_virtual
#   --timeout S         hard limit for the whole boot (default 300)
#   --test-timeout S    limit per guest program, 0 = none (default 120)
#   --expect-failure RE succeed only if the guest ran and FAILED, with a
#                       failure line matching RE (repeatable: all must
#                       match; harness self-tests); RE "timeout" expects
#                       the hard timeout instead, in the program named by
#   --expect-hang-in NAME
#   --no-module         boot without building or loading cnasio_echo
#   --module            build and load it (the default on amd64); on arm64 it
#                       is cross-built against Debian's arm64 headers with the
#                       amd64 kbuild tools of the same version
#   --args-for NAME ARGS  arguments for guest program NAME (split at blanks,
#                       no quoting, no globbing: write a blank as ? in doctest filters)
#   --min-test-cases NAME N
#                       guest program NAME is a doctest program: the run fails
#                       unless its summary line reports at least N (>= 1) test
#                       cases run and all of them passed (doctest exits 0 when
#                       a filter matches nothing: this catches a filter that
#                       selects nothing or too little)
#   --bin FILE          also put FILE in the guest's /bin (a tool the guest
#                       programs call, e.g. cnctl)
#   --accel kvm|tcg     default tcg (or $CNASIO_VM_ACCEL)
# Guest programs run in the order given; exit 0 = pass, anything else fails
# (77, a skip elsewhere, too: in the VM every precondition is ours to meet).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
source_dir=$(cd "$here/../.." && pwd)
kernel="" work="" cache="${CNASIO_VM_CACHE:-}" headers="" vmlinuz="" kmakefile=""
vm_exit="" build_guests=0 module_args="" timeout_s=300 test_timeout=120
expect_failures=() expect_hang_in="" with_module=1 module_asked=0 accel="${CNASIO_VM_ACCEL:-}"
with_w1=0 w1_args="" wire_ko=""
guests=()
declare -A guest_args=()
declare -A min_test_cases=()
extra_bins=()
arch=amd64

die() {
    echo "run-vm: $*" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --kernel) kernel=$2; shift 2 ;;
        --arch) arch=$2; shift 2 ;;
        --work) work=$2; shift 2 ;;
        --cache) cache=$2; shift 2 ;;
        --source) source_dir=$(cd "$2" && pwd); shift 2 ;;
        --headers) headers=$2; shift 2 ;;
        --vmlinuz) vmlinuz=$2; shift 2 ;;
        --kmakefile) kmakefile=$2; shift 2 ;;
        --vm-exit) vm_exit=$2; shift 2 ;;
        --build-guests) build_guests=1; shift ;;
        --module-args) module_args=$2; shift 2 ;;
        --timeout) timeout_s=$2; shift 2 ;;
        --test-timeout) test_timeout=$2; shift 2 ;;
        --expect-failure) expect_failures+=("$2"); shift 2 ;;
        --expect-hang-in) expect_hang_in=$2; shift 2 ;;
        --no-module) with_module=0; shift ;;
        --module) with_module=1; module_asked=1; shift ;;
        --w1) with_w1=1; shift ;;
        --w1-args) w1_args=$2; shift 2 ;;
        --args-for) guest_args[$2]=$3; shift 3 ;;
        --min-test-cases)
            [[ "$3" =~ ^[1-9][0-9]*$ ]] || die "--min-test-cases $2 wants a count >= 1, not '$3'"
            min_test_cases[$2]=$3; shift 3 ;;
        --bin) extra_bins+=("$2"); shift 2 ;;
        --accel) accel=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d'; exit 0 ;;
        --*) die "unknown option $1" ;;
        *) guests+=("$1"); shift ;;
    esac
done
[ -n "$work" ] || die "--work DIR is required"
if [ "$with_w1" = 1 ]; then
    # The virtual bus master is built with the example module.
    [ "$with_module" = 1 ] || die "--w1 needs the module build (drop --no-module)"
    module_asked=1
    [ -z "$headers" ] || [ -n "$kernel" ] || die "--w1 needs --kernel or --arch arm64 (wire.ko comes from Debian's image package)"
fi
[ -n "$kernel" ] || [ -n "$headers" ] || [ -n "$vmlinuz" ] || [ "$arch" = arm64 ] ||
    die "--kernel 6.1|5.10 (or --headers/--vmlinuz, or --arch arm64) is required"
mkdir -p "$work" || die "cannot create $work"
work=$(cd "$work" && pwd)
t_start=$(date +%s%N)
elapsed() {
    local tenths=$((($(date +%s%N) - t_start) / 100000000))
    echo "$((tenths / 10)).$((tenths % 10))"
}
log() { echo "run-vm [$(elapsed)s] $*"; }

# ---- tools: missing ones fail (never skip) with what to install ----
case "$arch" in
    amd64) qemu_bin=qemu-system-x86_64 ;;
    arm64) qemu_bin=qemu-system-aarch64; [ "$module_asked" = 1 ] || with_module=0 ;;
    *) die "unknown --arch $arch (amd64 or arm64)" ;;
esac
need=()
for tool in "$qemu_bin" cpio gzip make gcc g++ dpkg-deb apt-get; do
    command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
busybox_bin=/bin/busybox
if [ "$arch" = amd64 ] && { [ ! -x "$busybox_bin" ] || ldd "$busybox_bin" >/dev/null 2>&1; }; then
    need+=("busybox-static (a statically linked /bin/busybox)")
fi
if [ ${#need[@]} -gt 0 ]; then
    echo "run-vm: FAIL: missing ${need[*]}" >&2
    if [ "$arch" = arm64 ]; then
        echo "run-vm: install them with: sudo $source_dir/tests/aarch64/install-deps.sh" >&2
    else
        echo "run-vm: install them with: sudo $here/install-deps.sh" >&2
    fi
    exit 1
fi

if [ -z "$cache" ]; then
    if mkdir -p /var/cache/cnasio-vm 2>/dev/null && [ -w /var/cache/cnasio-vm ]; then
        cache=/var/cache/cnasio-vm
    else
        cache=$work/cache
    fi
fi
mkdir -p "$cache" || die "cannot create cache $cache"

# ---- kernel: headers to build against + the image to boot (same $kver) ----
# Runs under a lock: meson runs the per-kernel tests in parallel on one cache.
extract_vmlinuz() {  # deb kver dest
    local tmp
    tmp=$(mktemp -d "$cache/extract.XXXXXX") || return 1
    dpkg-deb --fsys-tarfile "$1" | tar -x -C "$tmp" "./boot/vmlinuz-$2" &&
        mv "$tmp/boot/vmlinuz-$2" "$3"
    local rc=$?
    rm -rf "$tmp"
    return $rc
}

fetch_bookworm() {
    local dep
    dep=$(dpkg-query -W -f='${Depends}' linux-headers-amd64 2>/dev/null) ||
        { echo "run-vm: FAIL: linux-headers-amd64 is not installed; run: sudo $here/install-deps.sh" >&2; return 1; }
    kver=$(echo "$dep" | grep -o 'linux-headers-[^ ,]*-amd64' | head -n1 | sed 's/^linux-headers-//')
    headers=/usr/src/linux-headers-$kver
    [ -d "$headers" ] || { echo "run-vm: FAIL: $headers missing; run: sudo $here/install-deps.sh" >&2; return 1; }
    vmlinuz=$cache/kernels/vmlinuz-$kver
    if [ ! -s "$vmlinuz" ]; then
        mkdir -p "$cache/kernels" "$cache/debs"
        log "downloading linux-image-$kver"
        local pkg
        for pkg in "linux-image-$kver-unsigned" "linux-image-$kver"; do
            (cd "$cache/debs" && apt-get -q -o APT::Sandbox::User=root download "$pkg") >/dev/null 2>&1 && break
        done
        local deb
        deb=$(ls "$cache/debs/"linux-image-"$kver"*_amd64.deb 2>/dev/null | head -n1)
        [ -n "$deb" ] && extract_vmlinuz "$deb" "$kver" "$vmlinuz" ||
            { echo "run-vm: FAIL: could not download linux-image-$kver (apt-get download; needs the Debian mirror)" >&2; return 1; }
        rm -f "$deb"
    fi
}

fetch_private() {  # SUITE SERIES: the newest SERIES.x amd64 kernel of Debian's SUITE
    # A private apt configuration: SUITE never enters the system's sources.
    local suite=$1 series=$2
    local apt_dir=$cache/apt-$suite marker=$cache/kernels/$suite.kver
    local -a apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
                       -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
                       -o Dir::State::status=/dev/null -o APT::Architecture=amd64
                       -o APT::Architectures=amd64 -o APT::Sandbox::User=root)
    if [ -s "$marker" ]; then
        kver=$(cat "$marker")
    else
        mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$cache/kernels"
        echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" \
            > "$apt_dir/sources.list"
        log "apt-get update (private $suite lists, $mirror)"
        apt-get -q "${apt_opts[@]}" update >"$work/apt-$suite.log" 2>&1 ||
            { cat "$work/apt-$suite.log" >&2; echo "run-vm: FAIL: cannot reach the $suite archive" >&2; return 1; }
        kver=$(apt-cache "${apt_opts[@]}" show linux-headers-amd64 |
               sed -n "s/^Depends: linux-headers-\(${series//./\\.}[.][^ ]*-amd64\).*/\1/p" | head -n1)
        [ -n "$kver" ] || { echo "run-vm: FAIL: no $series linux-headers-amd64 in $suite" >&2; return 1; }
        # The headers package names its -common and kbuild companions.
        local deps common kbuild
        deps=$(apt-cache "${apt_opts[@]}" show "linux-headers-$kver" | sed -n 's/^Depends: //p' | head -n1)
        common=$(echo "$deps" | grep -o 'linux-headers-[^ ,]*-common' | head -n1)
        kbuild=$(echo "$deps" | grep -o 'linux-kbuild-[^ ,]*' | head -n1)
        [ -n "$common" ] && [ -n "$kbuild" ] ||
            { echo "run-vm: FAIL: cannot tell the companions of linux-headers-$kver: $deps" >&2; return 1; }
        local dest=$cache/kernels/$kver debs=$cache/debs-$kver
        rm -rf "$dest" "$debs" && mkdir -p "$dest" "$debs"
        log "downloading Linux $kver (image, headers, kbuild) from $suite"
        (cd "$debs" && apt-get -q "${apt_opts[@]}" download "linux-image-$kver-unsigned" \
            "linux-headers-$kver" "$common" "$kbuild") >"$work/apt-download.log" 2>&1 ||
            { cat "$work/apt-download.log" >&2; echo "run-vm: FAIL: apt-get download of Linux $kver failed" >&2; return 1; }
        local deb
        for deb in "$debs"/*.deb; do
            dpkg -x "$deb" "$dest" || { echo "run-vm: FAIL: dpkg -x $deb" >&2; return 1; }
        done
        # Modules are not needed (the connector is built in): save the space.
        rm -rf "$dest/lib/modules" "$dest/usr/lib/modules" "$debs"
        echo "$common" > "$dest/common"
        echo "$kver" > "$marker"
    fi
    local dest=$cache/kernels/$kver
    headers=$dest/usr/src/linux-headers-$kver
    # The -amd64 tree's Makefile includes the -common one by absolute path.
    kmakefile=$dest/usr/src/$(cat "$dest/common" 2>/dev/null)/Makefile
    vmlinuz=$dest/boot/vmlinuz-$kver
    [ -d "$headers" ] && [ -f "$kmakefile" ] && [ -s "$vmlinuz" ] ||
        { echo "run-vm: FAIL: incomplete kernel cache in $dest (delete $marker to refetch)" >&2; return 1; }
}

fetch_bookworm_arm64() {
    # Debian 12's arm64 kernel image and busybox-static, from private apt
    # lists: the host needs no foreign architecture (dpkg --add-architecture).
    local apt_dir=$cache/apt-bookworm-arm64
    local -a apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
                       -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
                       -o Dir::State::status=/dev/null -o APT::Architecture=arm64
                       -o APT::Architectures=arm64 -o APT::Sandbox::User=root)
    if [ ! -s "$cache/kernels/arm64.kver" ]; then
        mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$cache/kernels"
        echo "deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bookworm main" \
            > "$apt_dir/sources.list"
        log "apt-get update (private bookworm arm64 lists, $mirror)"
        apt-get -q "${apt_opts[@]}" update >"$work/apt-arm64.log" 2>&1 ||
            { cat "$work/apt-arm64.log" >&2; echo "run-vm: FAIL: cannot reach the Debian archive for arm64" >&2; return 1; }
        local k
        k=$(apt-cache "${apt_opts[@]}" show linux-image-arm64 | sed -n 's/^Depends: linux-image-\([^ ]*-arm64\).*/\1/p' | head -n1)
        [ -n "$k" ] || { echo "run-vm: FAIL: no linux-image-arm64 in bookworm" >&2; return 1; }
        local dest=$cache/kernels/$k debs=$cache/debs-$k
        rm -rf "$dest" "$debs" && mkdir -p "$dest" "$debs"
        log "downloading Linux $k (arm64) and busybox-static:arm64"
        (cd "$debs" && apt-get -q "${apt_opts[@]}" download "linux-image-$k-unsigned" busybox-static) \
            >"$work/apt-download.log" 2>&1 ||
            { cat "$work/apt-download.log" >&2; echo "run-vm: FAIL: apt-get download for arm64 failed" >&2; return 1; }
        local deb
        for deb in "$debs"/*.deb; do
            dpkg -x "$deb" "$dest" || { echo "run-vm: FAIL: dpkg -x $deb" >&2; return 1; }
        done
        rm -rf "$dest/lib/modules" "$debs"
        echo "$k" > "$cache/kernels/arm64.kver"
    fi
    kver=$(cat "$cache/kernels/arm64.kver")
    vmlinuz=$cache/kernels/$kver/boot/vmlinuz-$kver
    busybox_bin=$cache/kernels/$kver/bin/busybox
    [ -s "$vmlinuz" ] && [ -x "$busybox_bin" ] ||
        { echo "run-vm: FAIL: incomplete arm64 cache in $cache/kernels/$kver (delete $cache/kernels/arm64.kver to refetch)" >&2; return 1; }
}

fetch_arm64_build_tree() {
    # A Kbuild tree for the arm64 kernel $kver: its arm64 headers and -common
    # headers, with the AMD64 linux-kbuild of the same version (the arm64
    # one's fixdep/modpost are aarch64 binaries), extracted into one folder.
    # Private apt lists for both architectures; nothing enters the system.
    local apt_dir=$cache/apt-bookworm-arm64-build dest=$cache/kernels/$kver-build
    local -a apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
                       -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
                       -o Dir::State::status=/dev/null -o APT::Architecture=amd64
                       -o APT::Architectures::=amd64 -o APT::Architectures::=arm64 -o APT::Sandbox::User=root)
    if [ ! -s "$dest/common" ]; then
        mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
        echo "deb [arch=amd64,arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bookworm main" \
            > "$apt_dir/sources.list"
        log "apt-get update (private bookworm amd64+arm64 lists, $mirror)"
        apt-get -q "${apt_opts[@]}" update >"$work/apt-arm64-build.log" 2>&1 ||
            { cat "$work/apt-arm64-build.log" >&2; echo "run-vm: FAIL: cannot reach the Debian archive" >&2; return 1; }
        local deps common kbuild version
        deps=$(apt-cache "${apt_opts[@]}" show "linux-headers-$kver:arm64" | sed -n 's/^Depends: //p' | head -n1)
        version=$(apt-cache "${apt_opts[@]}" show "linux-headers-$kver:arm64" | sed -n 's/^Version: //p' | head -n1)
        common=$(echo "$deps" | grep -o 'linux-headers-[^ ,]*-common' | head -n1)
        kbuild=$(echo "$deps" | grep -o 'linux-kbuild-[^ ,]*' | head -n1)
        [ -n "$common" ] && [ -n "$kbuild" ] && [ -n "$version" ] ||
            { echo "run-vm: FAIL: cannot tell the companions of linux-headers-$kver: $deps" >&2; return 1; }
        local debs=$cache/debs-$kver-build
        rm -rf "$dest" "$debs" && mkdir -p "$dest" "$debs"
        log "downloading the arm64 headers of Linux $kver and $kbuild:amd64 $version"
        (cd "$debs" && apt-get -q "${apt_opts[@]}" download "linux-headers-$kver:arm64=$version" \
            "$common=$version" "$kbuild:amd64=$version") >"$work/apt-download.log" 2>&1 ||
            { cat "$work/apt-download.log" >&2; echo "run-vm: FAIL: apt-get download of the arm64 headers failed" >&2; return 1; }
        local deb
        for deb in "$debs"/*.deb; do
            dpkg -x "$deb" "$dest" || { echo "run-vm: FAIL: dpkg -x $deb" >&2; return 1; }
        done
        rm -rf "$debs"
        echo "$common" > "$dest/common"
    fi
    headers=$dest/usr/src/linux-headers-$kver
    # The arm64 tree's Makefile includes the -common one by absolute path.
    kmakefile=$dest/usr/src/$(cat "$dest/common")/Makefile
    [ -d "$headers" ] && [ -f "$kmakefile" ] ||
        { echo "run-vm: FAIL: incomplete arm64 build tree in $dest (delete it to refetch)" >&2; return 1; }
}

private_apt_opts() {  # APT_DIR ARCH: the private apt configuration a fetch_* above made
    apt_opts=(-o "Dir::Etc::SourceList=$1/sources.list" -o Dir::Etc::SourceParts=/dev/null
              -o "Dir::State::Lists=$1/lists" -o "Dir::Cache=$1/cache"
              -o Dir::State::status=/dev/null -o "APT::Architecture=$2"
              -o "APT::Architectures=$2" -o APT::Sandbox::User=root)
}

fetch_wire() {  # KVER [APT OPTIONS...]: Debian's w1 core module for --w1
    # The cached kernels keep no modules (the connector is built in), so
    # wire.ko is taken from the image package on first use and kept under a
    # name of its own, $cache/kernels/KVER-modules/wire.ko (decompressed if
    # the package ships it compressed): the entries above stay as they were.
    local k=$1; shift
    local dest=$cache/kernels/$k-modules
    wire_ko=$dest/wire.ko
    [ -s "$wire_ko" ] && return 0
    local tmp pkg deb found
    tmp=$(mktemp -d "$cache/wire.XXXXXX") || return 1
    log "downloading linux-image-$k for wire.ko"
    for pkg in "linux-image-$k-unsigned" "linux-image-$k"; do
        (cd "$tmp" && apt-get -q "$@" download "$pkg") >"$work/apt-wire.log" 2>&1 && break
    done
    deb=$(ls "$tmp"/linux-image-*.deb 2>/dev/null | head -n1)
    if [ -z "$deb" ]; then
        cat "$work/apt-wire.log" >&2
        rm -rf "$tmp"
        echo "run-vm: FAIL: could not download linux-image-$k for wire.ko" >&2
        return 1
    fi
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards '*/drivers/w1/wire.ko*'
    found=$(find "$tmp" -path '*/drivers/w1/wire.ko*' -type f | head -n1)
    mkdir -p "$dest"
    case "$found" in
        "") ;;
        *.xz) xz -dc "$found" >"$tmp/wire.ko" ;;
        *.zst) zstd -qdc "$found" >"$tmp/wire.ko" ;;
        *.gz) gzip -dc "$found" >"$tmp/wire.ko" ;;
        *) cp "$found" "$tmp/wire.ko" ;;
    esac
    if [ -z "$found" ] || [ ! -s "$tmp/wire.ko" ] || ! mv "$tmp/wire.ko" "$wire_ko"; then
        rm -rf "$tmp"
        echo "run-vm: FAIL: no drivers/w1/wire.ko in $(basename "$deb") (is CONFIG_W1=m?)" >&2
        return 1
    fi
    rm -rf "$tmp"
    log "kept $wire_ko ($(du -k "$wire_ko" | cut -f1) KiB)"
}

mirror=$(grep -rhoE 'https?://[^ ]*/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
         grep -v security | head -n1 | tr -d ' ')
mirror=${mirror:-http://deb.debian.org/debian}

kver=""
if [ "$arch" = arm64 ]; then
    exec 9>"$cache/.lock"
    flock 9
    fetch_bookworm_arm64 || exit 1
    if [ "$with_module" = 1 ]; then fetch_arm64_build_tree || exit 1; fi
    if [ "$with_w1" = 1 ]; then
        private_apt_opts "$cache/apt-bookworm-arm64" arm64
        fetch_wire "$kver" "${apt_opts[@]}" || exit 1
    fi
    flock -u 9
elif [ "${kernel#tiny-}" != "$kernel" ]; then
    # Built, not downloaded; tiny-kernel.sh locks its own cache.
    [ "$with_module" = 0 ] || die "--kernel $kernel has no headers to build the module against: add --no-module"
    vmlinuz=$("$here/tiny-kernel.sh" "${kernel#tiny-}") || { echo "run-vm: FAIL: tiny-kernel.sh ${kernel#tiny-} failed" >&2; exit 1; }
    kver=$kernel
elif [ -n "$kernel" ]; then
    exec 9>"$cache/.lock"
    flock 9
    case "$kernel" in
        6.1) fetch_bookworm || exit 1 ;;
        5.10) fetch_private bullseye 5.10 || exit 1 ;;
        6.12) fetch_private bookworm-backports 6.12 || exit 1 ;;
        *) die "unknown --kernel $kernel (6.1, 5.10 or 6.12; or --headers/--vmlinuz)" ;;
    esac
    if [ "$with_w1" = 1 ]; then
        case "$kernel" in
            6.1) fetch_wire "$kver" -o APT::Sandbox::User=root || exit 1 ;;
            5.10) private_apt_opts "$cache/apt-bullseye" amd64; fetch_wire "$kver" "${apt_opts[@]}" || exit 1 ;;
            6.12) private_apt_opts "$cache/apt-bookworm-backports" amd64; fetch_wire "$kver" "${apt_opts[@]}" || exit 1 ;;
        esac
    fi
    flock -u 9
else
    [ -f "$vmlinuz" ] || die "--vmlinuz FILE must exist"
    [ "$with_module" = 0 ] || [ -d "$headers" ] || die "--headers DIR must exist (or --no-module)"
    kver=$(basename "$vmlinuz" | sed 's/^vmlinuz-//')
fi
log "kernel $kver ($arch): ${headers:+headers $headers, }image $vmlinuz"

# ---- module ----
mod_dir=$work/module
if [ "$with_module" = 1 ]; then
    rm -rf "$mod_dir" && mkdir -p "$mod_dir"
    cp "$source_dir"/examples/kernel/*.c "$source_dir"/examples/kernel/*.h "$source_dir"/examples/kernel/Kbuild "$mod_dir"/
    kmake=(make -C "$headers")
    [ -n "$kmakefile" ] && kmake+=(-f "$kmakefile")
    if [ "$arch" = arm64 ]; then
        # Never `make scripts`/`modules_prepare` in this tree: it deletes autoconf.h.
        kmake+=(ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-)
    else
        kmake+=(CC=gcc)
    fi
    # W=1 and warnings as errors: the module must stay clean on every kernel.
    # No BTF for the module: newer trees would need pahole, and nothing here
    # reads module BTF.
    if ! "${kmake[@]}" M="$mod_dir" W=1 KCFLAGS=-Werror CONFIG_DEBUG_INFO_BTF_MODULES= modules >"$work/module-build.log" 2>&1; then
        cat "$work/module-build.log"
        echo "run-vm: FAIL: module build against $kver failed" >&2
        exit 1
    fi
    log "module built (W=1 -Werror)"
fi

# ---- guest programs ----
cxx_static=(g++ -static -O2 -std=c++20 -Wall -Wextra -Wpedantic -Werror -pthread -Wno-mismatched-new-delete
            -I "$source_dir/include" -I "$source_dir/examples/kernel" -I "$here/guest")
guest_bin=$work/guest-bin
mkdir -p "$guest_bin"
if [ -z "$vm_exit" ]; then
    [ "$arch" = amd64 ] || die "--vm-exit is required for --arch $arch"
    vm_exit=$guest_bin/vm-exit
    "${cxx_static[@]}" "$here/guest/vm_exit.cpp" -o "$vm_exit" || die "building vm-exit failed"
fi
if [ "$build_guests" = 1 ]; then
    [ "$arch" = amd64 ] || die "--build-guests builds for amd64 only"
    for src in "$here"/guest/*.cpp; do
        name=$(basename "$src" .cpp)
        case "$name" in vm_exit|selftest_*) continue ;; esac
        "${cxx_static[@]}" "$src" -o "$guest_bin/$name" || die "building $name failed"
        guests+=("$guest_bin/$name")
    done
fi
[ ${#guests[@]} -gt 0 ] || die "no guest programs (pass paths or --build-guests)"

# ---- initramfs ----
root=$work/initramfs
rm -rf "$root" && mkdir -p "$root"/{bin,lib/modules,tests,proc,sys,dev,tmp}
cp "$busybox_bin" "$root/bin/busybox"
cp "$vm_exit" "$root/bin/vm-exit"
cp "$here/guest/lib.sh" "$root/lib/guest.sh" # sourced by the guest shell tests
[ "$with_module" = 1 ] && cp "$mod_dir/cnasio_echo.ko" "$root/lib/modules/"
if [ "$with_w1" = 1 ]; then
    cp "$wire_ko" "$root/lib/modules/wire.ko" && cp "$mod_dir/cnasio_w1_virtual.ko" "$root/lib/modules/" ||
        die "cannot copy wire.ko / cnasio_w1_virtual.ko"
fi
for b in "${extra_bins[@]}"; do
    cp "$b" "$root/bin/$(basename "$b" | sed -e 's/^vm-guest-//' -e 's/^aarch64-//')" || die "cannot copy $b"
done
n=0
for g in "${guests[@]}"; do
    [ -x "$g" ] || die "guest program $g is not an executable"
    if ldd "$g" >/dev/null 2>&1; then die "guest program $g is not statically linked"; fi
    n=$((n + 1))
    # Meson names them vm-guest-NAME; the console reports NAME.
    gname=$(basename "$g" | sed -e 's/^vm-guest-//' -e 's/^aarch64-//' -e 's/\.sh$//')
    cp "$g" "$root/tests/$(printf '%02d' $n)-$gname"
    printf '%s\n' "${guest_args[$gname]:-}" >"$root/tests/$(printf '%02d' $n)-$gname.args"
done
nonce=$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')
cat > "$root/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
set -o pipefail
failures=0
total=0
fail() { echo "CNASIO-VM-FAILURE \$*"; failures=\$((failures + 1)); }
uptime_s() { cut -d' ' -f1 /proc/uptime; }
echo "CNASIO-VM kernel \$(uname -r) booted at \$(uptime_s)s"
if [ ! -f /lib/modules/cnasio_echo.ko ]; then
    echo "CNASIO-VM no module in this run"
elif insmod /lib/modules/cnasio_echo.ko $module_args; then
    echo "CNASIO-VM module loaded"
else
    fail "insmod cnasio_echo.ko"
fi
# --w1: the w1 core first (insmod resolves no dependencies), then the bus master.
if [ -f /lib/modules/wire.ko ]; then
    if insmod /lib/modules/wire.ko && insmod /lib/modules/cnasio_w1_virtual.ko $w1_args; then
        echo "CNASIO-VM w1 core and cnasio_w1_virtual loaded"
        grep -q ' 3:1\$' /proc/net/connector || fail "no w1 connector (3:1) in /proc/net/connector"
    else
        fail "insmod wire.ko / cnasio_w1_virtual.ko"
    fi
fi
set -- /tests/*
set -f  # guest program arguments are passed as written
for t in "\$@"; do
    case "\$t" in *.args) continue ;; esac
    name=\${t#/tests/??-}
    args=\$(cat "\$t.args")
    total=\$((total + 1))
    start=\$(uptime_s)
    echo "CNASIO-VM-START \$name"
    if [ "$test_timeout" -gt 0 ]; then
        timeout -s KILL $test_timeout "\$t" \$args >/tmp/out 2>&1
    else
        "\$t" \$args >/tmp/out 2>&1
    fi
    rc=\$?
    sed "s/^/[\$name] /" /tmp/out
    case \$rc in
        0) result=PASS ;;
        77) result=SKIP; fail "test \$name skipped (rc=77)" ;;
        *) result=FAIL; fail "test \$name rc=\$rc" ;;
    esac
    echo "CNASIO-VM-TEST \$name \$result rc=\$rc \$start..\$(uptime_s)s"
done
if grep -q '^cnasio_echo ' /proc/modules; then
    rmmod cnasio_echo || fail "rmmod cnasio_echo"
fi
if grep -q '^cnasio_w1_virtual ' /proc/modules; then
    rmmod cnasio_w1_virtual || fail "rmmod cnasio_w1_virtual"
fi
if grep -q '^wire ' /proc/modules; then
    rmmod wire || fail "rmmod wire"
fi
dmesg >/tmp/dmesg
if grep -E 'Oops|BUG:|WARNING:|Kernel panic|general protection fault|Call Trace|UBSAN|KASAN' /tmp/dmesg >/tmp/bad; then
    sed 's/^/[dmesg] /' /tmp/bad
    fail "dmesg reports a kernel problem"
fi
grep -i cnasio /tmp/dmesg | sed 's/^/[dmesg] /'
if [ \$failures -eq 0 ]; then verdict=PASS; code=pass; else verdict=FAIL; code=fail; fi
echo "CNASIO-VM-VERDICT $nonce \$verdict tests=\$total failures=\$failures at \$(uptime_s)s"
vm-exit \$code
echo "CNASIO-VM vm-exit did not stop the machine"
poweroff -f
INIT
chmod +x "$root/init"
initrd=$work/initramfs.cpio.gz
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$initrd" || die "packing the initramfs failed"
log "initramfs: $n guest program(s), $(du -k "$initrd" | cut -f1) KiB"

# ---- boot ----
# TCG by default: on our machines /dev/kvm exists but a KVM guest never gets
# past the BIOS (nested virtualisation without the needed CPU features).
accel=${accel:-tcg}
if [ "$arch" = arm64 ]; then
    # Debian's arm64 build has no pvpanic: a panic also exits 0. The guest
    # reports through semihosting instead (-semihosting-config ...).
    qemu=(qemu-system-aarch64 -M virt -cpu cortex-a72 -accel "$accel" -m 512 -smp 2 -nographic -no-reboot -nic none
          -semihosting-config enable=on,target=native,userspace=on
          -kernel "$vmlinuz" -initrd "$initrd"
          -append "console=ttyAMA0 panic=-1 oops=panic quiet")
else
    qemu=(qemu-system-x86_64 -accel "$accel" -m 512 -smp 2 -nographic -no-reboot -nic none
          -device isa-debug-exit,iobase=0xf4,iosize=0x04
          -kernel "$vmlinuz" -initrd "$initrd"
          -append "console=ttyS0 panic=-1 oops=panic quiet")
fi
console=$work/console.log
log "booting ($accel, hard timeout ${timeout_s}s): ${qemu[*]}"
timeout -k 5 "$timeout_s" "${qemu[@]}" </dev/null >"$console" 2>&1
qemu_rc=$?
log "qemu exited with $qemu_rc"

# ---- verdict ----
verdict_line=$(grep -a "^CNASIO-VM-VERDICT $nonce " "$console" | tail -n1 | tr -d '\r')
problems=()
if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
    problems+=("timeout: the guest did not finish within ${timeout_s}s")
elif [ "$qemu_rc" = 35 ]; then
    problems+=("qemu exit status 35: the guest reported failure")
elif [ "$qemu_rc" != 33 ]; then
    problems+=("qemu exit status $qemu_rc: the guest never reported a verdict (panic, poweroff or crash)")
fi
case "$verdict_line" in
    *" PASS "*) ;;
    *" FAIL "*) problems+=("verdict line: ${verdict_line#CNASIO-VM-VERDICT $nonce }") ;;
    *) problems+=("no verdict line in the console log") ;;
esac
if grep -aqE 'Kernel panic|Oops:|BUG:|general protection fault' "$console"; then
    problems+=("the console shows a kernel problem")
fi
failure_lines=$(grep -a '^CNASIO-VM-FAILURE ' "$console" | tr -d '\r')
# doctest's summary, e.g. "[kernel_tests] [doctest] test cases:   9 |   9 passed | 0 failed | 36 skipped"
# (its "skipped" counts the test cases the filters left out).
for name in "${!min_test_cases[@]}"; do
    summary=$(tr -d '\r' <"$console" | grep -a "^\[$name\] \[doctest\] test cases:" | tail -n1)
    if [[ "$summary" =~ test\ cases:\ *([0-9]+)\ \|\ *([0-9]+)\ passed ]]; then
        ran=${BASH_REMATCH[1]} passed=${BASH_REMATCH[2]}
        if [ "$ran" -lt "${min_test_cases[$name]}" ] || [ "$passed" -ne "$ran" ]; then
            problems+=("$name ran $ran test case(s), $passed passed; expected at least ${min_test_cases[$name]}, all passed")
        else
            log "$name: $ran test cases ran and passed (at least ${min_test_cases[$name]} expected)"
        fi
    else
        problems+=("$name printed no doctest summary line (expected at least ${min_test_cases[$name]} test cases)")
    fi
done

print_log() {
    echo "---- console log ($console) ----"
    tr -d '\r' <"$console" | grep -av '^\x1b' 
    echo "---- end of console log ----"
}

if [ ${#expect_failures[@]} -gt 0 ]; then
    # Harness self-test: the failure must be detected, and for the right reasons.
    matched=1
    for re in "${expect_failures[@]}"; do
        if [ "$re" = timeout ]; then
            # ...and the hang must be the one under test, not a slow boot.
            [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ] || matched=0
            [ -n "$expect_hang_in" ] &&
                [ "$(grep -a '^CNASIO-VM-START ' "$console" | tail -n1 | tr -d '\r')" = "CNASIO-VM-START $expect_hang_in" ] ||
                matched=0
        elif ! { [ "$qemu_rc" = 35 ] && [ -n "$verdict_line" ] && echo "$failure_lines" | grep -qE "$re"; }; then
            matched=0
        fi
    done
    print_log
    if [ $matched = 1 ]; then
        log "expected failure detected: ${problems[*]:-none}"
        exit 0
    fi
    echo "run-vm: FAIL: expected a failed run matching: ${expect_failures[*]}; got: ${problems[*]:-a pass}" >&2
    exit 1
fi

grep -a '^CNASIO-VM-TEST ' "$console" | tr -d '\r'
if [ ${#problems[@]} -gt 0 ]; then
    print_log
    # The failed doctest blocks again, last: a CI log that keeps only the tail still
    # names the test case and the assertion that failed.
    tr -d '\r' <"$console" | awk '
        /^\[[A-Za-z0-9_]+\] =+$/ { if (block ~ /ERROR/) printf "%s", block; block = ""; next }
        /^\[[A-Za-z0-9_]+\] / { block = block $0 "\n" }
        END { if (block ~ /ERROR/) printf "%s", block }' |
        grep -av '\[doctest\]' | sed 's/^/run-vm: failed: /' | head -n 60 >&2
    for p in "${problems[@]}"; do echo "run-vm: FAIL: $p" >&2; done
    exit 1
fi
echo "$verdict_line"
log "PASS on Linux $kver"
exit 0
