#!/bin/sh
# examples/echo_client (installed as /bin/echo_client) against the loaded
# cnasio_echo module: each command's typed reply line, the module's error
# replies by errno name with exit status 1, a timeout (3) for an id nobody
# serves, and a usage error (2). Run by the guest's /init (busybox sh).
run_program=echo_client run_timeout=10 run_width=200
. /lib/guest.sh

run echo "hello, module"
check "echo: exit 0" [ $rc -eq 0 ]
check "echo: typed reply" is /tmp/o 'echo: 13 bytes "hello, module"'

run --id 14:1 notify ping
check "notify: exit 0" [ $rc -eq 0 ]
check "notify: reply says a listener got it" matches /tmp/o 'notify: a listener got the event'
check "notify: our subscription got the event" matches /tmp/o 'event: notify #[0-9]+ "ping"'

run burst 10
check "burst: exit 0" [ $rc -eq 0 ]
check "burst: reply" matches /tmp/o 'burst: 10 of 10 events delivered'
check "burst: every event, in order" matches /tmp/o 'events: 10 of 10 received \(burst #[0-9]+, 10 in order, 0 overrun reports\)'

run delay 300 late
check "delay: exit 0" [ $rc -eq 0 ]
check "delay: reply line" matches /tmp/o 'delay: 300 ms asked, reply after [0-9]+ ms: "late"'
waited=$(sed -n 's/.*reply after \([0-9]*\) ms.*/\1/p' /tmp/o)
check "delay: the reply took at least 300 ms (took ${waited:-?})" [ "${waited:-0}" -ge 300 ]

run stats
check "stats: exit 0" [ $rc -eq 0 ]
check "stats: counters line" matches /tmp/o 'stats: requests [0-9]+, replies [0-9]+ \(dropped [0-9]+\), events [0-9]+ \(dropped [0-9]+\), delays pending 0'
before=$(sed -n 's/^stats: requests \([0-9]*\),.*/\1/p' /tmp/o)
run echo x
run stats
after=$(sed -n 's/^stats: requests \([0-9]*\),.*/\1/p' /tmp/o)
check "stats: requests grew by 2 (echo + stats: $before -> $after)" [ "$after" -eq $((before + 2)) ]

# Error replies: exit 1, the errno's name on stderr, nothing on stdout.
run cmd 77
check "unknown command: exit 1" [ $rc -eq 1 ]
check "unknown command: EINVAL" is /tmp/e 'echo_client: cmd: the module replied EINVAL (Invalid argument)'
check "unknown command: no stdout" [ ! -s /tmp/o ]
run burst 100001
check "burst over the limit: exit 1" [ $rc -eq 1 ]
check "burst over the limit: ERANGE" is /tmp/e 'echo_client: burst: the module replied ERANGE (Numerical result out of range)'
run delay 60001
check "delay over the limit: ERANGE" is /tmp/e 'echo_client: delay: the module replied ERANGE (Numerical result out of range)'
run echo "$(head -c 4097 /dev/zero | tr '\0' x)"
check "4097 data bytes: exit 1" [ $rc -eq 1 ]
check "4097 data bytes: EMSGSIZE" is /tmp/e 'echo_client: echo: the module replied EMSGSIZE (Message too long)'

# Nobody serves 26:1: the request vanishes, the client times out.
run --id 26:1 --timeout 300 echo x
check "unserved id: exit 3 (timeout)" [ $rc -eq 3 ]
check "unserved id: says so" matches /tmp/e '.*no reply from 26:1: .*timeout.*'
run burst
check "usage error: exit 2" [ $rc -eq 2 ]
exit $fail
