#!/bin/bash
# Events/s and CPU µs/event of `cnctl proc` under a vfork storm, beside a raw C
# listener given the same work in the same run: both use an 8 MiB
# SO_RCVBUFFORCE buffer, poll + MSG_DONTWAIT draining, decode every message and
# print cnctl's text line for it through stdio, flushed once per drained burst
# (the raw one's fork and exit lines are byte for byte cnctl's). So the ratio
# is what cnasio + cnctl cost over the least C that does the same job. cnctl
# runs as `cnctl proc --raw` (the kernel's events as key=value lines): its
# default view also reads /proc for every process (command lines), work the
# baseline does not do. Run as root:
#
#   src/cnctl/measure.sh [--check] BUILD/src/cnctl/cnctl [SECONDS] [cnctl options...]
#
# CPU time is utime + stime from /proc/PID/stat (clock ticks), read just
# before each listener is stopped; events are the lines each listener printed
# (acks are not printed). --check (the cnctl-measure test): exit 1 unless both
# printed the same fork and exit lines, at least one per storm fork each, so
# the baseline demonstrably did the same work; with cnctl options that change
# its output (--json, --filter) the lines differ: use --check without them.
#
# Measured on the 2-vCPU development VM (kernel 6.18), like for like, load ~3
# (other engineers' builds), 5 s storms: see the figures in the commit that
# introduced this baseline; quote ratios, the machine is noisy. (Figures from
# before 2026-12-01 compared cnctl with a raw listener that only counted
# recv() calls, without decoding or printing: not comparable.)
set -euo pipefail
check=0
if [ "${1:-}" = --check ]; then check=1; shift; fi
if [ "$check" = 1 ] && [ "$(id -u)" != 0 ]; then
    echo "measure: needs root (SO_RCVBUFFORCE, proc events on every kernel): skipped"
    exit 77
