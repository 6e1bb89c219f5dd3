#!/bin/sh
# Scaling curves (issue 15): runs bench_scaling and writes, next to this script,
#   scaling.md   the table (markdown), with the machine and load it ran under
#   scaling.png  CPU per message against subscribers of one group, and CPU per
#                request against requests in flight (log-log)
#
#   bench/scaling.sh [BUILD_DIR]     (default: build-bench in the source tree; as root)
#
# The plot needs python3-matplotlib (Debian: apt-get install python3-matplotlib);
# without it the table is still written. Not part of the test suite.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
build=${1:-$src/build-bench}
if [ "$(id -u)" != 0 ]; then
    echo "bench/scaling.sh: needs root; skipped" >&2
    exit 77
fi
if [ ! -x "$build/bench/bench_scaling" ]; then
    [ -f "$build/build.ninja" ] || meson setup "$build" "$src" -Dtests=disabled -Dtools=disabled -Dexamples=disabled >&2
    meson compile -C "$build" bench/bench_scaling >&2
fi
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
timeout 600 "$build/bench/bench_scaling" >"$raw"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
header="$(date -u '+%Y-%m-%d %H:%M UTC'), Linux $(uname -r), $(nproc) CPUs, load average $load_before before, $load_after after; library $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo '?')"

# The first python3 that has matplotlib (a pyenv python3 may lack Debian's package); else any.
py=python3
if ! python3 -c 'import matplotlib' 2>/dev/null && /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
    py=/usr/bin/python3
fi
"$py" - "$raw" "$here" "$header" <<'EOF'
import re, sys
raw, out, header = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [dict(re.findall(r'(\w+)=(\S+)', l)) | {'kind': l.split()[1]} for l in open(raw) if l.startswith('SCALE ')]
subs = [r for r in rows if 'subscribers' in r]
infl = [r for r in rows if 'inflight' in r]
mem = [r for r in rows if r['kind'] == 'memory']
md = ['# Scaling curves (bench/scaling.sh)', '', header, '',
      '| subscribers of one group | messages | CPU µs per message | CPU µs per delivery | messages per wake-up | overruns |',
      '|---:|---:|---:|---:|---:|---:|']
for r in subs:
    md.append(f"| {r['subscribers']} | {r['messages']} | {float(r['cpu_us_per_msg']):.3g} | "
              f"{float(r['cpu_us_per_delivery']):.3g} | {float(r['msgs_per_wakeup']):.3g} | {r['overruns']} |")
md += ['', '| requests in flight | requests | CPU µs per request | requests/s | replies per wake-up | failed |',
       '|---:|---:|---:|---:|---:|---:|']
for r in infl:
    md.append(f"| {r['inflight']} | {r['requests']} | {float(r['cpu_us_per_request']):.3g} | "
              f"{float(r['requests_per_s']):,.0f} | {float(r['replies_per_wakeup']):.3g} | {r['failed']} |")
for r in mem:
    md += ['', f"Heap per pending request: {float(r['pending_request_bytes']):.0f} bytes; "
               f"per subscription: {float(r['subscription_bytes']):.0f} bytes (10,000 of each, mallinfo2; "
               f"kernel socket memory not included)."]
open(f'{out}/scaling.md', 'w').write('\n'.join(md) + '\n')
print('\n'.join(md))
try:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
except ImportError:
    print('bench/scaling.sh: no matplotlib (apt-get install python3-matplotlib): scaling.png not written',
          file=sys.stderr)
    sys.exit(0)
fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
n = [int(r['subscribers']) for r in subs]
a.loglog(n, [float(r['cpu_us_per_msg']) for r in subs], 'o-', label='CPU µs per message')
a.loglog(n, [float(r['cpu_us_per_delivery']) for r in subs], 's-', label='CPU µs per delivery (message × subscriber)')
a.set_xlabel('subscribers of one group')
a.set_ylabel('µs')
a.set_title('multicast fan-out')
a.grid(True, which='both', alpha=0.3)
a.legend()
k = [int(r['inflight']) for r in infl]
b.loglog(k, [float(r['cpu_us_per_request']) for r in infl], 'o-', label='CPU µs per request')
b.set_xlabel('requests in flight')
b.set_ylabel('µs')
b.set_title('requests to an echo peer')
b.grid(True, which='both', alpha=0.3)
b.legend()
fig.suptitle('cnasio scaling, ' + header.split(';')[0], fontsize=9)
fig.tight_layout()
fig.savefig(f'{out}/scaling.png', dpi=110)
EOF
