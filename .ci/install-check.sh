#!/usr/bin/env bash
# Install a build into a staging directory, as a package build does, and check what a package
# would ship: everything `meson introspect --installed` promises is there and nothing else, the
# installed binary runs (--version, help), every installed manual page renders without warnings,
# the bash completion parses, and the docs are there. BUILD is installed as it is (not rebuilt).
#
# usage: .ci/install-check.sh DESTDIR BUILD     (DESTDIR must not exist, or be empty)
set -euo pipefail
if [ $# -ne 2 ]; then
	echo "usage: $0 DESTDIR BUILD" >&2
	exit 2
fi
destdir=$1
build=$2
src=$(cd "$(dirname "$0")/.." && pwd)
fail() {
	echo "install-check: $*" >&2
	exit 1
}
if [ -e "$destdir" ] && [ -n "$(ls -A "$destdir")" ]; then
	fail "$destdir is not empty"
fi
mkdir -p "$destdir"
destdir=$(cd "$destdir" && pwd)

meson install -C "$build" --destdir "$destdir" --no-rebuild >"$destdir.log" 2>&1 ||
	{ cat "$destdir.log" >&2; fail "meson install failed"; }

# What meson says it installs (absolute paths under the prefix), one per line.
meson introspect "$build" --installed |
	python3 -c 'import json, sys; print("\n".join(sorted(json.load(sys.stdin).values())))' \
		>"$destdir.expected"
(cd "$destdir" && find . -type f -o -type l | sed 's/^\.//' | sort) >"$destdir.found"
diff -u "$destdir.expected" "$destdir.found" >&2 || fail "installed files differ from meson's list"

# The install directories BUILD was configured with.
prefix='' bindir='' mandir='' datadir=''
eval "$(meson introspect "$build" --buildoptions | python3 -c '
import json, shlex, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
for k in ("prefix", "bindir", "mandir", "datadir"):
    print(f"{k}={shlex.quote(o[k])}")')"
root=$destdir$prefix
bin=$root/$bindir/ligero
[ -x "$bin" ] || fail "no executable at $bin"

version=$("$bin" --version)
[[ $version =~ ^ligero\ [0-9]+\.[0-9]+\.[0-9]+(\ \(git\ [0-9a-f]{7,}(-dirty)?\))?$ ]] ||
	fail "--version printed '$version'"
[ "$version" = "$("$build/ligero" --version)" ] || fail "installed and built --version differ"
"$bin" help img convert | grep -q '^usage: ligero img convert ' || fail "'help img convert'"
"$bin" --help >/dev/null || fail "--help failed"

pages=("$root/$mandir"/man1/ligero*.1)
if [ -f "$build/docs/man/ligero.1" ]; then # built with scdoc
	if [ ${#pages[@]} -lt 5 ] || [ ! -f "${pages[0]}" ]; then
		fail "no manual pages installed"
	fi
fi
for page in "${pages[@]}"; do
	[ -f "$page" ] || continue
	out=$(MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -l "$page" 2>&1 >/dev/null) ||
		fail "man -l $page failed"
	[ -z "$out" ] || fail "man --warnings $page: $out"
done

completion=$(find "$root/share" -path '*/bash-completion/completions/ligero')
[ -n "$completion" ] || fail "no bash completion installed"
bash -n "$completion" || fail "$completion does not parse"

for doc in README.md "$src"/docs/*.md; do
	[ -f "$root/$datadir/doc/ligero/$(basename "$doc")" ] ||
		fail "$(basename "$doc") is not installed in share/doc/ligero"
done

echo "install-check: $(wc -l <"$destdir.found") files under $destdir$prefix; $version"
rm -f "$destdir.log" "$destdir.expected" "$destdir.found"
