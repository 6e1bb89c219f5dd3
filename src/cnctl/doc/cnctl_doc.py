#!/usr/bin/env python3
"""cnctl's manual page and bash completion, generated from the binary's --help.

    cnctl_doc.py man  CNCTL EXTRA VERSION OUT   cnctl(1): every command and option as
                                                `cnctl [COMMAND] --help` prints them, plus the
                                                examples and notes of EXTRA (cnctl.1.extra)
    cnctl_doc.py bash CNCTL EVENT_HPP OUT       bash completion: the commands and options of
                                                --help, event-type names from `cnctl proc --help`
                                                (EVENT_HPP: the table's header, a build dependency)
    cnctl_doc.py parse CNCTL                    the parsed help as JSON (for tests)

The help is the single source: a command or option added to cnctl appears in both
outputs at the next build, and the packaging suite checks that nothing was lost.
"""
import json
import os
import re
import subprocess
import sys
import time

# ---- reading --help ----------------------------------------------------------------

ENTRY = re.compile(r'^  (\S(?:.*?\S)?)(?: {2,}(\S.*))?$')  # "  --count N      exit after N events"
SECTION = re.compile(r'^([A-Z][A-Za-z ]*):$')               # "Options:"


def run_help(cnctl, command=None):
    args = [cnctl] + ([command] if command else []) + ['--help']
    env = dict(os.environ, LC_ALL='C')
    p = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    if p.returncode != 0 or not p.stdout.startswith('usage: '):
        sys.exit(f'cnctl_doc: {" ".join(args)} failed (status {p.returncode}): {p.stderr.strip()}')
    return p.stdout


def parse_help(text):
    """{'usage': str, 'description': str, 'sections': {name: [entry]}, 'footer': [paragraph]};
    an entry is {'term', 'names', 'value', 'description'}."""
    paragraphs = [p.split('\n') for p in re.split(r'\n\s*\n', text.strip('\n'))]
    usage_lines = paragraphs.pop(0)
    usage = ' '.join(line.strip() for line in usage_lines)
    assert usage.startswith('usage: '), usage
    result = {'usage': usage[len('usage: '):], 'description': '', 'sections': {}, 'footer': []}
    seen_section = False
    for lines in paragraphs:
        m = SECTION.match(lines[0])
        if m:
            seen_section = True
            result['sections'][m.group(1)] = parse_entries(lines[1:])
        elif not seen_section and not result['description']:
            result['description'] = ' '.join(line.strip() for line in lines)
        else:
            result['footer'].append([line.strip() for line in lines])
    return result


def parse_entries(lines):
    entries = []
    for line in lines:
        m = ENTRY.match(line)
        if m:
            term, desc = m.group(1), m.group(2) or ''
            first, _, value = term.partition(' ')
            entries.append({'term': term, 'names': first.split(','), 'value': value or None,
                            'description': desc})
        elif line.startswith('   ') and entries:  # a description's next line
            d = entries[-1]['description']
            entries[-1]['description'] = (d + ' ' if d else '') + line.strip()
        else:
            sys.exit(f'cnctl_doc: cannot read this help line: {line!r}')
    return entries


def read_cnctl(cnctl):
    top = parse_help(run_help(cnctl))
    commands = top['sections'].get('Commands', [])
    if not commands:
        sys.exit('cnctl_doc: cnctl --help lists no commands')
    subs = {c['names'][0]: parse_help(run_help(cnctl, c['names'][0])) for c in commands}
    return top, commands, subs


def exit_statuses(footer):
    """[(status, meaning)] from the footer line "exit status: 0 ok, 1 runtime error, ..."."""
    for para in footer:
        text = ' '.join(para)
        if text.startswith('exit status: '):
            return re.findall(r'(\d+) ([^,]+)', text[len('exit status: '):])
    return []


def without_exit_status(footer):
    return [p for p in footer if not ' '.join(p).startswith('exit status: ')]


# ---- roff --------------------------------------------------------------------------


def roff(text):
    """Text for a roff line: backslashes escaped, option dashes as \\- , no leading dot."""
    text = text.replace('\\', '\\e')
    text = re.sub(r'(?<![\w\\])-', r'\\-', text)  # "--json" but not "comma-separated"
    if text.startswith(('.', "'")):
        text = '\\&' + text
    return text


def options_roff(entries):
    out = []
    for e in entries:
        names = ', '.join(f'\\fB{roff(n)}\\fR' for n in e['names'])
        value = f' \\fI{roff(e["value"])}\\fR' if e['value'] else ''
        out += ['.TP', names + value, roff(e['description'])]
    return out


