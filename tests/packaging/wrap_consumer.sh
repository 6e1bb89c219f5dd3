#!/bin/bash
# wrap_consumer.sh SRCDIR WORKDIR - builds tests/consumer from scratch the way a
# user would, with cnasio fetched through subprojects/cnasio.wrap ([wrap-git],
# pointed at a local clone of the current tree), runs it, and checks that the
# cnasio subproject built nothing of its own (no tests, tools, examples, bench).
set -euo pipefail
src=$(cd "$1" && pwd) work=$2

rm -rf "$work"
mkdir -p "$work"
bash "$src/tests/packaging/snapshot.sh" "$src" "$work/cnasio.git"

cp -r "$src/tests/consumer" "$work/consumer"
rm -rf "$work/consumer/subprojects/cnasio" "$work/consumer/subprojects/packagecache"
sed -i "s|^url = .*|url = file://$work/cnasio.git|" "$work/consumer/subprojects/cnasio.wrap"
grep -q "^url = file://$work/cnasio.git\$" "$work/consumer/subprojects/cnasio.wrap"

# Make sure nothing is found on the system instead of the wrap.
export PKG_CONFIG_PATH= PKG_CONFIG_LIBDIR=/nonexistent
meson setup "$work/build" "$work/consumer" > "$work/setup.log" 2>&1 || { cat "$work/setup.log"; exit 1; }
test -f "$work/consumer/subprojects/cnasio/meson.build" || { echo "FAIL: the wrap was not resolved"; exit 1; }
grep -E "Dependency cnasio from subproject|Executing subproject cnasio" "$work/setup.log" ||
    { echo "FAIL: cnasio did not come from the subproject"; cat "$work/setup.log"; exit 1; }
meson compile -C "$work/build" > "$work/compile.log" 2>&1 || { cat "$work/compile.log"; exit 1; }

out=$("$work/build/consumer")
echo "$out"
grep -q '^consumer: round trip ok (41 bytes, payload "hello")$' <<<"$out" ||
    { echo "FAIL: unexpected consumer output"; exit 1; }

# A good subproject adds no targets and no tests to the project using it.
python3 - "$work/build" <<'PY'
import json, subprocess, sys
build = sys.argv[1]
def intro(what):
    return json.loads(subprocess.check_output(["meson", "introspect", build, what]))
targets = intro("--targets")
tests = intro("--tests")
names = sorted(t["name"] for t in targets)
theirs = sorted(t["name"] for t in targets if t.get("subproject") == "cnasio")
print("targets:", names, "| tests:", sorted(t["name"] for t in tests))
if names != ["consumer"] or theirs or tests:
    sys.exit("FAIL: the cnasio subproject added targets or tests: %s %s" % (theirs, [t["name"] for t in tests]))
PY
echo "PASS: consumer built through the wrap; subproject built nothing of its own"
