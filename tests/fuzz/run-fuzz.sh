#!/bin/sh
# run-fuzz.sh SECONDS [TARGET...]
#
# Builds the libFuzzer targets of tests/fuzz with clang (they are not part of
# the Meson build: the project compiles with g++, libFuzzer needs clang) and
# runs each for SECONDS from the seed corpus in tests/fuzz/corpus/<target>.
# Fails if clang or its fuzzer runtime is missing, if a target does not build,
# or if any run finds a crash, a leak, a sanitizer report or a failed check.
# Prints executions and coverage (libFuzzer's "cov:", edges reached) per target.
#
# Environment:
#   FUZZ_OUT   where binaries, new corpus entries, logs and crash inputs go
#              (default: build-fuzz in the source tree)
#   CXX_FUZZ   the clang++ to use (default: clang++, then clang++-14)
#   FUZZ_JOBS  targets built, and then run, at once (default 2)
set -eu

usage() { echo "usage: $0 SECONDS [TARGET...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
seconds=$1
shift
case $seconds in '' | *[!0-9]*) usage ;; esac

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
out=${FUZZ_OUT:-$src/build-fuzz}
jobs=${FUZZ_JOBS:-2}
all_targets="framing roundtrip proc_event bpf_filter correlator client_dispatch registry w1_reply"
targets=${*:-$all_targets}

need_packages="clang libclang-rt-14-dev"
cxx=${CXX_FUZZ:-}
if [ -z "$cxx" ]; then
    for c in clang++ clang++-14; do
        if command -v "$c" >/dev/null 2>&1; then cxx=$c; break; fi
    done
fi
if [ -z "$cxx" ]; then
    echo "run-fuzz: FAIL: clang++ not found. The fuzz targets need clang and its libFuzzer runtime:" >&2
    echo "run-fuzz:       apt-get install $need_packages" >&2
    exit 1
fi

mkdir -p "$out/bin" "$out/logs" "$out/artifacts"

# The fuzzer runtime comes in a separate package: check for it before building.
probe=$out/bin/.probe
printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' >"$probe.cpp"
if ! "$cxx" -fsanitize=fuzzer,address,undefined "$probe.cpp" -o "$probe" 2>"$probe.log"; then
    cat "$probe.log" >&2
    echo "run-fuzz: FAIL: $cxx cannot link -fsanitize=fuzzer,address,undefined (libFuzzer/ASan runtime missing):" >&2
    echo "run-fuzz:       apt-get install $need_packages" >&2
    exit 1
fi
rm -f "$probe" "$probe.cpp" "$probe.log"

flags="-std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
       -fno-omit-frame-pointer -Wall -Wextra -Wpedantic -Werror -I $src/include"

# Rebuild a target when its source, a shared fuzz header or a library header is newer.
stale() {
    bin=$1 cpp=$2
    [ -x "$bin" ] || return 0
    [ -n "$(find "$cpp" "$here"/*.hpp "$src/include" -newer "$bin" -print 2>/dev/null | head -n 1)" ]
}

echo "run-fuzz: $cxx, $seconds s per target, output in $out"

# A pool of background jobs, FUZZ_JOBS at a time: pool_start NAME CMD...
# starts CMD; pool_wait waits for every started job. The names of jobs that
# failed collect in $pool_failed.
pool_pids="" pool_running=0 pool_failed=""
pool_wait() {
    for p in $pool_pids; do wait "${p%%:*}" || pool_failed="$pool_failed ${p#*:}"; done
    pool_pids="" pool_running=0
}
pool_start() {
    name=$1
    shift
    "$@" &
    pool_pids="$pool_pids $!:$name"
    pool_running=$((pool_running + 1))
    if [ "$pool_running" -ge "$jobs" ]; then pool_wait; fi
}

build_one() {
    # shellcheck disable=SC2086
    "$cxx" $flags "$here/fuzz_$1.cpp" -o "$out/bin/fuzz_$1.tmp" >"$out/logs/build-$1.log" 2>&1 &&
        mv "$out/bin/fuzz_$1.tmp" "$out/bin/fuzz_$1" || { rm -f "$out/bin/fuzz_$1.tmp" "$out/bin/fuzz_$1"; return 1; }
}

for t in $targets; do
    cpp=$here/fuzz_$t.cpp
    bin=$out/bin/fuzz_$t
    [ -f "$cpp" ] || { echo "run-fuzz: no such target: $t" >&2; exit 2; }
    if stale "$bin" "$cpp"; then
        echo "run-fuzz: building fuzz_$t"
        pool_start "$t" build_one "$t"
    fi
done
pool_wait
build_failed=$pool_failed
pool_failed=""
if [ -n "$build_failed" ]; then
    for t in $build_failed; do
        echo "run-fuzz: FAIL: fuzz_$t does not build with $cxx:" >&2
        grep -E 'error' "$out/logs/build-$t.log" | head -n 20 >&2 || true
        echo "run-fuzz: (full log: $out/logs/build-$t.log)" >&2
    done
    exit 1
fi

# Runs the targets FUZZ_JOBS at a time (each is one single-threaded process
# for SECONDS): on CI's two CPUs this halves the step's wall time, and every
# target still gets its full SECONDS.
run_one() {
    t=$1
    seeds=$here/corpus/$t
    work=$out/corpus/$t
    log=$out/logs/run-$t.log
    mkdir -p "$work" "$seeds"
    # New inputs go to $work (first directory); the committed seeds stay as they are.
    "$out/bin/fuzz_$t" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
        -artifact_prefix="$out/artifacts/$t-" "$work" "$seeds" >"$log" 2>&1
}

status=0
summary=""
for t in $targets; do
    echo "run-fuzz: running fuzz_$t for $seconds s"
    pool_start "$t" run_one "$t"
done
pool_wait
failed=$pool_failed

for t in $targets; do
    log=$out/logs/run-$t.log
    verdict=ok
    case " $failed " in
    *" $t "*)
        verdict=FAILED
        status=1
        echo "run-fuzz: FAIL: fuzz_$t found a problem; the end of its log ($log):" >&2
        tail -n 40 "$log" >&2
        ;;
    esac
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | sed 's/cov: //')
    summary="$summary$(printf '%-16s %-7s executions %-10s edges %s' "$t" "$verdict" "${execs:-?}" "${cov:-?}")
"
done
printf '\nrun-fuzz: results (%s s per target)\n%s' "$seconds" "$summary"
exit $status
