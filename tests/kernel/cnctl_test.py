#!/usr/bin/env python3
"""cnctl end to end, against the running kernel (root): usage errors, runtime
errors, live process events as JSON, requests to a user-space peer, forged
messages that must not show, and network namespaces.

usage: cnctl_test.py PATH/TO/cnctl        (exit 77 = skipped: not root)
"""
import json
import re
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
PROC_EVENT_FORK = 0x00000001

failures = []
checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}", flush=True)


def run(cnctl, *args, timeout=10, stdout=subprocess.PIPE, **kw):
    return subprocess.run([cnctl, *args], stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=timeout, **kw)


def start(cnctl, *args, prefix=()):
    return subprocess.Popen([*prefix, cnctl, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def start_ready(cnctl, *args, group, timeout=10):
    """Starts `cnctl ARGS --ready-line` and returns once it says it listens on
    `group`: from then on, what is sent to the group reaches it."""
    p = start(cnctl, *args, "--ready-line")
    line = b""
    deadline = time.monotonic() + timeout
    # Byte by byte from the fd, so that nothing after the line is taken from
    # the pipe before communicate() reads it.
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([p.stderr], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(p.stderr.fileno(), 1) if ready else b""
        if not chunk:
            p.kill()
            out, err = p.communicate()
            raise AssertionError(f"cnctl {' '.join(args)} never said it listens: exit {p.returncode}, "
                                 f"stderr {line.decode() + err!r}")
        line += chunk
    want = f"cnctl: listening on group {group}\n"
    if line.decode() != want:
        p.kill()
        p.communicate()
        raise AssertionError(f"cnctl {' '.join(args)}: readiness line {line!r}, expected {want!r}")
    return p


def drain(p):
    """Reads p's stdout from now on in a thread (the machine's other processes
    can fill a pipe nobody reads, and a blocked cnctl shows nothing more).
    Returns finish(): waits for p's end, gives (stdout, stderr)."""
    chunks = []
    t = threading.Thread(target=lambda: chunks.append(p.stdout.read()), daemon=True)
    t.start()

    def finish(timeout=10):
        t.join(timeout)
        err = p.stderr.read()
        p.wait(timeout)
        return "".join(chunks), err
    return finish


def spawn_processes(stop, delay=0.05):
    """Starts short-lived processes until `stop` is set."""
    while not stop.is_set():
        subprocess.run(["/bin/sh", "-c", "exit 3"])
        subprocess.run(["/bin/true"])
        time.sleep(delay)


class Spawner:
    def __enter__(self):
        self.stop = threading.Event()
        self.thread = threading.Thread(target=spawn_processes, args=(self.stop,), daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def peer_socket(groups=0):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
    s.bind((0, groups))
    return s


def connector_datagram(idx, val, seq, ack, payload, nlmsg_pid=0):
    cn = struct.pack("=IIIIHH", idx, val, seq, ack, len(payload), 0) + payload
    return struct.pack("=IHHII", 16 + len(cn), 3, 0, seq, nlmsg_pid) + cn  # NLMSG_DONE


def forged_fork(child, seq):
    # proc_event: what, cpu, timestamp_ns, fork {parent_pid, parent_tgid, child_pid, child_tgid}
    ev = struct.pack("=IIQiiii", PROC_EVENT_FORK, 0, 0, 1, 1, child, child) + bytes(8)
    return connector_datagram(CN_IDX_PROC, 1, seq, 0, ev)


def usage_errors(cnctl):
    cases = [
        [],
        ["frobnicate"],
        ["proc", "--filter", "fork,bogus"],
        ["proc", "--filter", ""],
        ["proc", "--filter", "fork,,exit"],
        ["proc", "--count"],
        ["proc", "--count", "0"],
        ["proc", "--count", "-3"],
        ["proc", "--count", "ten"],
        ["proc", "--bogus"],
        ["proc", "extra"],
        ["proc", "--json=yes"],
        ["proc", "--rcvbuf", "0"],
        ["proc", "--netns", ""],
        ["listen"],
        ["listen", "--group", "0"],
        ["listen", "--group", "27"],
        ["listen", "--group", "x"],
        ["listen", "--group", "1", "--admit", "0"],
        ["listen", "--group", "1", "--admit", "port"],
        ["request"],
        ["request", "1"],
        ["request", "1:"],
        ["request", ":1"],
        ["request", "a:b"],
        ["request", "1:2:3"],
        ["request", "4294967296:1"],
        ["request", "1:1", "--hex", "abc"],
        ["request", "1:1", "--hex", "zz"],
        ["request", "1:1", "--data", "x", "--hex", "00"],
        ["request", "1:1", "--timeout", "0"],
        ["request", "1:1", "--timeout", "soon"],
        ["request", "1:1", "2:2"],
        ["request", "1:1", "--hex", "00" * 16385],
        ["send"],
        ["send", "1-1"],
        ["send", "1:1", "--timeout", "5"],  # request-only option
        ["send", "1:1", "--json"],
        ["send", "1:1", "--to", "0"],
        ["ids", "extra"],
        ["ids", "--timeout", "5"],
        ["wait-id"],
        ["wait-id", "1"],
        ["wait-id", "1:1", "--timeout", "0"],
        ["wait-id", "1:1", "--interval", "x"],
        ["wait-id", "1:1", "--gone=yes"],
        ["send", "1:1", "--no-registry-check=no"],
        ["--version", "extra"],
        ["--version", "proc"],
        ["w1"],
        ["w1", "bogus"],
        ["w1", "masters", "extra"],
        ["w1", "search", "x"],
        ["w1", "search", "1", "2"],
        ["w1", "temp", "28-0000"],
        ["w1", "temp", "10-00000a1b2c3d"],
        ["w1", "read", "1"],
        ["w1", "read", "1", "0"],
        ["w1", "read", "28-zz000a1b2c3d", "9"],
        ["w1", "write", "1", "abc"],
        ["w1", "touch", "1", ""],
        ["w1", "temp", "--timeout", "0"],
        ["w1", "masters", "--to", "0"],
        ["proc", "--pid"],
        ["proc", "--pid", "0"],
        ["proc", "--pid", "abc"],
        ["proc", "--pid", "-1"],
        ["proc", "--pid", "99999999999"],
        ["proc", "--descendants"],
        ["proc", "--pid", "1", "--raw"],
        ["proc", "--pid", "1", "--force-bpf"],
        ["proc", "--cgroup", "system.slice"],
        ["proc", "--cgroup", ""],
        ["proc", "--container", ""],
        ["proc", "--stats", "--raw"],
        ["proc", "--stats=yes"],
        ["tree", "0"],
        ["tree", "x1"],
        ["tree", "1", "2"],
        ["tree", "--count", "1"],
    ]
    for args in cases:
        r = run(cnctl, *args)
        name = "cnctl " + " ".join(a if len(a) < 40 else a[:20] + "..." for a in args)
        check(r.returncode == 2, f"{name}: exit {r.returncode}, expected 2")
        lines = r.stderr.strip().splitlines()
        check(len(lines) == 1 and lines[0].startswith("cnctl: "), f"{name}: one-line message, got {r.stderr!r}")
        check(r.stdout == "", f"{name}: nothing on stdout, got {r.stdout!r}")
    # Specific wording for the cases the issue names.
    check("unknown event type 'bogus'" in run(cnctl, "proc", "--filter", "fork,bogus").stderr, "names bad filter")
    check("1..26" in run(cnctl, "listen", "--group", "27").stderr, "names the group range")
    check("IDX:VAL" in run(cnctl, "request", "a:b").stderr, "names IDX:VAL")
    check("hex" in run(cnctl, "request", "1:1", "--hex", "zz").stderr, "names bad hex")
    check("not a DS18B20" in run(cnctl, "w1", "temp", "10-00000a1b2c3d").stderr, "w1 temp names the family")
    check("28-00000a1b2c3d" in run(cnctl, "w1", "temp", "28-0000").stderr, "w1 temp shows a ROM id's form")
    check("--descendants needs --pid" in run(cnctl, "proc", "--descendants").stderr, "names --descendants' need")
    check("invalid process id 'abc'" in run(cnctl, "proc", "--pid", "abc").stderr, "names a bad --pid")
    check("not with --raw" in run(cnctl, "proc", "--pid", "1", "--raw").stderr, "names --raw's conflict")
    return len(cases)


def help_and_version(cnctl):
    r = run(cnctl, "--version")
    check(r.returncode == 0 and r.stdout.startswith("cnctl "), f"--version: {r.returncode} {r.stdout!r}")
    r = run(cnctl, "--help")
    check(r.returncode == 0 and "proc" in r.stdout and "listen" in r.stdout, "--help lists the commands")
    for cmd in ["proc", "listen", "request", "send", "tree", "wait"]:
        r = run(cnctl, cmd, "--help")
        check(r.returncode == 0 and r.stdout.startswith(f"usage: cnctl {cmd}"), f"{cmd} --help")


def proc_json(cnctl):
    with Spawner():
        r = run(cnctl, "proc", "--count", "3", "--json")
    check(r.returncode == 0, f"proc --count 3 --json: exit {r.returncode} {r.stderr!r}")
    lines = r.stdout.splitlines()
    check(len(lines) == 3, f"proc --count 3: {len(lines)} lines")
    for line in lines:
        try:
            ev = json.loads(line)
        except ValueError as e:
            check(False, f"not JSON: {line!r}: {e}")
            continue
        check(ev.get("type") in {"fork", "exec", "exit", "comm", "uid", "gid", "sid", "ptrace", "coredump"},
              f"event type in {line!r}")
        check(isinstance(ev.get("cpu"), int) and isinstance(ev.get("timestamp_ns"), int), f"header in {line!r}")
        if ev["type"] == "exec":
            check("comm" in ev, f"exec shows the process name: {line!r}")
    # Exit-only filter, through the kernel mask and through BPF.
    for extra in [[], ["--force-bpf"]]:
        with Spawner():
            r = run(cnctl, "proc", "--filter", "exit", "--count", "4", "--json", *extra)
        check(r.returncode == 0, f"proc --filter exit {extra}: exit {r.returncode} {r.stderr!r}")
        types = [json.loads(l)["type"] for l in r.stdout.splitlines()]
        check(types == ["exit"] * 4, f"proc --filter exit {extra}: {types}")
    # Text output: exec lines name the process.
    with Spawner():
        r = run(cnctl, "proc", "--raw", "--filter", "exec", "--count", "2")
    lines = r.stdout.splitlines()
    check(r.returncode == 0 and len(lines) == 2 and all(" exec " in l and "comm=" in l for l in lines),
          f"text exec lines: {r.stdout!r}")


def proc_signal_and_loss(cnctl):
    # SIGTERM and SIGINT end it cleanly (exit 0).
    for sig in (signal.SIGTERM, signal.SIGINT):
        p = start_ready(cnctl, "proc", "--json", group=CN_IDX_PROC)
        p.send_signal(sig)
        out, err = p.communicate(timeout=5)
        check(p.returncode == 0, f"proc after {sig.name}: exit {p.returncode} {err!r}")
    # A tiny buffer and a vfork storm: the loss is reported on stderr with a count.
    p = start_ready(cnctl, "proc", "--rcvbuf", "4096", "--json", group=CN_IDX_PROC)
    p.send_signal(signal.SIGSTOP)  # nobody reads: the buffer overflows
    storm = subprocess.run([sys.executable, "-c",
                            "import os\nfor _ in range(2000):\n pid = os.fork()\n"
                            " if pid == 0: os._exit(0)\n os.waitpid(pid, 0)\n"])
    check(storm.returncode == 0, "storm ran")
    p.send_signal(signal.SIGCONT)
    time.sleep(0.5)
    for _ in range(3):
        subprocess.run(["/bin/true"])
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=5)
    check(p.returncode == 0, f"proc --rcvbuf 4096: exit {p.returncode}")
    check("overrun" in err and "events lost" in err, f"loss reported on stderr: {err!r}")


def write_errors(cnctl):
    """Output that cannot be written ends cnctl with exit 1 and the reason on
    stderr; a reader that goes away (EPIPE) ends it quietly with 0."""
    with open("/dev/full", "w") as full:
        with Spawner():
            r = run(cnctl, "proc", "--count", "2", stdout=full)
        check(r.returncode == 1 and "writing to standard output: No space left on device" in r.stderr,
              f"proc > /dev/full: {r.returncode} {r.stderr!r}")
        with Spawner():
            r = run(cnctl, "proc", "--count", "2", "--json", stdout=full)
        check(r.returncode == 1 and "No space left on device" in r.stderr,
              f"proc --json > /dev/full: {r.returncode} {r.stderr!r}")
        with Spawner():
            r = run(cnctl, "proc", "--count", "2", "--raw", stdout=full)
        check(r.returncode == 1 and "writing to standard output: No space left on device" in r.stderr,
              f"proc --raw > /dev/full: {r.returncode} {r.stderr!r}")
        with Spawner():
            r = run(cnctl, "proc", "--count", "2", "--raw", "--json", stdout=full)
        check(r.returncode == 1 and "No space left on device" in r.stderr,
              f"proc --raw --json > /dev/full: {r.returncode} {r.stderr!r}")
        r = run(cnctl, "tree", stdout=full)
        check(r.returncode == 1 and "No space left on device" in r.stderr, f"tree > /dev/full: {r.returncode} {r.stderr!r}")
        r = run(cnctl, "--help", stdout=full)
        check(r.returncode == 1 and "No space left on device" in r.stderr, f"--help > /dev/full: {r.returncode}")
    # Closed stdout: the write fails (EBADF), and no socket took fd 1.
    with Spawner():
        r = subprocess.run(["sh", "-c", 'exec "$0" proc --count 2 >&-', cnctl], capture_output=True, text=True,
                           timeout=10)
    check(r.returncode == 1 and "writing to standard output: Bad file descriptor" in r.stderr,
          f"proc >&-: {r.returncode} {r.stderr!r}")
    # The reader closes the pipe after one line: cnctl ends by itself, quietly.
    with Spawner():
        p = start(cnctl, "proc", "--json")
        first = p.stdout.readline()
        p.stdout.close()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    err = p.stderr.read()
    p.stderr.close()
    check(first.startswith("{") and p.returncode == 0 and err == "",
          f"proc with a closed pipe: exit {p.returncode}, first line {first!r}, stderr {err!r}")


def forged_multicast(cnctl):
    """A root user-space process multicasts forged proc events to group 1:
    the kernel delivers them with the sender's port id, cnctl must drop them.
    They are queued on cnctl's socket before any real event of the Spawner."""
    fake = 0x3ffffff3
    forger = peer_socket()
    p = start_ready(cnctl, "proc", "--json", "--count", "6", group=CN_IDX_PROC)
    for seq in range(5):
        forger.sendto(forged_fork(fake, seq), (0, 1 << (CN_IDX_PROC - 1)))
    with Spawner():
        out, err = p.communicate(timeout=10)
    forger.close()
    check(p.returncode == 0, f"proc with a forger: exit {p.returncode} {err!r}")
    check(str(fake) not in out, "forged multicast proc event shown by cnctl proc")
    check(len(out.splitlines()) == 6, "proc --count 6 printed 6 events")


def listen_group(cnctl):
    peer = peer_socket()
    stranger = peer_socket()
    group = 5
    payload = b"hi\x00\x7f\"\\\xe9\xff"
    # SIGTERM ends it with 0, having printed nothing.
    p = start_ready(cnctl, "listen", "--group", str(group), "--json", group=group)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=5)
    check(p.returncode == 0 and out == "" and err == "", f"listen after SIGTERM: exit {p.returncode} {out!r} {err!r}")
    # Not admitted: a stranger's message, queued before an admitted one, is not shown.
    p = start_ready(cnctl, "listen", "--group", str(group), "--json", "--count", "1", "--admit",
                    str(peer.getsockname()[0]), group=group)
    stranger.sendto(connector_datagram(group, 7, 1, 0, b"stranger"), (0, 1 << (group - 1)))
    peer.sendto(connector_datagram(group, 7, 2, 0, b"admitted"), (0, 1 << (group - 1)))
    out, err = p.communicate(timeout=5)
    lines = out.splitlines()
    check(p.returncode == 0 and len(lines) == 1 and json.loads(lines[0])["text"] == "admitted",
          f"listen, sender not admitted: exit {p.returncode} out {out!r}")
    stranger.close()
    # Admitted: the message is shown with its fields.
    p = start_ready(cnctl, "listen", "--group", str(group), "--json", "--count", "1", "--admit",
                    str(peer.getsockname()[0]), group=group)
    peer.sendto(connector_datagram(group, 7, 42, 9, payload), (0, 1 << (group - 1)))
    out, err = p.communicate(timeout=5)
    check(p.returncode == 0, f"listen admitted: exit {p.returncode} {err!r}")
    try:
        m = json.loads(out)
        check((m["idx"], m["val"], m["seq"], m["ack"], m["len"]) == (group, 7, 42, 9, len(payload)),
              f"listen fields: {m}")
        check(m["hex"] == payload.hex(), f"listen hex: {m['hex']}")
        check(m["text"] == payload.decode("latin-1"), f"listen text: {m['text']!r}")
    except (ValueError, KeyError) as e:
        check(False, f"listen JSON: {out!r}: {e}")
    # Text form.
    p = start_ready(cnctl, "listen", "--group", str(group), "--count", "1", "--admit", str(peer.getsockname()[0]),
                    group=group)
    peer.sendto(connector_datagram(group, 7, 1, 2, b"ab\x01"), (0, 1 << (group - 1)))
    out, err = p.communicate(timeout=5)
    check(out.startswith(f"idx={group} val=7 seq=1 ack=2 len=3") and 'hex=616201 text="ab."' in out,
          f"listen text: {out!r}")
    peer.close()


def request_and_send(cnctl):
    # A user-space responder: replies with the request's seq and ack + 1.
    peer = peer_socket()
    port = peer.getsockname()[0]
    forger = peer_socket()

    def respond(forge_first, seen, reply_seq=None):
        """Answers one request; `seen` gets the request's (seq, ack). The reply
        carries `reply_seq` when given (as the proc connector does), else seq."""
        data, (sender, _) = peer.recvfrom(65536)
        idx, val, seq, ack, ln, _ = struct.unpack_from("=IIIIHH", data, 16)
        seen.append((seq, ack))
        body = data[36:36 + ln]
        if forge_first:  # a forged reply from another port (right seq, ack + 1) must be ignored
            forger.sendto(connector_datagram(idx, val, seq, ack + 1, b"FORGED"), (sender, 0))
            time.sleep(0.05)
        out_seq = seq if reply_seq is None else reply_seq
        peer.sendto(connector_datagram(idx, val, out_seq, (ack + 1) & 0xffffffff, b"re:" + body), (sender, 0))

    def request_via_peer(*args, forge=False, reply_seq=None, **kw):
        seen = []
        t = threading.Thread(target=respond, args=(forge, seen, reply_seq))
        t.start()
        r = run(cnctl, "request", "100:2", "--data", "ping", "--to", str(port), *args, **kw)
        t.join()
        check(len(seen) == 1, f"the peer got one request: {seen}")
        return r, (seen[0] if seen else (None, None))

    for forge in (False, True):
        r, (seq, ack) = request_via_peer("--json", forge=forge)
        check(r.returncode == 0, f"request to a peer (forge={forge}): exit {r.returncode} {r.stderr!r}")
        try:
            m = json.loads(r.stdout)
            check(m["text"] == "re:ping" and (m["idx"], m["val"]) == (100, 2), f"reply: {m}")
            check((m["seq"], m["ack"]) == (seq, (ack + 1) & 0xffffffff), f"reply numbers {m} for {(seq, ack)}")
            # The request's numbers as the peer received them.
            check(m["request"] == {"seq": seq, "ack": ack}, f"request numbers {m} for {(seq, ack)}")
        except (ValueError, KeyError) as e:
            check(False, f"request JSON {r.stdout!r}: {e}")
        check("FORGED" not in r.stdout, "a forged reply was printed")
    # Text: the request beside the reply.
    r, (seq, ack) = request_via_peer()
    want = f"request seq={seq} ack={ack} -> reply idx=100 val=2 seq={seq} ack={(ack + 1) & 0xffffffff} len=7 "
    check(r.returncode == 0 and r.stdout.startswith(want) and r.stdout.endswith('text="re:ping"\n'),
          f"request text: {r.stdout!r}, expected it to start with {want!r}")
    # --ack-only: a reply with another seq is taken; the request's own seq is still shown (as sent).
    r, (seq, ack) = request_via_peer("--ack-only", "--json", reply_seq=0x12345)
    try:
        m = json.loads(r.stdout)
        check(r.returncode == 0 and m["seq"] == 0x12345 and m["request"] == {"seq": seq, "ack": ack},
              f"request --ack-only: {m} for {(seq, ack)}")
    except (ValueError, KeyError) as e:
        check(False, f"request --ack-only JSON {r.stdout!r}: {e}")
    r, (seq, ack) = request_via_peer("--ack-only", reply_seq=0x12345)
    check(r.stdout.startswith(f"request seq={seq} ack={ack} -> reply idx=100 val=2 seq={0x12345} "),
          f"request --ack-only text: {r.stdout!r}")
    # A reply that cannot be written: exit 1 and the reason.
    with open("/dev/full", "w") as full:
        r, _ = request_via_peer(stdout=full)
    check(r.returncode == 1 and "writing to standard output: No space left on device" in r.stderr,
          f"request > /dev/full: {r.returncode} {r.stderr!r}")
    # An unregistered id at the kernel: refused at once, named (the kernel would drop it silently).
    t0 = time.monotonic()
    r = run(cnctl, "request", "200:1", "--timeout", "2000")
    check(r.returncode == 1 and "200:1 is not registered" in r.stderr and time.monotonic() - t0 < 1.5,
          f"request to an unregistered id: {r.returncode} {r.stderr!r}")
    # Timeout: the same without the check (the message vanishes).
    r = run(cnctl, "request", "200:1", "--timeout", "200", "--no-registry-check")
    check(r.returncode == 3 and "no reply" in r.stderr, f"request timeout: {r.returncode} {r.stderr!r}")
    # ...and a registered id that stays silent (proc drops a 3-byte op): a plain timeout, exit 3.
    r = run(cnctl, "request", "1:1", "--hex", "010000", "--timeout", "200")
    check(r.returncode == 3 and "no reply from 1:1" in r.stderr, f"silent registered id: {r.returncode} {r.stderr!r}")
    # send: one-way, to the kernel and to a peer; to an unregistered id it fails unless told not to check.
    r = run(cnctl, "send", "200:1", "--data", "x")
    check(r.returncode == 1 and "200:1 is not registered" in r.stderr and "wait-id" in r.stderr,
          f"send to an unregistered id: {r.returncode} {r.stderr!r}")
    r = run(cnctl, "send", "200:1", "--data", "x", "--no-registry-check")
    check(r.returncode == 0, f"send --no-registry-check: {r.returncode} {r.stderr!r}")
    # (a 3-byte payload, which the proc connector drops: an IGNORE would lower the machine's listener count)
    r = run(cnctl, "send", "1:1", "--hex", "010000")
    check(r.returncode == 0, f"send to the kernel: {r.returncode} {r.stderr!r}")
    r = run(cnctl, "send", "100:3", "--hex", "0a0b", "--to", str(port))
    check(r.returncode == 0, f"send to a peer: {r.returncode} {r.stderr!r}")
    peer.settimeout(2)
    data = peer.recv(65536)
    check(data[36:38] == b"\x0a\x0b", f"peer got the payload: {data[36:]!r}")
    # send to a port nobody has: ECONNREFUSED, named.
    spare = peer_socket()
    gone = spare.getsockname()[0]
    spare.close()
    r = run(cnctl, "send", "100:3", "--to", str(gone))
    check(r.returncode == 1 and "port id" in r.stderr, f"send to a missing port: {r.returncode} {r.stderr!r}")
    peer.close()
    forger.close()


def registry(cnctl):
    # ids: proc's 1:1, as text and as JSON Lines.
    r = run(cnctl, "ids")
    check(r.returncode == 0 and "name=cn_proc id=1:1" in r.stdout.splitlines(), f"ids: {r.returncode} {r.stdout!r}")
    r = run(cnctl, "ids", "--json")
    try:
        rows = [json.loads(line) for line in r.stdout.splitlines()]
        check(r.returncode == 0 and {"name": "cn_proc", "idx": 1, "val": 1} in rows, f"ids --json: {rows}")
    except ValueError as e:
        check(False, f"ids --json {r.stdout!r}: {e}")
    # wait-id: present at once; absent ones time out with exit 3; --gone for an absent id at once.
    r = run(cnctl, "wait-id", "1:1", "--timeout", "1000")
    check(r.returncode == 0 and r.stdout.startswith("1:1 registered after "), f"wait-id 1:1: {r.returncode} {r.stdout!r}")
    t0 = time.monotonic()
    r = run(cnctl, "wait-id", "200:1", "--timeout", "300", "--interval", "50")
    took = time.monotonic() - t0
    check(r.returncode == 3 and "200:1 not registered within 300 ms" in r.stderr and 0.3 <= took < 2,
          f"wait-id for an id that never comes: {r.returncode} {r.stderr!r} after {took:.2f} s")
    r = run(cnctl, "wait-id", "200:1", "--gone", "--json")
    try:
        m = json.loads(r.stdout)
        check(r.returncode == 0 and m["event"] == "unregistered" and (m["idx"], m["val"]) == (200, 1),
              f"wait-id --gone --json: {m}")
    except (ValueError, KeyError) as e:
        check(False, f"wait-id --json {r.stdout!r}: {e}")
    r = run(cnctl, "wait-id", "1:1", "--gone", "--timeout", "200")
    check(r.returncode == 3 and "not unregistered" in r.stderr, f"wait-id 1:1 --gone: {r.returncode} {r.stderr!r}")
    # From a new network namespace the file is absent: the error says where it is, and --netns helps.
    for args in (["ids"], ["wait-id", "1:1", "--timeout", "200"], ["send", "1:1", "--hex", "010000"]):
        r = subprocess.run(["unshare", "-n", cnctl, *args], capture_output=True, text=True, timeout=10)
        check(r.returncode == 1 and "/proc/net/connector does not exist in this network namespace" in r.stderr
              and "--netns" in r.stderr, f"{args[0]} in a new netns: {r.returncode} {r.stderr!r}")
    home = f"/proc/{os.getpid()}/ns/net"
    r = subprocess.run(["unshare", "-n", cnctl, "ids", "--netns", home], capture_output=True, text=True, timeout=10)
    check(r.returncode == 0 and "name=cn_proc id=1:1" in r.stdout, f"ids --netns {home}: {r.returncode} {r.stderr!r}")


def runtime_errors(cnctl):
    r = run(cnctl, "proc", "--netns", "/nonexistent/ns/net", "--count", "1")
    check(r.returncode == 1 and "/nonexistent/ns/net" in r.stderr, f"bad --netns: {r.returncode} {r.stderr!r}")
    r = run(cnctl, "request", "1:1", "--netns", "/etc/hostname")  # not a namespace file: EINVAL
    check(r.returncode == 1 and "/etc/hostname" in r.stderr, f"non-namespace --netns: {r.returncode} {r.stderr!r}")
    # Not root: joining an even group needs CAP_NET_ADMIN (any group on older kernels).
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", cnctl, "listen", "--group",
                        "2"], capture_output=True, text=True, timeout=10)
    check(r.returncode == 1 and "not permitted" in r.stderr and "CAP_NET_ADMIN" in r.stderr,
          f"non-root listen: {r.returncode} {r.stderr!r}")
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", cnctl, "proc", "--netns",
                        f"/proc/{os.getpid()}/ns/net"], capture_output=True, text=True, timeout=10)
    check(r.returncode == 1 and "CAP_SYS_ADMIN" in r.stderr, f"non-root --netns: {r.returncode} {r.stderr!r}")