def paragraphs_roff(paragraphs):
    out = []
    for lines in paragraphs:
        out += ['.PP'] + [roff(line) for line in lines]
    return out


def read_extra(path):
    """Sections of cnctl.1.extra: {'EXAMPLES': [lines], ...}; '#' lines are comments."""
    sections, name = {}, None
    with open(path, encoding='utf-8') as f:
        for line in f.read().split('\n'):
            if line.startswith('#'):
                continue
            m = re.match(r'^\[([A-Z ]+)\]$', line)
            if m:
                name = m.group(1)
                sections[name] = []
            elif name:
                sections[name].append(line)
    return {k: '\n'.join(v).strip('\n').split('\n') for k, v in sections.items()}


def extra_roff(lines):
    """Blank lines separate paragraphs; "$ command" lines are shown as commands, unfilled."""
    out, in_command = ([] if not lines or not lines[0].strip() else ['.PP']), False
    for line in lines:
        is_command = line.startswith('$ ')
        if in_command and not is_command:
            out += ['.fi', '.RE']
            in_command = False
        if is_command:
            if not in_command:
                out += ['.RS 4', '.nf']
                in_command = True
            out.append('\\fB' + roff(line[2:]) + '\\fR')
        elif not line.strip():
            out.append('.PP')
        else:
            out.append(roff(line))
    if in_command:
        out += ['.fi', '.RE']
    return out


def synopsis(command, usage):
    """The synopsis line of a command from its usage text ("cnctl proc [--filter TYPES] ...");
    no line break inside [...]."""
    rest = usage[len(command):].strip() if usage.startswith(command) else usage
    rest = re.sub(r'\[[^]]*\]', lambda m: m.group(0).replace(' ', '\x00'), rest)
    return f'\\fB{roff(command)}\\fR {roff(rest)}'.rstrip().replace('\x00', '\\ ')


def synopsis_block(lines):
    """Filled lines, left-aligned, unhyphenated, continued 4 columns further in."""
    out = ['.nh', '.ad l', '.in +4n']
    for line in lines:
        out += ['.ti -4n', line, '.br']
    return out + ['.in -4n', '.ad', '.hy']


def man_page(cnctl, extra_path, version):
    top, commands, subs = read_cnctl(cnctl)
    extra = read_extra(extra_path)
    epoch = int(os.environ.get('SOURCE_DATE_EPOCH', '0')) or None
    date = time.strftime('%Y-%m-%d', time.gmtime(epoch)) if epoch else ''
    summary = top['description'].rstrip('.')
    if summary[1:2].islower():  # "The Linux ..." -> "the Linux ..."
        summary = summary[0].lower() + summary[1:]
    out = ['.\\" Generated by src/cnctl/doc/cnctl_doc.py from cnctl --help and cnctl.1.extra; do not edit.',
           f'.TH CNCTL 1 "{date}" "cnasio {version}" "User Commands"',
           '.SH NAME', f'cnctl \\- {roff(summary)}',
           '.SH SYNOPSIS']
    out += synopsis_block([synopsis('cnctl', top['usage'])] +
                          [synopsis('cnctl ' + c['names'][0], subs[c['names'][0]]['usage']) for c in commands])
    out += ['.SH DESCRIPTION', roff(top['description'])]
    out += extra_roff(extra.get('DESCRIPTION', []))
    out += paragraphs_roff(without_exit_status(top['footer']))
    out += ['.SH OPTIONS'] + options_roff(top['sections'].get('Options', []))
    out += ['.SH COMMANDS']
    for c in commands:
        name = c['names'][0]
        sub = subs[name]
        out += [f'.SS "cnctl {roff(name)}"'] + synopsis_block([synopsis('cnctl ' + name, sub['usage'])])
        out += ['.PP', roff(sub['description'] or c['description'])]
        out += paragraphs_roff(without_exit_status(sub['footer']))
        for section, entries in sub['sections'].items():
            out += ['.PP', f'\\fI{roff(section)}:\\fR', '.RS 4'] + options_roff(entries) + ['.RE']
    statuses = exit_statuses(top['footer'])
    if not statuses:
        sys.exit('cnctl_doc: cnctl --help states no exit status')
    out += ['.SH EXIT STATUS']
    for status, meaning in statuses:
        out += ['.TP', f'\\fB{status}\\fR', roff(meaning)]
    out += extra_roff(extra.get('EXIT STATUS', []))
    for section in [s for s in extra if s not in ('DESCRIPTION', 'EXIT STATUS')]:
        out += [f'.SH {section}'] + extra_roff(extra[section])
    return '\n'.join(out) + '\n'


