#!/bin/sh
# cnctl's registry commands against the cnasio_echo module (loaded at the
# start, loaded again at the end): ids lists 14:1; wait-id --gone ends when
# rmmod happens and wait-id when insmod happens (within --interval, plus
# slack); send and request to 14:1 while it is unloaded exit 1 and say "not
# registered"; README's sequence (wait-id, then the first request) works.
# Run by the guest's /init (busybox sh).
. /lib/guest.sh
ms_now() { cut -d' ' -f1 /proc/uptime | tr -d .; }  # centiseconds since boot

run ids
check "ids: exit 0" [ $rc -eq 0 ]
check "ids: the module's 14:1" matches /tmp/o 'name=cnasio_echo id=14:1'
check "ids: proc's 1:1" matches /tmp/o 'name=cn_proc id=1:1'

# rmmod 0.5 s from now; wait-id --gone must see it.
(usleep 500000; rmmod cnasio_echo) &
run wait-id 14:1 --gone --interval 100 --timeout 10000
wait
after=$(sed -n 's/^14:1 unregistered after \([0-9]*\) ms$/\1/p' /tmp/o)
check "wait-id --gone: exit 0" [ $rc -eq 0 ]
check "wait-id --gone: waited for the rmmod (${after:-?} ms, rmmod at ~500)" [ "${after:-0}" -ge 400 ]
check "wait-id --gone: within the interval plus slack (${after:-?} ms <= 500 + 100 + 400)" [ "${after:-99999}" -le 1000 ]

run send 14:1 --hex 0100000000000000
check "send to the unloaded id: exit 1" [ $rc -eq 1 ]
check "send to the unloaded id: says not registered" grep -q '14:1 is not registered' /tmp/e
run request 14:1 --hex 0100000000000000 --timeout 2000
check "request to the unloaded id: exit 1, not a timeout (3)" [ $rc -eq 1 ]
check "request to the unloaded id: says not registered" grep -q '14:1 is not registered' /tmp/e
run wait-id 14:1 --timeout 300
check "wait-id while unloaded: exit 3 (timeout)" [ $rc -eq 3 ]

# README's sequence: load, wait for the id, then the first request.
(usleep 500000; insmod /lib/modules/cnasio_echo.ko) &
run wait-id 14:1 --interval 100 --timeout 10000
wait
after=$(sed -n 's/^14:1 registered after \([0-9]*\) ms$/\1/p' /tmp/o)
check "wait-id: exit 0" [ $rc -eq 0 ]
check "wait-id: waited for the insmod (${after:-?} ms)" [ "${after:-0}" -ge 400 ]
check "wait-id: within the interval plus slack (${after:-?} ms)" [ "${after:-99999}" -le 1000 ]
run request 14:1 --hex 010000000000000068656c6c6f
check "first request after wait-id: exit 0" [ $rc -eq 0 ]
check "first request after wait-id: the echo" grep -q 'text="........hello"' /tmp/o
exit $fail
