#!/bin/sh
# cnctl proc beside forkstat on the same storm of short-lived execs (issue 13).
#
#   bench/forkstat-compare.sh [CNCTL] [EXECS] [ROUNDS]
#       CNCTL   default build/src/cnctl/cnctl (in the source tree)
#       EXECS   execs per storm, default 1000
#       ROUNDS  default 3
#
# Both listen at once, for the same events (forkstat -e exec,exit; cnctl proc
# --filter exec,exit); a storm then runs EXECS processes back to back, each
# `/bin/true cnasio-mark-<i>-<round>` started with posix_spawn and reaped before
# the next, so every exec's right command line is known by its pid. Per tool:
#   lost   - storm execs with no exec line at all
#   right  - exec lines showing exactly the command line that pid ran (% of EXECS)
#   wrong  - exec lines showing another process's command line (must be 0)
#   cpu    - the tool's user+system CPU over the round (ms, from /proc/PID/stat)
# A line with no command line (forkstat "<unknown>" or the bare process name,
# cnctl "<gone>" or "[name]") is neither right nor wrong. Prints per-round lines and, for each figure, the
# median over the rounds as
#   RESULT <name> cnasio=<v> baseline=<v> ratio=<cnasio/baseline> unit=<unit>
# with forkstat as the baseline (as bench/run prints its results).
# Needs root and forkstat (Debian: apt-get install forkstat). The machine's
# other processes add events to both tools alike; quote ratios.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
cnctl=${1:-$src/build/src/cnctl/cnctl}
execs=${2:-1000}
rounds=${3:-3}
if [ "$(id -u)" != 0 ]; then
    echo "forkstat-compare: needs root (proc connector)" >&2
    exit 77
fi
if ! command -v forkstat >/dev/null 2>&1; then
    echo "forkstat-compare: forkstat is not installed (apt-get install forkstat)" >&2
    exit 77
fi
[ -x "$cnctl" ] || { echo "forkstat-compare: no cnctl at $cnctl" >&2; exit 2; }
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), Linux $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $(forkstat -h 2>&1 | head -n 1 | tr -d '\n'); $("$cnctl" --version)"
exec python3 - "$cnctl" "$execs" "$rounds" <<'EOF'
import os, re, select, signal, statistics, subprocess, sys, tempfile, time

cnctl, execs, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
tick = os.sysconf("SC_CLK_TCK")