def namespaces(cnctl):
    # Without --netns, a fresh network namespace has no connector.
    r = subprocess.run(["unshare", "-n", cnctl, "proc", "--count", "1"], capture_output=True, text=True, timeout=10)
    check(r.returncode == 1 and "--netns" in r.stderr and "network namespace" in r.stderr,
          f"proc in a new netns: {r.returncode} {r.stderr!r}")
    r = subprocess.run(["unshare", "-n", cnctl, "request", "200:1"], capture_output=True, text=True, timeout=10)
    check(r.returncode == 1 and "--netns" in r.stderr, f"request in a new netns: {r.returncode} {r.stderr!r}")
    # With --netns naming this process's namespace (the initial one), events arrive.
    home = f"/proc/{os.getpid()}/ns/net"
    with Spawner():
        r = subprocess.run(["unshare", "-n", cnctl, "proc", "--netns", home, "--count", "3", "--json"],
                           capture_output=True, text=True, timeout=10)
    check(r.returncode == 0 and len(r.stdout.splitlines()) == 3, f"proc --netns {home}: {r.returncode} {r.stderr!r}")


def wait_command(cnctl):
    # Any process, not only cnctl's children: exit status as the shell's wait.
    p = subprocess.Popen(["sh", "-c", "sleep 0.5; exit 7"])
    r = run(cnctl, "wait", str(p.pid))
    p.wait()
    check(r.returncode == 7 and r.stdout == f"{p.pid} exited 7\n", f"wait exit 7: {r.returncode} {r.stdout!r} {r.stderr!r}")
    p = subprocess.Popen(["sleep", "5"])
    threading.Timer(0.5, lambda: p.kill()).start()
    r = run(cnctl, "wait", str(p.pid))
    p.wait()
    check(r.returncode == 128 + 9 and r.stdout == f"{p.pid} killed by signal 9\n",
          f"wait SIGKILL: {r.returncode} {r.stdout!r} {r.stderr!r}")
    # Several: each one's line, the status of the last one listed.
    a = subprocess.Popen(["sh", "-c", "sleep 0.3; exit 1"])
    b = subprocess.Popen(["sh", "-c", "sleep 0.6; exit 2"])
    r = run(cnctl, "wait", str(b.pid), str(a.pid))
    a.wait()
    b.wait()
    check(r.returncode == 1 and r.stdout == f"{a.pid} exited 1\n{b.pid} exited 2\n",
          f"wait two: {r.returncode} {r.stdout!r} {r.stderr!r}")
    # --netns: the socket opened in that namespace (here cnctl's own), for
    # wait as for wait-id; a path that is no namespace is a runtime error.
    p = subprocess.Popen(["sh", "-c", "sleep 0.3; exit 3"])
    r = run(cnctl, "wait", "--netns", "/proc/self/ns/net", str(p.pid))
    p.wait()
    check(r.returncode == 3 and r.stdout == f"{p.pid} exited 3\n", f"wait --netns: {r.returncode} {r.stdout!r} {r.stderr!r}")
    r = run(cnctl, "wait", "--netns", "/nonexistent-netns", "1")
    check(r.returncode == 1 and "/nonexistent-netns" in r.stderr, f"wait --netns bad: {r.returncode} {r.stderr!r}")
    r = run(cnctl, "wait-id", "1:1", "--netns", "/proc/self/ns/net", "--timeout", "100")
    check(r.returncode == 0, f"wait-id --netns: {r.returncode} {r.stderr!r}")
    # A pid that does not exist: 127 and a message.
    r = run(cnctl, "wait", "2147483000")
    check(r.returncode == 127 and r.stderr == "cnctl: wait: no such process: 2147483000\n",
          f"wait nonexistent: {r.returncode} {r.stderr!r}")
    # Bad input: exit 2, one line.
    for bad in (["wait"], ["wait", "abc"], ["wait", "0"], ["wait", "-5"], ["wait", "99999999999"], ["wait", "12x"]):
        r = run(cnctl, *bad)
        check(r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("cnctl: "),
              f"{bad}: {r.returncode} {r.stderr!r}")
    # Output that cannot be written: a message and exit 1.
    p = subprocess.Popen(["sh", "-c", "sleep 0.3; exit 0"])
    with open("/dev/full", "w") as full:
        r = run(cnctl, "wait", str(p.pid), stdout=full)
    p.wait()
    check(r.returncode == 1 and "writing to standard output" in r.stderr, f"wait > /dev/full: {r.returncode} {r.stderr!r}")


