#!/bin/bash
# completion.sh CNCTL COMPLETION_FILE - the bash completion for cnctl, driven as
# bash drives it (COMP_WORDS, COMP_CWORD, then the function `complete -p`
# names), against what CNCTL --help says: its commands, each command's options,
# and the event types of `proc --filter`, each of which cnctl must accept.
set -eu
cnctl=$1 file=$2
fail() { echo "FAIL: $*"; failed=1; }
failed=0

# shellcheck source=/dev/null
. "$file"
func=$(complete -p cnctl 2>/dev/null | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
[ -n "$func" ] || { echo "FAIL: $file registers no completion function for cnctl"; exit 1; }

sorted() { printf '%s\n' "$@" | sed '/^$/d' | sort -u | tr '\n' ' ' | sed 's/ $//'; }
# complete EXPECTED WORD... : completing the last WORD gives exactly EXPECTED (any order).
complete_check() {
    local expected
    expected=$(sorted $1)
    shift
    COMP_WORDS=("$@")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMP_LINE="${COMP_WORDS[*]}"
    COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    "$func" cnctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}" 2>/dev/null
    local got
    got=$(sorted "${COMPREPLY[@]}")
    [ "$got" = "$expected" ] || fail "'${COMP_LINE}<TAB>': got '$got', expected '$expected'"
}

# What --help says.
commands=$("$cnctl" --help | sed -n '/^Commands:/,/^$/s/^  \([^ ]*\).*/\1/p')
[ -n "$commands" ] || { echo "FAIL: cnctl --help lists no commands"; exit 1; }
long_options() { "$cnctl" "$@" --help | grep -oE '^  (-[a-z],)?--[a-z][a-z-]*' | sed 's/^ *//; s/,/ /'; }
events=$("$cnctl" proc --help | tr '\n' ' ' | sed -n 's/.*event types to show: \(.*\)(the default).*/\1/p' |
    sed 's/, or / /; s/,/ /g')
[ -n "$events" ] || { echo "FAIL: cnctl proc --help names no event types"; exit 1; }

complete_check "$commands" cnctl ""
complete_check "$(printf '%s\n' $commands | grep '^p' || true)" cnctl p
complete_check "$(long_options)" cnctl -
for c in $commands; do
    complete_check "$(long_options "$c")" cnctl "$c" -
    complete_check "" cnctl "$c" ""          # a positional or nothing: no suggestions
done
complete_check "--cgroup --container --count" cnctl proc --json --c
complete_check "$events" cnctl proc --filter ""
complete_check "$(printf 'fork,%s\n' $events | grep '^fork,ex')" cnctl proc --filter fork,ex
complete_check "exec exit" cnctl proc --filter = ex      # --filter=ex
complete_check "" cnctl proc --count ""                    # a number is expected
complete_check "--timeout --to" cnctl request 14:1 --t
complete_check "/proc/1/ns/net" cnctl proc --netns /proc/1/ns/n
complete_check "/proc/1/ns/net" cnctl listen --group 14 --netns /proc/1/ns/n

# Every event type completed is one cnctl takes: the next option's error is
# reported, not the filter's; a wrong name is the filter's error.
for e in $events; do
    err=$("$cnctl" proc --filter "$e" --count 0 2>&1 >/dev/null || true)
    case $err in *--count*) ;; *) fail "cnctl proc --filter $e: $err" ;; esac
done
err=$("$cnctl" proc --filter forkk --count 0 2>&1 >/dev/null || true)
case $err in *"unknown event type 'forkk'"*) ;; *) fail "cnctl proc --filter forkk: $err" ;; esac

[ $failed -eq 0 ] || exit 1
echo "PASS: completion of $(echo $commands | wc -w) commands, their options, $(echo $events | wc -w) event types"
