#!/bin/bash
# example_echo_client.sh PROGRAM - examples/echo_client on this host, where
# the cnasio_echo module cannot be loaded (the vm suite runs it against the
# module): a request to an id nobody serves must end by itself with status 3
# and say so, and a usage error must exit 2. Each run is limited to 5 s.
set -uo pipefail
prog=$1
fail=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT
expect() {  # expect STATUS LINE-ERE ARGS...: PROGRAM ARGS exits STATUS and prints a line matching LINE-ERE
    local want=$1 re=$2 rc
    shift 2
    timeout -k 2 5 "$prog" "$@" >"$out" 2>&1
    rc=$?
    echo "\$ echo_client $* -> status $rc"
    sed 's/^/  /' "$out"
    if [ "$rc" -ne "$want" ]; then
        echo "FAIL: status $rc, expected $want$([ "$rc" -eq 124 ] && echo ' (hang: killed after 5 s)')"
        fail=1
    elif ! grep -Eqx "$re" "$out"; then
        echo "FAIL: no line matching: $re"
        fail=1
    fi
}
# {26,1}: registered by nothing on this machine; the kernel drops the request.
expect 3 'echo_client: echo: no reply from 26:1: .*timeout.*' --id 26:1 --timeout 300 echo hello
expect 2 'usage: echo_client .*' burst
expect 2 'echo_client: --id wants IDX:VAL, e.g. 14:1' --id 14 stats
[ $fail -eq 0 ] && echo "PASS"
exit $fail