def proc_view_hostile_argv(cnctl):
    # The default output (forkstat-like) shows the command line; a process
    # chooses its own argv, so it must not forge or hide lines.
    import re
    p = start_ready(cnctl, "proc", group=CN_IDX_PROC)
    finish = drain(p)
    hostile = b"x\n09:00:00.000 exit 1 1 0 status=0 forged\x1b[2J\xff\xfe\r"
    child = subprocess.Popen([b"/bin/sh", b"-c", b"sleep 0.5", hostile])
    child.wait()
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    out, err = finish()
    raw = out.encode() if isinstance(out, str) else out
    check(p.returncode == 0, f"proc default: exit {p.returncode} {err!r}")
    check("\x1b" not in out and "\r" not in out, "no raw escape or CR in the output")
    line_re = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} [a-z_]+ \d+ (\d+|\?) (\d+|\?)( |$)")
    bad = [l for l in out.splitlines() if not line_re.match(l)]
    check(not bad, f"every line has the format: {bad[:3]!r}")
    mine = [l for l in out.splitlines() if f" exec {child.pid} " in l]
    check(len(mine) == 1 and "\\x0a09:00:00.000 exit" in mine[0] and "\\x1b[2J\\xff\\xfe\\x0d" in mine[0]
          and mine[0].startswith(tuple("0123456789")) and "/bin/sh -c sleep 0.5 x" in mine[0],
          f"the hostile exec line, escaped: {mine!r}")
    ex = [l for l in out.splitlines() if f" exit {child.pid} " in l]
    check(len(ex) == 1 and " status=0 lifetime=" in ex[0], f"exit line with status and lifetime: {ex!r}")
    forged = [l for l in out.splitlines() if l.startswith("09:00:00.000")]
    check(not forged, f"no forged line: {forged!r}")