def cpu_ms(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / tick  # utime + stime


def wait_ready(p, timeout=10):
    line, deadline = b"", time.monotonic() + timeout
    while not line.endswith(b"\n"):
        r, _, _ = select.select([p.stderr], [], [], max(0.0, deadline - time.monotonic()))
        c = os.read(p.stderr.fileno(), 1) if r else b""
        if not c:
            raise SystemExit(f"cnctl did not get ready: {line!r}")
        line += c


def day_seconds(text):
    h, m, s = text.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def classify(lines, truth, parse):
    """lines: the tool's output; truth: pid -> (command line, started, reaped)
    in local seconds of the day. An exec line counts for a storm process if
    its pid matches and its time lies within the process's life (1 s slack:
    forkstat prints whole seconds); a busy machine reuses pids within a round.
    Returns lost, right, wrong."""
    shown = {}
    for line in lines:
        got = parse(line)
        if not got or got[0] not in truth:
            continue
        pid, when, cmd = got
        _, t0, t1 = truth[pid]
        if t0 - 1.0 <= day_seconds(when) <= t1 + 1.0:
            shown.setdefault(pid, cmd)  # the first exec line of the process
    truth = {pid: t[0] for pid, t in truth.items()}
    right = sum(1 for pid, cmd in shown.items() if cmd == truth[pid])
    def placeholder(pid, cmd):
        # No command line: "<unknown>", "<gone>", "?", or the process name
        # alone (forkstat "true", cnctl "[true]": comm, read from a zombie).
        comm = os.path.basename(truth[pid].split(" ")[0])[:15]
        return cmd in ("<unknown>", "<gone>", "?", "", comm, f"[{comm}]")
    wrong = sum(1 for pid, cmd in shown.items() if cmd != truth[pid] and not placeholder(pid, cmd))
    return len(truth) - len(shown), right, wrong


def parse_forkstat(line):
    # "12:00:00 exec  1234               /bin/true cnasio-mark-5-0"
    m = re.match(r"^(\d\d:\d\d:\d\d) exec\s+(\d+)\s+(.*?)\s*$", line)
    return (int(m.group(2)), m.group(1), m.group(3)) if m else None


def parse_cnctl(line):
    # "12:00:00.123 exec PID PPID UID COMMAND-LINE"
    m = re.match(r"^(\d\d:\d\d:\d\d\.\d+) exec (\d+) \S+ \S+ (.*)$", line)
    return (int(m.group(2)), m.group(1), m.group(3)) if m else None


def local_day_seconds(t):
    lt = time.localtime(t)
    return lt.tm_hour * 3600 + lt.tm_min * 60 + lt.tm_sec + (t % 1)


results = {k: ([], []) for k in ("lost", "right", "wrong", "cpu")}
for rnd in range(rounds):
    with tempfile.TemporaryDirectory() as d:
        fs_out = open(os.path.join(d, "forkstat"), "w+")
        cn_out = open(os.path.join(d, "cnctl"), "w+")
        fs = subprocess.Popen(["forkstat", "-l", "-e", "exec,exit"], stdout=fs_out, stderr=subprocess.DEVNULL)
        cn = subprocess.Popen([cnctl, "proc", "--filter", "exec,exit", "--ready-line"], stdout=cn_out,
                              stderr=subprocess.PIPE)
        wait_ready(cn)
        time.sleep(1.0)  # forkstat has no readiness signal
        fs_cpu0, cn_cpu0 = cpu_ms(fs.pid), cpu_ms(cn.pid)
        truth = {}
        t0 = time.monotonic()
        for i in range(execs):
            cmd = f"/bin/true cnasio-mark-{i}-{rnd}"
            started = time.time()
            pid = os.posix_spawn("/bin/true", cmd.split(" "), os.environ)
            os.waitpid(pid, 0)
            truth[pid] = (cmd, started, time.time())
        storm = time.monotonic() - t0
        truth = {pid: (cmd, local_day_seconds(a), local_day_seconds(b)) for pid, (cmd, a, b) in truth.items()}
        time.sleep(2.0)  # both drain their queues
        fs_cpu, cn_cpu = cpu_ms(fs.pid) - fs_cpu0, cpu_ms(cn.pid) - cn_cpu0
        for p in (fs, cn):
            p.send_signal(signal.SIGINT)
        fs.wait(timeout=10)
        _, cn_err = cn.communicate(timeout=10)
        fs_out.seek(0)
        cn_out.seek(0)
        fs_lines, cn_lines = fs_out.read().splitlines(), cn_out.read().splitlines()
        if os.environ.get("KEEP"):  # KEEP=DIR keeps both outputs
            for name, lines in (("forkstat", fs_lines), ("cnctl", cn_lines)):
                with open(os.path.join(os.environ["KEEP"], f"{name}-{rnd}.txt"), "w") as out:
                    out.write("\n".join(lines) + "\n")
        f = classify(fs_lines, truth, parse_forkstat)
        c = classify(cn_lines, truth, parse_cnctl)
        print(f"# round {rnd}: {execs} execs in {storm:.2f} s ({execs / storm:.0f}/s); "
              f"forkstat lost {f[0]} right {f[1]} wrong {f[2]} cpu {fs_cpu:.0f} ms; "
              f"cnctl lost {c[0]} right {c[1]} wrong {c[2]} cpu {cn_cpu:.0f} ms"
              + (f"; cnctl said: {cn_err.decode().strip()!r}" if cn_err.strip() else ""), flush=True)
        for k, fv, cv in (("lost", f[0], c[0]), ("right", 100.0 * f[1] / execs, 100.0 * c[1] / execs),
                          ("wrong", f[2], c[2]), ("cpu", fs_cpu, cn_cpu)):
            results[k][0].append(fv)
            results[k][1].append(cv)

units = {"lost": "execs", "right": "percent", "wrong": "lines", "cpu": "ms"}
for k, (fv, cv) in results.items():
    f, c = statistics.median(fv), statistics.median(cv)
    ratio = f"{c / f:.2f}" if f else "n/a"
    print(f"RESULT forkstat_exec_{k} cnasio={c:.1f} baseline={f:.1f} ratio={ratio} unit={units[k]}")
EOF