fi
cnctl=${1:?usage: measure.sh [--check] PATH/TO/cnctl [SECONDS] [cnctl options...]}
seconds=${2:-5}
shift $(( $# >= 2 ? 2 : 1 ))
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat >"$work/raw.c" <<'EOF'
/* Raw proc listener doing cnctl proc's work in plain C: join group 1, LISTEN,
   drain with poll + MSG_DONTWAIT until SIGTERM, check and decode each message
   (netlink and connector headers, memcpy of the misaligned proc_event) and
   print the line `cnctl proc` prints for it through stdio, flushed once per
   drained burst as cnctl does. Fork and exit lines are byte for byte cnctl's
   (--check compares them); exec reads /proc/PID/comm like cnctl (unescaped:
   comm is printable here); other types print `what=N`. Acks are not printed
   (cnctl prints none). On SIGTERM: "messages ENOBUFS" on stderr. */
#include <errno.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
static volatile sig_atomic_t stop;
static void on_term(int s) { (void)s; stop = 1; }
static void print_event(const struct proc_event *ev) {
    const char *type;
    switch (ev->what) {
    case PROC_EVENT_FORK: type = "fork"; break;
    case PROC_EVENT_EXEC: type = "exec"; break;
    case PROC_EVENT_EXIT: type = "exit"; break;
    case PROC_EVENT_NONE: return;
    default: type = "other"; break;
    }
    unsigned long long ts = ev->timestamp_ns;
    printf("%llu.%06llu %-8s", ts / 1000000000ull, ts % 1000000000ull / 1000ull, type);
    if (ev->what == PROC_EVENT_FORK) {
        printf(" parent_pid=%d parent_tgid=%d child_pid=%d child_tgid=%d\n", ev->event_data.fork.parent_pid,
               ev->event_data.fork.parent_tgid, ev->event_data.fork.child_pid, ev->event_data.fork.child_tgid);
    } else if (ev->what == PROC_EVENT_EXEC) {
        char path[64], comm[64] = "?";
        snprintf(path, sizeof path, "/proc/%d/comm", ev->event_data.exec.process_pid);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(comm, sizeof comm, f)) strcpy(comm, "?");
            comm[strcspn(comm, "\n")] = 0;
            fclose(f);
        }
        printf(" pid=%d tgid=%d comm=%s\n", ev->event_data.exec.process_pid, ev->event_data.exec.process_tgid, comm);
    } else if (ev->what == PROC_EVENT_EXIT) {
        unsigned code = ev->event_data.exit.exit_code;
        printf(" pid=%d tgid=%d exit_code=%u", ev->event_data.exit.process_pid, ev->event_data.exit.process_tgid, code);
        if ((code & 0x7f) == 0) printf(" status=%u", (code >> 8) & 0xff);
        else if ((code & 0x7f) != 0x7f) printf(" signal=%u", code & 0x7f);
        printf(" exit_signal=%d parent_pid=%d parent_tgid=%d\n", (int)ev->event_data.exit.exit_signal,
               ev->event_data.exit.parent_pid, ev->event_data.exit.parent_tgid);
    } else {
        printf(" what=%u\n", (unsigned)ev->what);
    }
}
int main(void) {
    int fd = socket(AF_NETLINK, SOCK_DGRAM, NETLINK_CONNECTOR);
    int size = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
    struct sockaddr_nl a = {.nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC};
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0) { perror("raw"); return 1; }
    struct { struct nlmsghdr nl; struct cn_msg cn; unsigned op; } __attribute__((packed)) req;
    memset(&req, 0, sizeof req);
    req.nl.nlmsg_len = sizeof req; req.nl.nlmsg_type = NLMSG_DONE; req.nl.nlmsg_pid = getpid();
    req.cn.id.idx = CN_IDX_PROC; req.cn.id.val = CN_VAL_PROC; req.cn.len = sizeof req.op;
    req.op = PROC_CN_MCAST_LISTEN;
    struct sockaddr_nl k = {.nl_family = AF_NETLINK};
    sendto(fd, &req, sizeof req, 0, (struct sockaddr *)&k, sizeof k);
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    unsigned long long n = 0, enobufs = 0;
    static char buf[65536];
    struct pollfd p = {fd, POLLIN, 0};
    while (!stop) {
        if (poll(&p, 1, -1) < 0) continue;
        for (;;) {
            ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (r < 0) { if (errno == ENOBUFS) { ++enobufs; continue; } break; }
            for (size_t off = 0; off + sizeof(struct nlmsghdr) <= (size_t)r;) {
                struct nlmsghdr nl;
                struct cn_msg cn;
                struct proc_event ev;
                memcpy(&nl, buf + off, sizeof nl);
                if (nl.nlmsg_len < sizeof nl || nl.nlmsg_len > (size_t)r - off) break;
                if (nl.nlmsg_len >= sizeof nl + sizeof cn) {
                    memcpy(&cn, buf + off + sizeof nl, sizeof cn);
                    if (cn.id.idx == CN_IDX_PROC && cn.id.val == CN_VAL_PROC && cn.len >= sizeof ev &&
                        sizeof nl + sizeof cn + cn.len <= nl.nlmsg_len) {
                        memcpy(&ev, buf + off + sizeof nl + sizeof cn, sizeof ev);
                        ++n;
                        print_event(&ev);
                    }
                }
                off += NLMSG_ALIGN(nl.nlmsg_len);
            }
        }
        fflush(stdout); /* once per drained burst, like cnctl */
    }
    req.op = PROC_CN_MCAST_IGNORE;
    sendto(fd, &req, sizeof req, 0, (struct sockaddr *)&k, sizeof k);
    fprintf(stderr, "%llu %llu\n", n, enobufs);
    return 0;
}
EOF
cat >"$work/storm.c" <<'EOF'
/* vfork + _exit for SECONDS seconds; prints the number of forks. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 5;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned long long n = 0;
    for (;;) {
        for (int i = 0; i < 256; ++i) {
            pid_t pid = vfork();
            if (pid == 0) _exit(0);
            if (pid > 0) { waitpid(pid, NULL, 0); ++n; }
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 >= secs) break;
    }
    printf("%llu\n", n);
    return 0;
}
EOF
cc -O2 -o "$work/raw" "$work/raw.c"
cc -O2 -o "$work/storm" "$work/storm.c"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

"$work/raw" >"$work/raw.lines" 2>"$work/raw.out" &
raw=$!
"$cnctl" proc --raw "$@" >"$work/cnctl.out" 2>"$work/cnctl.err" &
cn=$!
sleep 0.5
raw0=$(cpu_ticks $raw); cn0=$(cpu_ticks $cn)
start=$(date +%s.%N)
forks=$("$work/storm" "$seconds")
# Let both drain: wait until cnctl has written at least the storm's events and
# neither uses CPU any more (at most 30 s; on a loaded machine cnctl lags).
raw1=$(cpu_ticks $raw); cn1=$(cpu_ticks $cn)
for _ in $(seq 60); do
    sleep 0.5
    r=$(cpu_ticks $raw); c=$(cpu_ticks $cn)
    [ "$r" = "$raw1" ] && [ "$c" = "$cn1" ] && [ "$(wc -l <"$work/cnctl.out")" -ge $((2 * forks)) ] &&
        [ "$(wc -l <"$work/raw.lines")" -ge $((2 * forks)) ] && break
    raw1=$r; cn1=$c
done
end=$(date +%s.%N)
kill -TERM $raw $cn
wait $raw || :
wait $cn || :
hz=$(getconf CLK_TCK)
read -r raw_msgs raw_enobufs <"$work/raw.out"
raw_n=$(wc -l <"$work/raw.lines")
cn_n=$(wc -l <"$work/cnctl.out")
python3 - "$forks" "$seconds" "$start" "$end" "$hz" "$raw_n" "$raw_enobufs" "$((raw1 - raw0))" "$cn_n" \
    "$((cn1 - cn0))" <<'EOF'
import sys
forks, secs, start, end, hz = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
raw_n, raw_enobufs, raw_ticks, cn_n, cn_ticks = map(int, sys.argv[6:11])
print(f"storm: {forks} vforks in {secs:.0f} s = {forks / secs:.0f} forks/s ({2 * forks} fork+exit events)")
for name, n, ticks, extra in (("raw C same work", raw_n, raw_ticks, f", {raw_enobufs} ENOBUFS"),
                              ("cnctl proc", cn_n, cn_ticks, "")):
    cpu_us = ticks * 1e6 / hz
    print(f"{name:17}: {n} events, {n / secs:.0f} events/s, CPU {cpu_us / 1e6:.2f} s = "
          f"{cpu_us / max(n, 1):.2f} us/event{extra}")
EOF
if [ -s "$work/cnctl.err" ]; then echo "cnctl stderr:"; cat "$work/cnctl.err"; fi
if [ "$check" = 1 ]; then
    # The same work: the same fork/exit lines (both saw the same stream), and
    # at least the storm's fork and exit events among them. Compared as sorted
    # lists over the time both were listening: events of different CPUs can
    # reach two sockets in different orders, and the listeners start and stop
    # a moment apart.
    python3 - "$work/raw.lines" "$work/cnctl.out" "$forks" <<'EOF'
import re, sys
line_re = re.compile(r"^([0-9]+)\.([0-9]{6}) (fork|exit) ")
def load(path):
    out = []
    for line in open(path, encoding="utf-8", errors="replace"):
        m = line_re.match(line)
        if m:
            out.append((int(m.group(1)) * 1000000 + int(m.group(2)), line))
    return out
raw, cn, forks = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3])
if not raw or not cn:
    sys.exit(f"measure: FAIL: no fork/exit lines (baseline {len(raw)}, cnctl {len(cn)})")
lo, hi = max(raw[0][0], cn[0][0]), min(raw[-1][0], cn[-1][0])
a = sorted(l for t, l in raw if lo < t < hi)
b = sorted(l for t, l in cn if lo < t < hi)
if a != b:
    only_a, only_b = sorted(set(a) - set(b))[:3], sorted(set(b) - set(a))[:3]
    sys.exit(f"measure: FAIL: the baseline's fork/exit lines differ from cnctl's ({len(a)} vs {len(b)}); "
             f"only the baseline's: {only_a}; only cnctl's: {only_b}")
if len(a) < 2 * forks:
    sys.exit(f"measure: FAIL: {len(a)} common fork/exit lines for {forks} storm forks (events lost?)")
print(f"measure: check passed: both printed the same {len(a)} fork/exit lines")
EOF
fi