def w1_crc8(data):
    crc = 0
    for b in data:
        for _ in range(8):
            mix = (crc ^ b) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            b >>= 1
    return crc


def w1_rom(serial):
    body = bytes([0x28]) + serial.to_bytes(6, "little")
    return body + bytes([w1_crc8(body)])


def w1_stand_in(sock, sensors, stop):
    """Answers cnctl's w1 requests as drivers/w1/w1_netlink.c does, for one
    bus master (id 1) with DS18B20s: `sensors` maps ROM id -> (raw, corrupt).
    Data replies carry ack = seq + 1, one status per command the request's ack."""
    converted = set()
    while not stop.is_set():
        ready, _, _ = select.select([sock], [], [], 0.05)
        if not ready:
            continue
        data, (sender, _) = sock.recvfrom(65536)
        idx, val, seq, ack, ln, _ = struct.unpack_from("=IIIIHH", data, 16)
        body = data[36:36 + ln]
        mtype, _, mlen = struct.unpack_from("=BBH", body, 0)
        mid = body[4:12]

        def reply(reply_ack, status, cmd=None, payload=b""):
            cmdb = b"" if cmd is None else struct.pack("=BBH", cmd, 0, len(payload)) + payload
            msg = struct.pack("=BBH", mtype, status, len(cmdb)) + mid + cmdb
            sock.sendto(connector_datagram(idx, val, seq, reply_ack, msg), (sender, 0))

        if mtype == 6:  # LIST_MASTERS
            msg = struct.pack("=BBH", 6, 0, 4) + bytes(8) + struct.pack("=I", 1)
            sock.sendto(connector_datagram(idx, val, seq, seq + 1, msg), (sender, 0))
            continue
        if (mtype == 4 and mid[:4] != struct.pack("=I", 1)) or (mtype == 5 and mid not in sensors):
            reply(ack, 19)  # ENODEV, no command
            continue
        at, end = 12, 12 + mlen
        while at < end:
            cmd, _, clen = struct.unpack_from("=BBH", body, at)
            cdata = body[at + 4:at + 4 + clen]
            at += 4 + clen
            if cmd == 2:  # SEARCH
                reply(seq + 1, 0, cmd, b"".join(sensors))
            elif cmd == 1 and cdata == b"\x44":
                converted.add(mid)
            elif cmd == 0:  # READ: the scratchpad
                raw, corrupt = sensors[mid]
                raw = raw if mid in converted else 0x0550
                pad = struct.pack("<h", raw) + bytes([0x4B, 0x46, 0x1F, 0xFF, 0x0C, 0x10])
                pad += bytes([w1_crc8(pad)])
                if corrupt:
                    pad = bytes([pad[0] ^ 1]) + pad[1:]
                reply(seq + 1, 0, cmd, pad[:clen])
            reply(ack, 0, cmd)


