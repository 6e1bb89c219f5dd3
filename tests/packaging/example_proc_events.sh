#!/bin/bash
# example_proc_events.sh PROGRAM - runs examples/proc_events (the README demo's
# program) while starting processes, and checks it printed a child's fork,
# exec and exit with matching pids, then ended by itself with status 0.
set -uo pipefail
prog=$1
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# A bad argument is refused at once (it used to fall back to the defaults).
for bad in "--count 3" "0" "3 x" "3 5 7"; do
    # shellcheck disable=SC2086
    timeout 5 "$prog" $bad > "$out" 2>&1
    status=$?
    if [ "$status" -ne 2 ] || ! grep -q '^usage: proc_events' "$out"; then
        cat "$out"
        echo "FAIL: proc_events $bad exited with $status, not 2 with its usage"
        exit 1
    fi
done

# Enough events that ours are among them on a machine busy with other work.
"$prog" 40 10 > "$out" 2>&1 &
pid=$!
for _ in $(seq 1 40); do
    kill -0 "$pid" 2>/dev/null || break
    if grep -q '^listening' "$out"; then sh -c 'exit 5'; sh -c 'exit 5'; fi
    sleep 0.1
done
wait "$pid"
status=$?
cat "$out"
if [ "$status" -ne 0 ]; then
    if [ "$(id -u)" -ne 0 ] && grep -q 'Operation not permitted' "$out"; then
        echo "SKIP: this kernel lets only root listen to process events"
        exit 77
    fi
    echo "FAIL: proc_events exited with $status"
    exit 1
fi
# One of our `sh -c 'exit 5'` children: fork -> exec (sh) -> exit status 5.
python3 - "$out" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
forks = {int(m[1]) for l in lines if (m := re.match(r"fork  parent \d+ -> child (\d+)$", l))}
execs = {int(m[1]) for l in lines if (m := re.match(r"exec  pid (\d+) \(", l))}
exits5 = {int(m[1]) for l in lines if (m := re.match(r"exit  pid (\d+) status 5$", l))}
seen = forks & execs & exits5
if not seen:
    sys.exit("FAIL: no child with fork, exec and exit status 5 in the output")
print("PASS: fork/exec/exit seen for pid", min(seen))
PY
