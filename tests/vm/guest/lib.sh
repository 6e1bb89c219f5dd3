# Sourced by the guest shell tests (". /lib/guest.sh"; run-vm.sh puts this
# file there in every initramfs). busybox sh.
#   check DESCRIPTION COMMAND...  prints ok/FAILED; a failure sets fail=1
#   run ARGS...                   runs "$run_program ARGS" (default cnctl) with a
#                                 time limit of $run_timeout s (default 20):
#                                 stdout in /tmp/o, stderr in /tmp/e, status in
#                                 $rc; both echoed, lines cut at $run_width (220)
#   matches FILE ERE              some whole line of FILE matches ERE
#   has FILE TEXT                 FILE contains TEXT
#   is FILE TEXT                  FILE holds exactly TEXT
#   lines FILE N                  FILE has N lines
#   finish NAME                   prints "NAME: PASS|FAIL" and exits with $fail
fail=0
run_program=${run_program:-cnctl}
run_timeout=${run_timeout:-20}
run_width=${run_width:-220}
check() {
    desc=$1
    shift
    if "$@"; then echo "ok: $desc"; else echo "FAILED: $desc"; fail=1; fi
}
run() {
    echo "\$ $run_program $*" | cut -c1-100
    timeout "$run_timeout" "$run_program" "$@" >/tmp/o 2>/tmp/e
    rc=$?
    cat /tmp/o /tmp/e | sed 's/^/  /' | cut -c1-"$run_width"
}
matches() { grep -Eqx "$2" "$1"; }
has() { grep -q -- "$2" "$1"; }
is() { [ "$(cat "$1")" = "$2" ]; }
lines() { [ "$(wc -l <"$1")" -eq "$2" ]; }
finish() {
    [ "$fail" -eq 0 ] && echo "$1: PASS" || echo "$1: FAIL"
    exit "$fail"
}