def w1_commands(cnctl):
    good, bad = w1_rom(0x0A0001), w1_rom(0x0A0002)
    sock = peer_socket()
    port = str(sock.getsockname()[0])
    stop = threading.Event()
    t = threading.Thread(target=w1_stand_in, args=(sock, {good: (0x0190, False), bad: (0x0150, True)}, stop))
    t.start()
    try:
        r = run(cnctl, "w1", "masters", "--to", port)
        check(r.returncode == 0 and r.stdout == "master=1\n", f"w1 masters: {r.returncode} {r.stdout!r} {r.stderr!r}")
        r = run(cnctl, "w1", "search", "--to", port, "--json")
        lines = [json.loads(l) for l in r.stdout.splitlines()]
        check(r.returncode == 0 and [l["slave"] for l in lines] == ["28-0000000a0001", "28-0000000a0002"]
              and all(l["master"] == 1 and l["crc_ok"] for l in lines), f"w1 search --json: {r.stdout!r} {r.stderr!r}")
        r = run(cnctl, "w1", "temp", "28-0000000a0001", "--to", port)
        check(r.returncode == 0 and r.stdout == "slave=28-0000000a0001 celsius=25.0000 resolution=9\n",
              f"w1 temp SLAVE: {r.returncode} {r.stdout!r} {r.stderr!r}")
        # Every DS18B20 found: the good one prints, the corrupt one fails the command with a CRC error.
        r = run(cnctl, "w1", "temp", "--to", port, "--json")
        check(r.returncode == 1, f"w1 temp with a CRC error: exit {r.returncode}")
        check([(json.loads(l)["millicelsius"], json.loads(l)["celsius"]) for l in r.stdout.splitlines()] == [(25000, 25.0)],
              f"w1 temp --json {r.stdout!r}")
        check("28-0000000a0002" in r.stderr and "CRC" in r.stderr, f"w1 temp names the CRC error: {r.stderr!r}")
        r = run(cnctl, "w1", "temp", "28-0000000a0009", "--to", port)
        check(r.returncode == 1 and "no such device" in r.stderr, f"w1 temp of a missing slave: {r.stderr!r}")
        r = run(cnctl, "w1", "read", "28-0000000a0001", "9", "--to", port)
        # The scratchpad after the conversions above: 25 °C, then its other bytes.
        check(r.returncode == 0 and r.stdout.startswith("data=90014b461f") and len(r.stdout) == 5 + 18 + 1,
              f"w1 read: {r.stdout!r} {r.stderr!r}")
    finally:
        stop.set()
        t.join()
    # Nobody answers at a port that exists: a timeout, exit 3, within about --timeout.
    silent = peer_socket()
    t0 = time.monotonic()
    r = run(cnctl, "w1", "masters", "--to", str(silent.getsockname()[0]), "--timeout", "300")
    check(r.returncode == 3 and "no answer within 300 ms" in r.stderr and time.monotonic() - t0 < 5,
          f"w1 masters from a silent peer: {r.returncode} {r.stderr!r}")
    # SIGINT while waiting: exit 0 at once, nothing on stderr.
    for cmd in (["masters"], ["temp"]):
        p = start(cnctl, "w1", *cmd, "--to", str(silent.getsockname()[0]), "--timeout", "5000")
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=5)
        check(p.returncode == 0 and out == "" and err == "", f"w1 {cmd[0]} interrupted: {p.returncode} {out!r} {err!r}")


