#!/usr/bin/env python3
"""Compiles every ```cpp block of README.md and docs/*.md.

    doc_snippets.py SRCDIR WORKDIR -- COMPILER [ARGS...]

(docs/design.md, the maintainers' API sketch, is left out.) The first line of
a block says what the block is (the convention is also
described in docs/README.md, for people writing docs):

    // snippet: program      a whole program: compiled and linked
    // snippet: tu           a whole translation unit (includes, declarations,
                             functions, no main): compiled
    // snippet: function     statements: the body of
                                 void snippet(boost::asio::io_context& io)
    // snippet: coroutine    statements with co_await: the body of
                                 boost::asio::awaitable<void> snippet(boost::asio::io_context& io)

Function and coroutine bodies see <cnasio/cnasio.hpp>, <cnasio/client.hpp>,
<cnasio/proc/event.hpp>, <cnasio/proc/filter.hpp>, <cnasio/proc/loss.hpp>,
<cnasio/proc/listener.hpp>, <boost/asio.hpp>, <array>, <chrono>, <cstdio>,
<span>, <string>, `namespace asio = boost::asio;` and
`using namespace std::chrono_literals;`. Every block may include
"cnasio_echo_proto.h" (examples/kernel/, the example module's protocol).
A ```cpp block without one of these first lines fails the test, so nothing is
left out by accident. Blocks in other languages (```sh, ```meson, ...) are not
compiled.

Before the real blocks, a deliberately broken one must fail to compile: the
harness proves it can see a failure.
"""

import concurrent.futures
import os
import pathlib
import re
import shutil
import subprocess
import sys

PRELUDE = """\
#include <cnasio/cnasio.hpp>
#include <cnasio/client.hpp>
#include <cnasio/proc/event.hpp>
#include <cnasio/proc/filter.hpp>
#include <cnasio/proc/loss.hpp>
#include <cnasio/proc/listener.hpp>
#include <boost/asio.hpp>
#include <array>
#include <chrono>
#include <cstdio>
#include <span>
#include <string>
namespace asio = boost::asio;
using namespace std::chrono_literals;
"""

# Function and coroutine bodies share the prelude, so it is compiled once as a
# precompiled header (prelude.hpp.gch beside prelude.hpp in WORKDIR).
WRAPPERS = {
    "function": ('#include "prelude.hpp"\nvoid snippet([[maybe_unused]] asio::io_context& io) {\n', "\n}\n"),
    "coroutine": ('#include "prelude.hpp"\nasio::awaitable<void> snippet([[maybe_unused]] asio::io_context& io) {\n',
                  # co_return at column 0, like the body, so that -Wmisleading-indentation
                  # does not take it for part of a last unbraced loop
                  "\nco_return;\n}\n"),
}

FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
MARKER = re.compile(r"^\s*//\s*snippet:\s*(\w+)\s*$")


def blocks(path):
    """Yields (first line number, language, text) for each fenced block."""
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        lang, start, body = m.group(2), i + 2, []
        i += 1
        while i < len(lines) and not FENCE.match(lines[i]):
            body.append(lines[i])
            i += 1
        i += 1  # closing fence
        yield start, lang, "\n".join(body) + "\n"


def source_for(kind, text):
    if kind in ("program", "tu"):
        return text
    head, tail = WRAPPERS[kind]
    return head + text + tail


def compile_one(job):
    name, kind, source, workdir, cmd = job
    src = workdir / (name + ".cpp")
    src.write_text(source)
    if kind == "program":
        args = cmd + [str(src), "-o", str(workdir / name), "-pthread"]
    else:
        args = cmd + ["-fsyntax-only", str(src)]
    r = subprocess.run(args, capture_output=True, text=True)
    return name, r.returncode, r.stdout + r.stderr


def main():
    sep = sys.argv.index("--")
    srcdir, workdir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    compiler = sys.argv[sep + 1:]
    shutil.rmtree(workdir, ignore_errors=True)  # no stale snippets from an earlier run
    workdir.mkdir(parents=True)
    cmd = compiler + ["-std=c++20", "-Wall", "-Wextra", "-Wpedantic", "-Werror",
                      # g++ 12 false positive on Asio's coroutine frames (GCC PR 109224)
                      "-Wno-mismatched-new-delete",
                      "-I" + str(srcdir / "include"),
                      # the example module's wire protocol, "cnasio_echo_proto.h"
                      "-I" + str(srcdir / "examples" / "kernel")]

    (workdir / "prelude.hpp").write_text(PRELUDE)
    r = subprocess.run(cmd + ["-x", "c++-header", str(workdir / "prelude.hpp"), "-o", str(workdir / "prelude.hpp.gch")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("FAIL: the snippet prelude does not compile:\n" + r.stdout + r.stderr)

    # The harness must be able to fail.
    name, rc, _ = compile_one(("selfcheck_broken", "program", "int main() { int x = ; }\n", workdir, cmd))
    if rc == 0:
        sys.exit("FAIL: a broken snippet compiled: the harness cannot detect errors")

    # docs/design.md is the maintainers' working notes (an API sketch written
    # ahead of the code), not user documentation: it is not compiled.
    docs = [srcdir / "README.md"] + sorted(p for p in (srcdir / "docs").glob("*.md") if p.name != "design.md")
    jobs, problems = [], []
    for doc in docs:
        if not doc.exists():
            problems.append(f"{doc}: missing")
            continue
        rel = doc.relative_to(srcdir)
        for line, lang, text in blocks(doc):
            if lang not in ("cpp", "c++"):
                continue
            first = text.splitlines()[0] if text.strip() else ""
            m = MARKER.match(first)
            if not m or m.group(1) not in ("program", "tu", "function", "coroutine"):
                problems.append(f"{rel}:{line}: a cpp block must start with '// snippet: program|tu|function|coroutine'")
                continue
            name = re.sub(r"[^A-Za-z0-9]+", "_", str(rel)) + f"_{line}"
            jobs.append((name, m.group(1), source_for(m.group(1), text), workdir, cmd))

    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(compile_one, jobs))
    failed = [(n, out) for n, rc, out in results if rc != 0]
    for n, out in failed:
        print(f"---- {n}: does not compile\n{out}")
    for p in problems:
        print("----", p)
    by_doc = {}
    for name, kind, *_ in jobs:
        doc = name.rsplit("_", 1)[0]
        by_doc[doc] = by_doc.get(doc, 0) + 1
    print("snippets per document:", ", ".join(f"{d}: {n}" for d, n in sorted(by_doc.items())))
    print(f"{len(jobs)} snippets, {len(failed)} failed, {len(problems)} problems")
    if failed or problems or not jobs:
        sys.exit(1)


if __name__ == "__main__":
    main()
