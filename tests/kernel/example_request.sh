#!/bin/bash
# example_request.sh PROGRAM - runs examples/request (LISTEN to the proc
# connector, print the ack, send IGNORE) and checks that it prints the
# kernel's ack with err=0 and then ENDS BY ITSELF with status 0 within a few
# seconds: a program that prints the ack but never returns from io.run() (a
# readiness wait left outstanding in the client) fails here as a hang.
# Exit: 0 pass, 1 fail, 77 not root (the kernel suite's convention).
set -uo pipefail
prog=$1
limit=${2:-5}
if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: examples/request needs root on kernels before 6.6 and the kernel suite runs as root"
    exit 77
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# stdbuf: keep what it printed even if the time limit kills it (a pipe would
# otherwise hold its stdout in the C library's buffer).
start=$(date +%s%N)
timeout -k 2 "$limit" stdbuf -oL "$prog" >"$out" 2>&1
status=$?
ms=$((($(date +%s%N) - start) / 1000000))
echo "---- output of $prog (status $status after ${ms} ms) ----"
cat "$out"
echo "----"
fail=0
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "FAIL: $prog did not end within ${limit}s (hang: io.run() never returned)"
    fail=1
elif [ "$status" -ne 0 ]; then
    echo "FAIL: $prog exited with status $status"
    fail=1
fi
# One line, the ack of our LISTEN: the kernel's per-CPU counter as seq, our
# ack + 1 (any value), and no error.
if ! grep -Eqx 'proc connector acknowledged: seq=[0-9]+ ack=[0-9]+ err=0 \(Success\)' "$out"; then
    echo "FAIL: no 'proc connector acknowledged: ... err=0 (Success)' line"
    fail=1
fi
if [ "$(wc -l <"$out")" -ne 1 ]; then
    echo "FAIL: expected exactly one line of output"
    fail=1
fi
[ $fail -eq 0 ] && echo "PASS: ack printed, exit 0 in ${ms} ms"
exit $fail
