#!/bin/bash
# The README's first command: install what is needed, build, and watch live
# process events from the kernel while this script starts a few processes.
# Ends by itself (after 10 events, or a timeout). Run as root on Debian 12.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${CNASIO_BUILD_DIR:-build}

echo "== installing dependencies"
bash scripts/install-deps.sh

echo "== configuring and building ($build; log in $build/demo-build.log)"
log=$(mktemp)
quiet() { # runs a build step, showing its output only when it fails
    "$@" >> "$log" 2>&1 || { cat "$log"; echo "== demo failed: $*" >&2; exit 1; }
}
if [ ! -f "$build/build.ninja" ]; then
    quiet meson setup "$build"
fi

# Once the cnctl tool exists the demo uses it; until then the example program.
has_target() {
    meson introspect "$build" --targets |
        python3 -c 'import json, sys; sys.exit(0 if any(t["name"] == sys.argv[1] for t in json.load(sys.stdin)) else 1)' "$1"
}
if has_target cnctl; then
    quiet meson compile -C "$build" cnctl
    listener=("$build/src/cnctl/cnctl" proc --count 10)
else
    quiet meson compile -C "$build" proc_events
    listener=("$build/examples/proc_events" 10 10)
fi
mv "$log" "$build/demo-build.log"

echo "== live process events: ${listener[*]}"
echo "   (this script starts short-lived processes meanwhile)"
timeout 30 "${listener[@]}" &
pid=$!
# The listener needs a moment to join the group and get the kernel's ack;
# processes started before that are simply not seen.
sleep 0.3
for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sh -c 'exit 3' || :   # a non-zero exit status, to show it in the events
    /bin/true
    sleep 0.2
done
status=0
wait "$pid" || status=$?
if [ "$status" -eq 0 ]; then
    echo "== demo done"
else
    echo "== demo failed: ${listener[0]} exited with status $status" >&2
fi
exit "$status"
