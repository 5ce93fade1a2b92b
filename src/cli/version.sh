#!/bin/sh
# usage: version.sh SRCDIR VERSION
# Print VERSION with the git revision the source tree SRCDIR is at, "0.1.0 (git 1a2b3c4)" ("-dirty"
# after the hash with local changes), for `ligero --version`. Fails when SRCDIR is not the top of
# a git checkout (a release tarball, or an export unpacked inside some other repository): meson's
# vcs_tag then records VERSION alone.
top=$(git -C "$1" rev-parse --show-toplevel 2>/dev/null) || exit 1
[ "$(cd "$top" && pwd -P)" = "$(cd "$1" && pwd -P)" ] || exit 1
rev=$(git -C "$1" describe --always --dirty --abbrev=7 --exclude='*') || exit 1
echo "$2 (git $rev)"
