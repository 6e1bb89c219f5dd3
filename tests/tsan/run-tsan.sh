#!/bin/sh
# Builds the client's multi-threaded test with ThreadSanitizer in a build
# directory of its own and runs it. Needs root (the test's peers unicast and
# multicast between user-space netlink sockets).
#
#   tests/tsan/run-tsan.sh [BUILD_DIR]      (default: build-tsan)
#   CXX=clang++ tests/tsan/run-tsan.sh build-tsan-clang
#
# Exit status: the test's (0 passed, 1 failed, 77 skipped), or 66 when TSan
# reported a race (TSan's own exit code; every report is printed above it).
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$src/build-tsan}

if [ ! -f "$build/build.ninja" ]; then
    # Only the tests are needed; examples, cnctl and benchmarks would just
    # cost compile time under the sanitizer.
    meson setup "$build" "$src" -Db_sanitize=thread -Db_lundef=false -Dbuildtype=debugoptimized \
        -Dexamples=disabled -Dtools=disabled -Dbench=disabled
fi
ninja -C "$build" tests/tsan/client_tsan

# halt_on_error=0: collect every report in one run; TSan exits 66 if any.
export TSAN_OPTIONS="${TSAN_OPTIONS:-second_deadlock_stack=1 history_size=4 halt_on_error=0}"
# Kernels with a high mmap randomisation (vm.mmap_rnd_bits > 28) break TSan's
# memory layout; running without ASLR avoids it where setarch exists.
run=""
if command -v setarch >/dev/null 2>&1 && setarch "$(uname -m)" -R true 2>/dev/null; then
    run="setarch $(uname -m) -R"
fi
status=0
$run "$build/tests/tsan/client_tsan" || status=$?
case $status in
    0) echo "run-tsan: passed, no race reported" ;;
    66) echo "run-tsan: ThreadSanitizer reported races (see above)" ;;
    77) echo "run-tsan: skipped" ;;
    *) echo "run-tsan: failed with status $status" ;;
esac
exit $status
