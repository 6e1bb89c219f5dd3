#!/usr/bin/env python3
"""README's benchmark table, generated from a saved `bench/run` output.

    bench/readme-table.py write OUTPUT [README]   put OUTPUT's table into README
    bench/readme-table.py check [README]          exit 1 unless README's table is
                                                  exactly what its named output gives

OUTPUT is a file in bench/results/ holding what `bench/run` printed: its header
comments (date, kernel, CPUs; `# commit <sha>`; rounds) and its RESULT lines
    RESULT <name> cnasio=<v> baseline=<v> ratio=<cnasio/baseline> unit=<unit>
(the format every bench program prints, see bench/common.hpp). The table goes
between the markers
    <!-- bench-table: bench/results/FILE.txt -->  ...  <!-- /bench-table -->
and starts with a line naming the commit and date the figures came from, so a
reader sees how old they are, and `check` (the readme-bench-table test) fails
when the table was edited by hand, its output file is missing, the output does
not name its commit (or names one this repository lacks, or a dirty tree), or
a RESULT line is malformed. Refreshing the figures is:
run `bench/run > bench/results/NAME.txt` on a clean checkout, then `write`.

Rows follow the output's order; names this script has no description for are
listed by name (new benchmarks appear without a change here). Descriptions and
targets are the README's (issue 6).
"""
import pathlib
import re
import subprocess
import sys

SOURCE = pathlib.Path(__file__).resolve().parent.parent
BEGIN_RE = re.compile(r"^<!-- bench-table: (bench/results/[A-Za-z0-9._-]+\.txt) -->$", re.M)
END = "<!-- /bench-table -->"
RESULT_RE = re.compile(
    r"^RESULT (?P<name>[a-z0-9_]+) cnasio=(?P<cnasio>\S+) baseline=(?P<baseline>\S+) "
    r"ratio=(?P<ratio>\S+) unit=(?P<unit>\S+)$")
NUMBER_RE = re.compile(r"^(-?[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?|inf|nan)$")
COMMIT_RE = re.compile(r"^# commit ([0-9a-f]{7,40})(-dirty)?$")

# name -> (what it measures, target). Targets as in issue 6 / bench/README.md.
DESCRIPTIONS = {
    "recv_unicast_msgs_per_s": ("receive unicast, one message per `co_await`", "ratio ≥ 1.0"),
    "recv_unicast_cpu_per_msg": ("receive unicast, CPU per message", "ratio ≤ 1.1"),
    "recv_unicast_loss": ("receive unicast, loss", "0"),
    "recv_unicast_enobufs": ("receive unicast, ENOBUFS", "0"),
    "recv_unicast_allocs_per_msg": ("receive unicast, allocations per message", "0"),
    "recv_unicast_batch_msgs_per_s": ("receive unicast, `async_receive_batch`", "ratio ≥ 1.0"),
    "recv_unicast_batch_cpu_per_msg": ("receive unicast batch, CPU per message", "ratio ≤ 1.1"),
    "recv_unicast_batch_loss": ("receive unicast batch, loss", "0"),
    "recv_unicast_batch_enobufs": ("receive unicast batch, ENOBUFS", "0"),
    "recv_unicast_batch_allocs_per_msg": ("receive unicast batch, allocations per message", "0"),
    "recv_multicast_msgs_per_s": ("receive multicast, one message per `co_await`", "ratio ≥ 1.0"),
    "recv_multicast_cpu_per_msg": ("receive multicast, CPU per message", "ratio ≤ 1.1"),
    "recv_multicast_loss": ("receive multicast, loss", "0"),
    "recv_multicast_enobufs": ("receive multicast, ENOBUFS", "0"),
    "recv_multicast_allocs_per_msg": ("receive multicast, allocations per message", "0"),
    "recv_multicast_batch_msgs_per_s": ("receive multicast, `async_receive_batch`", "ratio ≥ 1.0"),
    "recv_multicast_batch_cpu_per_msg": ("receive multicast batch, CPU per message", "ratio ≤ 1.1"),
    "recv_multicast_batch_loss": ("receive multicast batch, loss", "0"),
    "recv_multicast_batch_enobufs": ("receive multicast batch, ENOBUFS", "0"),
    "recv_multicast_batch_allocs_per_msg": ("receive multicast batch, allocations per message", "0"),
    "proc_storm_events_per_s": ("proc events, vfork storm, default buffer", "—"),
    "proc_storm_cpu_per_event": ("proc events, CPU per event", "—"),
    "proc_storm_loss_seq_gaps": ("proc events, loss (per-CPU sequence gaps)", "0"),
    "proc_storm_missed_storm_events": ("proc events, storm events missed", "0"),
    "proc_storm_enobufs": ("proc events, ENOBUFS", "0"),
    "proc_storm_allocs_per_event": ("proc events, allocations per event", "0"),
    "rtt_echo_p50": ("request round trip p50, echo peer", "ratio ≤ 1.15"),
    "rtt_echo_p99": ("request round trip p99, echo peer", "—"),
    "rtt_proc_ack_p50": ("request round trip p50, proc LISTEN ack", "ratio ≤ 1.5"),
    "rtt_proc_ack_p99": ("request round trip p99, proc LISTEN ack", "—"),
    "request_echo_allocs_per_request": ("allocations per request", "0"),
    "echo_inflight64_requests_per_s": ("64 requests in flight", "—"),
    "echo_inflight64_cpu_per_request": ("64 requests in flight, CPU per request", "—"),
    "echo_inflight64_allocs_per_request": ("64 requests in flight, allocations per request", "0"),
    "parse_instr_per_msg": ("parse cost (callgrind), `event_view`", "≤ 50"),
    "parse_decode_instr_per_msg": ("parse cost (callgrind), typed `decode`", "—"),
}


