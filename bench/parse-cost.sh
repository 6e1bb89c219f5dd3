#!/bin/sh
# Instructions per message for parsing a 64 KiB buffer of proc events, cnasio
# against the raw NLMSG_OK/NLMSG_NEXT walk, counted by callgrind (perf cannot
# count instructions on these machines). Counting is switched on only inside
# the parse function (--toggle-collect), so building the buffer is not counted.
#
#   bench/parse-cost.sh [BUILD_DIR]      (default: build-bench next to bench/)
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build-bench}
prog=$build/bench/bench_parse
iterations=20

command -v valgrind >/dev/null || { echo "parse-cost.sh: valgrind not installed (apt-get install valgrind)" >&2; exit 77; }
[ -x "$prog" ] || { echo "parse-cost.sh: $prog not built" >&2; exit 1; }

# Both parsers must agree before their cost means anything.
"$prog" check >&2

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Prints instructions per message for one parser, or nan if it is not available.
count() {
    mode=$1
    out=$tmp/callgrind.$mode
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect="parse_$mode" \
        --callgrind-out-file="$out" "$prog" "$mode" "$iterations" >"$tmp/stdout.$mode" 2>"$tmp/stderr.$mode" || {
        cat "$tmp/stderr.$mode" >&2
        echo nan
        return
    }
    messages=$(sed -n 's/^messages=\([0-9]*\) .*/\1/p' "$tmp/stdout.$mode")
    total=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$out" | head -n 1)
    [ -n "$total" ] || total=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$out" | head -n 1)
    awk -v t="$total" -v m="$messages" -v n="$iterations" 'BEGIN { printf "%.2f\n", t / (m * n) }'
}

baseline=$(count baseline)
# parse_instr_per_msg: the fast path (for_each_message + proc::event_view);
# parse_decode_instr_per_msg: the same walk + the typed proc::decode.
for pair in cnasio:parse_instr_per_msg cnasio_decode:parse_decode_instr_per_msg; do
    mode=${pair%%:*}
    name=${pair#*:}
    c=$(count "$mode")
    awk -v c="$c" -v b="$baseline" -v name="$name" 'BEGIN {
        if (c + 0 < 1) c = "nan"
        r = (c == "nan" || b == "nan") ? "nan" : sprintf("%.4g", c / b)
        printf "RESULT %s cnasio=%s baseline=%s ratio=%s unit=instr/msg\n", name, c, b, r
    }'
done