# ---- bash completion ---------------------------------------------------------------

VALUE_COMPLETION = {'TYPES': 'events', 'PATH': 'files'}  # by the option's value name


def event_names(cnctl):
    """The event-type names `cnctl proc --filter` takes, as its help lists them
    (cnctl prints the library's table of event types)."""
    text = ' '.join(run_help(cnctl, 'proc').split())
    listed = re.search(r'event types to show: (.*?), or all', text)
    if not listed:
        sys.exit('cnctl_doc: cnctl proc --help lists no event types for --filter')
    return [n.strip() for n in listed.group(1).split(',')] + ['all']


def bash_completion(cnctl, event_hpp):
    top, commands, subs = read_cnctl(cnctl)
    names = [c['names'][0] for c in commands]

    def words(entries):
        return ' '.join(n for e in entries for n in e['names'] if n.startswith('-'))

    def valued(entries):
        return [(n, e['value']) for e in entries if e['value'] for n in e['names'] if n.startswith('-')]

    lines = ['# bash completion for cnctl. Generated by src/cnctl/doc/cnctl_doc.py from cnctl --help',
             '# and the event-type names cnctl proc --help lists; do not edit.',
             '_cnctl() {',
             '    local cur=${COMP_WORDS[COMP_CWORD]} prev="" cmd="" i',
             '    [ "$COMP_CWORD" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD-1]}',
             '    # --opt=value arrives as "--opt" "=" "value" (= is a word break)',
             '    if [ "$cur" = "=" ]; then prev=${COMP_WORDS[COMP_CWORD-1]}; cur=""',
             '    elif [ "$prev" = "=" ] && [ "$COMP_CWORD" -gt 1 ]; then prev=${COMP_WORDS[COMP_CWORD-2]}; fi',
             f'    local commands="{" ".join(names)}"',
             f'    local events="{" ".join(event_names(cnctl))}"',
             '    for ((i = 1; i < COMP_CWORD; i++)); do',
             '        case " $commands " in *" ${COMP_WORDS[i]} "*) cmd=${COMP_WORDS[i]}; break ;; esac',
             '    done',
             '    local options value=""',
             '    case $cmd in']
    top_opts = top['sections'].get('Options', [])
    cases = [('""', words(top_opts), valued(top_opts))]
    for n in names:
        entries = [e for s in subs[n]['sections'].values() for e in s]
        cases.append((f'"{n}"', words(entries), valued(entries)))
    for pattern, opts, vals in cases:
        lines.append(f'        {pattern})')
        lines.append(f'            options="{opts}"')
        if vals:
            lines.append('            case $prev in')
            for opt, value in vals:
                kind = VALUE_COMPLETION.get(value, 'none')
                lines.append(f'                {opt}) value={kind} ;;')
            lines.append('            esac ;;')
        else:
            lines[-1] += ' ;;'
    lines += ['    esac',
              '    case $value in',
              '        events)  # a comma-separated list: complete its last element',
              '            local head=""',
              '            case $cur in *,*) head=${cur%,*},; cur=${cur##*,} ;; esac',
              '            COMPREPLY=($(compgen -P "$head" -W "$events" -- "$cur"))',
              '            return ;;',
              '        files) compopt -o filenames 2>/dev/null || :; COMPREPLY=($(compgen -f -- "$cur")); return ;;',
              '        none) COMPREPLY=(); return ;;',
              '    esac',
              '    if [[ $cur == -* ]]; then',
              '        COMPREPLY=($(compgen -W "$options" -- "$cur"))',
              '    elif [ -z "$cmd" ]; then',
              '        COMPREPLY=($(compgen -W "$commands" -- "$cur"))',
              '    else',
              '        COMPREPLY=()',
              '    fi',
              '}',
              'complete -F _cnctl cnctl']
    return '\n'.join(lines) + '\n'


# ---- main ----------------------------------------------------------------------------


def write(path, text):
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


def main(argv):
    if len(argv) == 6 and argv[1] == 'man':
        write(argv[5], man_page(argv[2], argv[3], argv[4]))
    elif len(argv) == 5 and argv[1] == 'bash':
        write(argv[4], bash_completion(argv[2], argv[3]))
    elif len(argv) == 3 and argv[1] == 'parse':
        top, commands, subs = read_cnctl(argv[2])
        print(json.dumps({'top': top, 'commands': subs}, indent=1))
    else:
        sys.exit(__doc__)


if __name__ == '__main__':
    main(sys.argv)