def proc_selection(cnctl):
    """--pid (with --descendants following new children live), --cgroup,
    --container: only those processes' events."""
    # A parent that starts a child, which starts a grandchild, after cnctl listens.
    script = "sleep 0.6; sh -c 'sleep 0.2; exit 4'; exit 5"
    parent = subprocess.Popen(["sh", "-c", "read x; " + script], stdin=subprocess.PIPE)
    try:
        p = start_ready(cnctl, "proc", "--pid", str(parent.pid), "--descendants", "--json", group=CN_IDX_PROC)
        finish = drain(p)
        with Spawner():  # unrelated processes that must not show
            parent.stdin.write(b"go\n")
            parent.stdin.close()
            parent.wait(timeout=10)
            time.sleep(0.3)
        p.send_signal(signal.SIGINT)
        out, err = finish()
    finally:
        if parent.poll() is None:
            parent.kill()
    check(p.returncode == 0, f"proc --pid --descendants: exit {p.returncode} {err!r}")
    events = [json.loads(l) for l in out.splitlines()]
    tgids = {e["process"]["pid"] for e in events if e.get("process")}
    forks = [e for e in events if e["type"] == "fork"]
    exits = [e for e in events if e["type"] == "exit"]
    check(parent.pid in tgids, f"--pid shows the process itself: {sorted(tgids)}")
    # The subtree only: every shown process descends from the parent.
    family = {parent.pid} | {e["child_tgid"] for e in forks}
    check(tgids <= family, f"--descendants shows only the subtree: {sorted(tgids - family)} are not in it")
    check(len(forks) >= 2, f"--descendants follows children and grandchildren born later: {len(forks)} forks")
    statuses = sorted(e.get("status") for e in exits if e["process"] and e["process"]["pid"] in family)
    check(4 in statuses and 5 in statuses, f"exits of the grandchild (4) and the parent (5): {statuses}")
    # Without --descendants: the process's own events only.
    parent = subprocess.Popen(["sh", "-c", "read x; sh -c 'exit 3'; exit 6"], stdin=subprocess.PIPE)
    p = start_ready(cnctl, "proc", "--pid", str(parent.pid), group=CN_IDX_PROC)
    finish = drain(p)
    parent.stdin.write(b"go\n")
    parent.stdin.close()
    parent.wait(timeout=10)
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    out, err = finish()
    lines = out.splitlines()
    mine = [l for l in lines if f" {parent.pid} " in l]
    check(p.returncode == 0 and lines and len(mine) == len(lines),
          f"proc --pid: only its lines: {lines!r} {err!r}")
    check(any(f" exit {parent.pid} " in l and "status=6" in l for l in lines), f"proc --pid: its exit: {lines!r}")
    # A pid that does not exist: exit 1, one line.
    r = run(cnctl, "proc", "--pid", "2147483000")
    check(r.returncode == 1 and r.stderr == "cnctl: proc --pid 2147483000: no such process\n",
          f"proc --pid nonexistent: {r.returncode} {r.stderr!r}")
    # --cgroup and --container: a child moved into a cgroup named like a docker scope.
    root = next((d for d in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup")
                 if os.path.exists(d + "/cgroup.procs") and not os.path.exists(d + "/unified")), None)
    if root is None:
        print("proc_selection: no cgroup v2 hierarchy: --cgroup/--container not tested", flush=True)
        return
    cid = "feedface" * 8
    rel = f"/cnasio-cnctl-{os.getpid()}.slice/docker-{cid}.scope"
    os.makedirs(root + rel)
    try:
        for args in (["--cgroup", rel], ["--cgroup", os.path.dirname(rel)], ["--container", cid[:12]],
                     ["--container", cid]):
            child = subprocess.Popen(["sh", "-c", "read x; exec sh -c 'exit 9'"], stdin=subprocess.PIPE)
            with open(root + rel + "/cgroup.procs", "w") as f:
                f.write(str(child.pid))
            p = start_ready(cnctl, "proc", *args, "--json", "--count", "2", group=CN_IDX_PROC)
            with Spawner():
                child.stdin.write(b"go\n")
                child.stdin.close()
                child.wait(timeout=10)
                try:
                    out, err = p.communicate(timeout=10)
                except subprocess.TimeoutExpired:  # the child's events were not shown
                    p.kill()
                    out, err = p.communicate()
            events = [json.loads(l) for l in out.splitlines()]
            check(p.returncode == 0 and [e["type"] for e in events] == ["exec", "exit"],
                  f"proc {args}: exec and exit of the child: {out!r} {err!r}")
            for e in events:
                pr = e.get("process") or {}
                check(pr.get("pid") == child.pid and pr["cgroup"]["value"] == rel
                      and pr["container"]["value"] == {"runtime": "docker", "id": cid, "pod": ""},
                      f"proc {args}: the child in its cgroup and container: {e!r}")
    finally:
        os.rmdir(root + rel)
        os.rmdir(root + os.path.dirname(rel))


