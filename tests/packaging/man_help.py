#!/usr/bin/env python3
"""man_help.py CNCTL CNCTL_1 CNASIO_7 WORKDIR -- CXX... : the manual pages against --help.

cnctl.1 is rendered with groff, and every paragraph of `cnctl --help` and of
each `cnctl COMMAND --help` (usage, description, each option with its whole
description, notes) must appear in it, word for word, in the right section:
the top help in OPTIONS/DESCRIPTION, a command's in its own "cnctl COMMAND"
subsection. Every exit status must be in EXIT STATUS, and every example must
use a command and options that --help knows. Both pages must render without
groff warnings (as lintian checks), and the program in cnasio(7)'s EXAMPLES
must compile against include/.
"""
import os
import re
import subprocess
import sys

failures = []


def fail(msg):
    failures.append(msg)
    print('FAIL: ' + msg)


def norm(text):
    text = re.sub(r',(?=-)', ', ', text)  # "-h,--help" is "-h, --help" in the page
    return ' '.join(text.split())


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, env=dict(os.environ, LC_ALL='C.UTF-8'), **kw)


def help_of(cnctl, command=None):
    p = run([cnctl] + ([command] if command else []) + ['--help'])
    if p.returncode != 0:
        sys.exit(f'FAIL: cnctl {command or ""} --help: status {p.returncode}')
    return p.stdout


def blocks(help_text):
    """The help's paragraphs, a section ("Options:" and its entries) being one."""
    paras = [p for p in re.split(r'\n\s*\n', help_text.strip('\n'))]
    paras[0] = paras[0].removeprefix('usage: ')
    return paras


def render(page):
    p = run(['groff', '-man', '-Tascii', '-rLL=250n', '-rHY=0', '-P-cbou', page])
    if p.returncode != 0 or p.stderr:
        fail(f'groff {page}: {p.stderr.strip()}')
    return p.stdout


def sections(rendered):
    """{'NAME': text, ..., 'COMMANDS': text} and {'cnctl proc': text, ...} from a rendered page."""
    top, sub, cur_top, cur_sub = {}, {}, None, None
    for line in rendered.split('\n'):
        if re.match(r'^[A-Z][A-Z ]+$', line):
            cur_top, cur_sub = line.strip(), None
            top[cur_top] = ''
        elif re.match(r'^   \S', line) and cur_top == 'COMMANDS':
            cur_sub = line.strip()
            sub[cur_sub] = ''
        elif cur_top:
            top[cur_top] += line + '\n'
            if cur_sub:
                sub[cur_sub] += line + '\n'
    return top, sub


def lint(page):
    """What lintian's manpage check runs: man --warnings, any output is a warning."""
    env = dict(os.environ, LC_ALL='C.UTF-8', MANROFFSEQ='', MANWIDTH='80')
    p = subprocess.run(['man', '--warnings', '-E', 'UTF-8', '-l', '-Tutf8', '-Z', page],
                       capture_output=True, text=True, env=env)
    if p.returncode != 0 or p.stderr.strip():
        fail(f'man --warnings {os.path.basename(page)}: {p.stderr.strip()}')


