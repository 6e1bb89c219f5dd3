#!/bin/sh
# cnctl on the booted arm64 kernel: usage errors, live proc events (JSON), and
# a request nobody answers ending in the timeout exit status.
. /lib/guest.sh

cnctl --help >/tmp/help.txt 2>&1
check "--help prints the usage" grep -q '^usage: cnctl' /tmp/help.txt
cnctl no-such-command >/dev/null 2>&1
check "an unknown command is a usage error (2)" [ $? -eq 2 ]

# Children to report: started after cnctl has subscribed.
(sleep 1; for i in 1 2 3 4 5 6; do /bin/true; done) &
cnctl proc --count 6 --json >/tmp/proc.json 2>/tmp/proc.err
rc=$?
cat /tmp/proc.json /tmp/proc.err
check "cnctl proc exits 0" [ $rc -eq 0 ]
check "six JSON events" [ "$(grep -c '^{' /tmp/proc.json)" -eq 6 ]
check "fork events among them" grep -q '"fork"' /tmp/proc.json
wait

# {26,1} is registered by nobody: the connector drops it silently. cnctl
# refuses it at once (exit 1) unless told not to check the registry.
cnctl request 26:1 --data hello --timeout 300 >/dev/null 2>&1
check "a request to an unregistered id exits with 1 (not registered)" [ $? -eq 1 ]
cnctl request 26:1 --data hello --timeout 300 --no-registry-check >/dev/null 2>&1
check "an unanswered request exits with 3 (timeout)" [ $? -eq 3 ]
exit $fail