class BadInput(Exception):
    pass


def parse_output(text, where):
    """(header lines, commit, [(name, cnasio, baseline, ratio, unit)]) of a bench/run output."""
    header, commit, results = [], None, []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            m = COMMIT_RE.match(line)
            if m:
                commit = m.group(1) + (m.group(2) or "")
            elif line.startswith("# took"):
                pass
            else:
                header.append(line[1:].strip())
            continue
        m = RESULT_RE.match(line)
        if not m:
            if line.startswith("RESULT"):
                raise BadInput(f"{where}:{number}: malformed RESULT line: {line!r}")
            continue  # other programs' chatter
        for key in ("cnasio", "baseline", "ratio"):
            if not NUMBER_RE.match(m.group(key)):
                raise BadInput(f"{where}:{number}: {key}={m.group(key)!r} is not a number")
        results.append((m.group("name"), m.group("cnasio"), m.group("baseline"), m.group("ratio"), m.group("unit")))
    if commit is None:
        raise BadInput(f"{where}: no '# commit <sha>' line: which commit ran? (bench/run prints it)")
    if not results:
        raise BadInput(f"{where}: no RESULT lines")
    if commit.endswith("-dirty"):
        raise BadInput(f"{where}: bench/run ran on a tree with uncommitted changes ({commit}): "
                       "its figures belong to no commit; commit first and run it again")
    if (SOURCE / ".git").exists():
        known = subprocess.run(["git", "-C", str(SOURCE), "cat-file", "-e", commit + "^{commit}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
        if not known:
            raise BadInput(f"{where}: commit {commit} is not in this repository")
    return header, commit, results


def figure(v):
    if v in ("inf", "nan"):
        return v
    x = float(v)
    if x == int(x) and abs(x) >= 1:
        return f"{int(x):,}"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def table(output_rel):
    path = SOURCE / output_rel
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise BadInput(f"cannot read {output_rel}: {e.strerror}")
    header, commit, results = parse_output(text, output_rel)
    lines = [
        f"Generated by `bench/readme-table.py` from [{output_rel}]({output_rel}), the output of "
        f"`bench/run` at commit {commit} ({'; '.join(header)}). Ratios are cnasio / raw C.",
        "",
        "| benchmark | unit | raw C | cnasio | ratio | target |",
        "|---|---|---|---|---|---|",
    ]
    for name, cnasio, baseline, ratio, unit in results:
        what, target = DESCRIPTIONS.get(name, (f"`{name}`", "—"))
        lines.append(f"| {what} | {unit} | {figure(baseline)} | {figure(cnasio)} | {figure(ratio)} | {target} |")
    return "\n".join(lines) + "\n"


def split_readme(readme_text):
    m = BEGIN_RE.search(readme_text)
    if not m:
        raise BadInput("README has no '<!-- bench-table: bench/results/FILE.txt -->' marker")
    end = readme_text.find("\n" + END, m.end())
    if end < 0:
        raise BadInput(f"README has no '{END}' after the bench-table marker")
    return readme_text[:m.end() + 1], m.group(1), readme_text[m.end() + 1:end + 1], readme_text[end + 1:]


def main(argv):
    if len(argv) >= 2 and argv[1] == "write" and len(argv) in (3, 4):
        output = pathlib.Path(argv[2]).resolve()
        readme = pathlib.Path(argv[3]) if len(argv) == 4 else SOURCE / "README.md"
        try:
            output_rel = output.relative_to(SOURCE).as_posix()
        except ValueError:
            raise BadInput(f"{argv[2]} is not inside the source tree ({SOURCE}): save it in bench/results/")
        if not output_rel.startswith("bench/results/"):
            raise BadInput(f"{output_rel}: keep bench outputs in bench/results/")
        text = readme.read_text(encoding="utf-8")
        before, _, _, after = split_readme(text)
        before = BEGIN_RE.sub(f"<!-- bench-table: {output_rel} -->", before)
        readme.write_text(before + table(output_rel) + after, encoding="utf-8")
        print(f"readme-table: {readme}: table from {output_rel}")
        return 0
    if len(argv) >= 2 and argv[1] == "check" and len(argv) in (2, 3):
        readme = pathlib.Path(argv[2]) if len(argv) == 3 else SOURCE / "README.md"
        _, output_rel, current, _ = split_readme(readme.read_text(encoding="utf-8"))
        expected = table(output_rel)
        if current != expected:
            print(f"readme-table: FAIL: {readme}'s benchmark table is not what {output_rel} gives "
                  f"(edited by hand, or the output changed): run bench/readme-table.py write {output_rel}")
            for a, b in zip(current.splitlines(), expected.splitlines()):
                if a != b:
                    print(f"  README:    {a}\n  generated: {b}")
                    break
            return 1
        print(f"readme-table: {readme}'s table is {output_rel}'s")
        return 0
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except BadInput as e:
        print(f"readme-table: FAIL: {e}", file=sys.stderr)
        sys.exit(1)
