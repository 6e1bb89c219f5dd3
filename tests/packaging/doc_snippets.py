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

Function and coroutine bodies see <cnasio/cnasio.hpp>, <boost/asio.hpp>,
`namespace asio = boost::asio;` and `using namespace std::chrono_literals;`.
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
import subprocess
import sys

PRELUDE = """\
#include <cnasio/cnasio.hpp>
#include <boost/asio.hpp>
#include <chrono>
namespace asio = boost::asio;
using namespace std::chrono_literals;
"""

WRAPPERS = {
    "function": (PRELUDE + "void snippet([[maybe_unused]] asio::io_context& io) {\n", "\n}\n"),
    "coroutine": (PRELUDE + "asio::awaitable<void> snippet([[maybe_unused]] asio::io_context& io) {\n",
                  "\n    co_return;\n}\n"),
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
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = compiler + ["-std=c++20", "-Wall", "-Wextra", "-Wpedantic", "-Werror",
                      # g++ 12 false positive on Asio's coroutine frames (GCC PR 109224)
                      "-Wno-mismatched-new-delete",
                      "-I" + str(srcdir / "include")]

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