def main(argv):
    sep = argv.index('--')
    cnctl, cnctl_1, cnasio_7, work = argv[1:sep]
    cxx = argv[sep + 1:]
    os.makedirs(work, exist_ok=True)
    lint(cnctl_1)
    lint(cnasio_7)

    top_help = help_of(cnctl)
    top, subs = sections(render(cnctl_1))
    for name in ('NAME', 'SYNOPSIS', 'DESCRIPTION', 'OPTIONS', 'COMMANDS', 'EXIT STATUS', 'EXAMPLES', 'SEE ALSO'):
        if name not in top:
            fail(f'cnctl.1 has no {name} section')
    whole = norm(''.join(top.get(s, '') for s in ('SYNOPSIS', 'DESCRIPTION', 'OPTIONS')))
    commands = []
    statuses = set()
    for para in blocks(top_help):
        if para.startswith('Commands:'):
            commands = [line.split()[0] for line in para.split('\n')[1:] if re.match(r'^  \S', line)]
            continue
        if para.startswith('exit status: '):
            statuses.add(norm(para))
            continue
        if para.startswith('Options:'):  # the page's OPTIONS section
            if norm(para.removeprefix('Options:')) not in norm(top.get('OPTIONS', '')):
                fail(f'cnctl --help options not in OPTIONS: {norm(para)[:100]!r}')
        elif norm(para) not in whole:
            fail(f'cnctl --help paragraph not in cnctl.1: {norm(para)[:100]!r}')
    if not commands:
        fail('cnctl --help lists no commands')

    checked = 0
    for command in commands:
        text = subs.get(f'cnctl {command}')
        if text is None:
            fail(f'cnctl.1 has no subsection "cnctl {command}"')
            continue
        for para in blocks(help_of(cnctl, command)):
            if para.startswith('exit status: '):
                statuses.add(norm(para))
            elif norm(para) not in norm(text):
                fail(f'cnctl {command} --help paragraph not in its subsection: {norm(para)[:100]!r}')
            else:
                checked += 1
        if norm(f'cnctl {command} ' + blocks(help_of(cnctl, command))[0].split(' ', 2)[-1]) not in norm(top['SYNOPSIS']):
            fail(f'SYNOPSIS lacks cnctl {command}')
    extra = set(subs) - {f'cnctl {c}' for c in commands}
    if extra:
        fail(f'cnctl.1 documents commands cnctl does not have: {sorted(extra)}')

    exit_section = norm(top.get('EXIT STATUS', ''))
    for line in statuses:
        for status, meaning in re.findall(r'(\d+) ([^,]+)', line.removeprefix('exit status: ')):
            if f'{status} {meaning.strip()}' not in exit_section:
                fail(f'EXIT STATUS lacks "{status} {meaning.strip()}"')

    # Examples: every command line uses a real command and its real options.
    examples = [line.split() for line in top.get('EXAMPLES', '').split('\n') if line.strip().startswith('cnctl ')]
    if not examples:
        fail('cnctl.1 has no example command lines')
    for words in examples:
        if words[1] not in commands:
            fail(f'example uses unknown command: {" ".join(words)}')
            continue
        known = set(re.findall(r'(?<![\w-])(--?[a-z][\w-]*)', help_of(cnctl, words[1])))
        for w in words[2:]:
            if w.startswith('-') and w.split('=')[0] not in known:
                fail(f'example uses an option cnctl {words[1]} does not have: {w}')
    if 'cnasio(7)' not in top.get('SEE ALSO', ''):
        fail('SEE ALSO lacks cnasio(7)')

    # cnasio(7): its sections, and its example program compiles.
    top7, _ = sections(render(cnasio_7))
    for name in ('NAME', 'SYNOPSIS', 'DESCRIPTION', 'FILES', 'EXAMPLES', 'SEE ALSO'):
        if name not in top7:
            fail(f'cnasio.7 has no {name} section')
    with open(cnasio_7, encoding='utf-8') as f:
        source = f.read()
    m = re.search(r'^\.SH EXAMPLES\n.*?^\.nf\n(.*?)^\.fi$', source, re.S | re.M)
    if not m:
        fail('cnasio.7 EXAMPLES has no program')
    else:
        program = m.group(1).replace('\\-', '-').replace('\\e', '\\')
        path = os.path.join(work, 'cnasio7_example.cpp')
        with open(path, 'w', encoding='utf-8') as f:
            f.write(program)
        include = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'include')
        p = run(cxx + ['-std=c++20', '-fsyntax-only', '-Wall', '-Wextra', '-Werror', '-I', include, path])
        if p.returncode != 0:
            fail('cnasio.7 example does not compile:\n' + p.stderr[-2000:])

    if failures:
        print(f'{len(failures)} failure(s)')
        return 1
    print(f'PASS: cnctl.1 has all {len(commands)} commands ({checked} help paragraphs), '
          f'{len(statuses)} exit-status line(s), {len(examples)} examples; cnasio.7 example compiles; no groff warnings')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
