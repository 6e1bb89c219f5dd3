#!/bin/bash
# snapshot.sh SRCDIR DEST - a git repository at DEST holding cnasio's source
# as it is in SRCDIR's working tree (uncommitted edits included), for tests
# that consume cnasio the way a user would: from a clone.
#
# Files: everything git tracks, plus untracked files under include/ (a header
# someone is still writing must not break the test in a working tree; in CI,
# a fresh clone, both sets are the same). Outside git: a copy without build*.
set -euo pipefail
src=$1 dest=$2

rm -rf "$dest"
mkdir -p "$dest"
if git -C "$src" rev-parse --show-toplevel >/dev/null 2>&1; then
    { git -C "$src" ls-files -z --cached
      git -C "$src" ls-files -z --others --exclude-standard -- include
    } | (cd "$src" && xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) |
        tar -C "$src" --null -T - -cf - | tar -C "$dest" -xf -
else
    tar -C "$src" --exclude='./build*' -cf - . | tar -C "$dest" -xf -
fi
git -C "$dest" init -q
git -C "$dest" add -A
git -C "$dest" -c user.name=cnasio-test -c user.email=test@localhost commit -q -m snapshot