def proc_enriched_json(cnctl):
    """--json carries every enriched field with its provenance."""
    p = start_ready(cnctl, "proc", "--json", group=CN_IDX_PROC)
    finish = drain(p)
    child = subprocess.Popen(["/bin/sh", "-c", "sleep 0.3; exit 2", "arg one"])
    child.wait()
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    out, err = finish()
    check(p.returncode == 0, f"proc --json: exit {p.returncode} {err!r}")
    events = [json.loads(l) for l in out.splitlines()]
    fields = {"pid", "parent", "live_parent", "start_ticks", "fork_ns", "ruid", "euid", "rgid", "egid", "comm",
              "exe", "argv", "cgroup", "container", "nspid", "threads", "execs", "exited", "wait_status",
              "lifetime_ns"}
    sources = {"event", "proc", "gone", "none"}
    mine = [e for e in events if (e.get("process") or {}).get("pid") == child.pid]
    check(len(mine) >= 3, f"fork, exec, exit of the child: {[e['type'] for e in mine]}")
    for e in mine:
        pr = e["process"]
        check(set(pr) == fields, f"every field: {sorted(set(pr) ^ fields)}")
        for k, v in pr.items():
            if isinstance(v, dict):
                check(set(v) == {"value", "from"} and v["from"] in sources, f"{k} with its provenance: {v!r}")
    fork = next((e for e in mine if e["type"] == "fork"), None)
    check(fork is not None and fork["process"]["parent"] == {"value": os.getpid(), "from": "event"}
          and fork["parent_process"]["pid"] == os.getpid(), f"fork: parent from the event: {fork!r}")
    ex = next((e for e in mine if e["type"] == "exec"), None)
    check(ex is not None and ex["process"]["argv"] == {"value": ["/bin/sh", "-c", "sleep 0.3; exit 2", "arg one"],
                                                        "from": "proc"}, f"exec: argv from /proc: {ex!r}")
    end = next((e for e in mine if e["type"] == "exit" and e["pid"] == child.pid), None)
    check(end is not None and end["process"]["wait_status"] == {"value": 2 << 8, "from": "event"}
          and end["process"]["lifetime_ns"]["from"] == "event" and end["process"]["exited"] is True,
          f"exit: status and lifetime from the event: {end!r}")


