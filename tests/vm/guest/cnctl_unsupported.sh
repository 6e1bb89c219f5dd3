#!/bin/sh
# cnctl's messages on the small kernels of tests/vm/tiny-kernel.sh, whose
# feature is missing for real (see guest/unsupported.cpp for the library):
#   cnctl_unsupported.sh no-connector     proc and ids exit 1 naming CONFIG_CONNECTOR
#   cnctl_unsupported.sh no-proc-events   proc exits 1 naming CONFIG_PROC_EVENTS (and
#                                         the namespace cause, which it cannot rule out)
# Run by the guest's /init (busybox sh).
run_timeout=30 run_width=400
. /lib/guest.sh

case "$1" in
    no-connector)
        run proc --count 1
        check "proc: exit 1 (runtime error)" [ $rc -eq 1 ]
        check "proc: names CONFIG_CONNECTOR" has /tmp/e 'it needs CONFIG_CONNECTOR'
        check "proc: prints no event" [ ! -s /tmp/o ]
        run ids
        check "ids: exit 1" [ $rc -eq 1 ]
        check "ids: names CONFIG_CONNECTOR, not a namespace" has /tmp/e 'it needs CONFIG_CONNECTOR'
        ;;
    no-proc-events)
        run proc --count 1
        check "proc: exit 1 (runtime error)" [ $rc -eq 1 ]
        check "proc: names CONFIG_PROC_EVENTS" has /tmp/e 'did not acknowledge LISTEN: it lacks CONFIG_PROC_EVENTS'
        check "proc: prints no event" [ ! -s /tmp/o ]
        run ids
        check "ids: works (the connector is there)" [ $rc -eq 0 ]
        check "ids: no cn_proc" [ -z "$(grep 'id=1:1' /tmp/o)" ]
        ;;
    *) echo "usage: cnctl_unsupported.sh no-connector|no-proc-events"; exit 2 ;;
esac
exit $fail
