#!/bin/sh
# cnctl w1 against Debian's w1 core and the cnasio_w1_virtual bus master
# (run-vm.sh --w1, after raw_w1 and client_w1): masters, search, temp (text
# and --json) read back exactly as set, an injected CRC error as exit 1 with
# a CRC line, touch on a slave, and bad input as exit 2 with a clear line.
# Run by the guest's /init (busybox sh).
. /lib/guest.sh
p=/sys/module/cnasio_w1_virtual/parameters

[ -r $p/devices ] || { echo "cnasio_w1_virtual is not loaded (run-vm.sh --w1)"; exit 1; }
devices=$(cat $p/devices)
masters=$(cat $p/nr_masters)
echo 23125,-10250,71500 >$p/temp_mc
echo 0 >$p/crc_error

run w1 masters
check "masters: exit 0" [ $rc -eq 0 ]
check "masters: one line per master" lines /tmp/o "$masters"
check "masters: w1_bus_master1 is listed" matches /tmp/o 'master=1'

run w1 search 1
check "search: exit 0" [ $rc -eq 0 ]
check "search: every device of master 1" lines /tmp/o "$devices"
for s in 28-00c0a5100000 28-00c0a5100001 28-00c0a5100002; do
    check "search: $s" matches /tmp/o "master=1 slave=$s"
done

run w1 temp 28-00c0a5100000 28-00c0a5100001 28-00c0a5100002
check "temp: exit 0" [ $rc -eq 0 ]
check "temp: 23.125" matches /tmp/o 'slave=28-00c0a5100000 celsius=23.1250 resolution=12'
check "temp: -10.25" matches /tmp/o 'slave=28-00c0a5100001 celsius=-10.2500 resolution=12'
check "temp: 71.5" matches /tmp/o 'slave=28-00c0a5100002 celsius=71.5000 resolution=12'

run w1 temp --json 28-00c0a5100001
check "temp --json: exit 0" [ $rc -eq 0 ]
check "temp --json: the reading" matches /tmp/o \
    '\{"slave":"28-00c0a5100001","celsius":-10.2500,"millicelsius":-10250,"resolution":12\}'

echo 1 >$p/crc_error
run w1 temp 28-00c0a5100000
check "temp with a CRC error: exit 1" [ $rc -eq 1 ]
check "temp with a CRC error: says CRC" grep -q 'CRC' /tmp/e
check "temp with a CRC error: no reading" lines /tmp/o 0
echo 0 >$p/crc_error

run w1 touch 28-00c0a5100002 beffffffffffffffffff
check "touch: exit 0" [ $rc -eq 0 ]
check "touch: READ SCRATCHPAD echoed, 9 bytes read" matches /tmp/o 'data=be[0-9a-f]{18}'

run w1 temp 28-nothex
check "bad slave: exit 2" [ $rc -eq 2 ]
check "bad slave: one clear line" grep -q "28-nothex" /tmp/e
run w1 search notanumber
check "bad master: exit 2" [ $rc -eq 2 ]
check "bad master: one clear line" grep -q "notanumber" /tmp/e

finish cnctl_w1