def proc_stats(cnctl):
    """--stats: a summary after the events, on --count and on SIGINT."""
    with Spawner():
        r = run(cnctl, "proc", "--stats", "--count", "30")
    lines = r.stdout.splitlines()
    stats = [l for l in lines if l.startswith("stats: ")]
    check(r.returncode == 0 and len(lines) - len(stats) == 30, f"proc --stats --count 30: {r.returncode} {r.stderr!r}")
    check(stats and stats[0].startswith("stats: events 30 ") and "fork=" in stats[0] and "exit=" in stats[0],
          f"stats: counts by type: {stats!r}")
    check(any(l.startswith("stats: lost 0 (overruns 0") for l in stats), f"stats: lost: {stats!r}")
    check(any(l.startswith("stats: enrichment skipped ") and " exec command lines " in l for l in stats),
          f"stats: enrichment: {stats!r}")
    # (the busiest forker is this script unless the machine is busier: any forker line)
    check(any(re.match(r"stats: forker \d+ forks=\d+ ", l) for l in stats), f"stats: the busiest forkers: {stats!r}")
    # Execs only (the machine's other processes may fork without exec).
    with Spawner():
        r = run(cnctl, "proc", "--stats", "--filter", "exec", "--count", "5")
    stats = [l for l in r.stdout.splitlines() if l.startswith("stats: ")]
    check(r.returncode == 0 and stats[:1] == ["stats: events 5 exec=5"], f"stats with --filter exec: {stats!r}")
    check(any(l.startswith("stats: execer ") and " execs=" in l for l in stats), f"stats: execers: {stats!r}")
    check(any(re.match(r"stats: enrichment skipped \d+, exec command lines [1-5] of 5$", l) for l in stats),
          f"stats: exec command lines: {stats!r}")
    # SIGINT: the summary still comes; JSON: one object.
    p = start_ready(cnctl, "proc", "--stats", "--json", group=CN_IDX_PROC)
    finish = drain(p)
    with Spawner():
        time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    out, err = finish()
    last = json.loads(out.splitlines()[-1]) if out else {}
    s = last.get("stats", {})
    shown = len(out.splitlines()) - 1
    check(p.returncode == 0 and sum(s.get("events", {}).values()) == shown and shown > 0,
          f"proc --stats --json after SIGINT: {p.returncode} {s!r} for {shown} events")
    check(s.get("execs", 0) >= s.get("execs_with_cmdline", -1) >= 1 and s.get("lost") == 0
          and isinstance(s.get("forkers"), list) and isinstance(s.get("execers"), list), f"stats JSON: {s!r}")
    with open("/dev/full", "w") as full:
        with Spawner():
            r = run(cnctl, "proc", "--stats", "--count", "2", stdout=full)
    check(r.returncode == 1 and "No space left on device" in r.stderr, f"proc --stats > /dev/full: {r.returncode}")


def tree_command(cnctl):
    """cnctl tree [PID]: the live processes under their recorded parents."""
    holder = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait"])
    try:
        deadline = time.monotonic() + 5
        kids = []
        while len(kids) < 2 and time.monotonic() < deadline:
            with open(f"/proc/{holder.pid}/task/{holder.pid}/children") as f:
                kids = [int(x) for x in f.read().split()]
            time.sleep(0.05)
        r = run(cnctl, "tree", str(holder.pid))
        lines = r.stdout.splitlines()
        check(r.returncode == 0 and lines[:1] == [f"{holder.pid} sh -c sleep 30 & sleep 30 & wait"]
              and sorted(lines[1:]) == sorted(f"  {k} sleep 30" for k in kids),
              f"tree PID: {r.returncode} {lines!r} (children {kids})")
        r = run(cnctl, "tree")
        lines = r.stdout.splitlines()
        me = [l for l in lines if l.lstrip().startswith(f"{holder.pid} ")]
        check(r.returncode == 0 and len(me) == 1, f"tree: the holder once: {me!r}")
        if me:
            i = lines.index(me[0])
            depth = len(me[0]) - len(me[0].lstrip())
            below = [l for l in lines[i + 1:i + 3]]
            check(all(len(l) - len(l.lstrip()) == depth + 2 for l in below), f"tree: children indented: {below!r}")
        r = run(cnctl, "tree", str(holder.pid), "--json")
        rows = [json.loads(l) for l in r.stdout.splitlines()]
        check(r.returncode == 0 and [x["depth"] for x in rows] == [0, 1, 1] and rows[0]["pid"] == holder.pid
              and all(x["parent"] == {"value": holder.pid, "from": "proc"} for x in rows[1:]),
              f"tree --json: {rows!r}")
    finally:
        holder.kill()
        holder.wait()
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except ProcessLookupError:
                pass
    r = run(cnctl, "tree", "2147483000")
    check(r.returncode == 1 and r.stderr == "cnctl: tree: no such process: 2147483000\n",
          f"tree nonexistent: {r.returncode} {r.stderr!r}")


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("SKIP: cnctl tests need root (CAP_NET_ADMIN)", file=sys.stderr)
        return 77
    cnctl = sys.argv[1]
    n = usage_errors(cnctl)
    print(f"usage errors: {n} cases", flush=True)
    for f in (help_and_version, proc_json, proc_signal_and_loss, write_errors, forged_multicast, listen_group, request_and_send,
              registry, runtime_errors, namespaces, wait_command, proc_view_hostile_argv, w1_commands, proc_selection,
              proc_enriched_json, proc_stats, tree_command):
        f(cnctl)
        print(f"{f.__name__}: done", flush=True)
    print(f"{checks} checks, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
