#!/usr/bin/env bash
# Build ligero the way distributions package it, with warnings still errors, so that a release or
# hardened build cannot break unnoticed: gcc and clang, each with the buildtypes debug,
# debugoptimized and release, a plain build with the flags of a hardened distribution package
# (-O2, _FORTIFY_SOURCE=3, the stack and control-flow protections, and link-time optimisation, as
# Ubuntu's and Fedora's packages build by default), and a release build with link-time
# optimisation (-O3 across units). Each configuration gets its own build
# directory under DIR. Only the ligero binary is built, except in the release builds named in
# TESTS_IN (both by default), which also build and run the unit tests (NDEBUG and -O3 change
# what the code does).
#
# usage: .ci/release-builds.sh DIR        (DIR is created; an existing build in it is reused)
# env:   KEEP_GOING=1 builds every configuration and reports all failures at the end.
#        SKIP="NAME..." leaves those configurations out (.ci/run builds only the release and
#        plain ones).
#        TESTS_IN="NAME..." the release builds that build and run the unit tests (default both;
#        .ci/run: clang's, as gcc's optimised build runs them in every other pass).
set -euo pipefail
if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
src=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)

# What Debian's dpkg-buildflags gives with hardening=+all, plus _FORTIFY_SOURCE=3.
hard_cflags='-O2 -D_FORTIFY_SOURCE=3 -fstack-protector-strong -fstack-clash-protection -fcf-protection'
hard_ldflags='-Wl,-z,relro,-z,now'

failed=()
# build NAME CC TESTS [meson options...]: TESTS=1 builds and runs the unit tests too.
build() {
	local name=$1 cc=$2 tests=$3 dir=$out/$1 start=$SECONDS
	shift 3
	if [ ! -f "$dir/build.ninja" ]; then
		local cflags='' ldflags=''
		if [ "$name" != "${name%-plain}" ]; then
			cflags=$hard_cflags
			ldflags=$hard_ldflags
		fi
		if ! CC=$cc CFLAGS=$cflags LDFLAGS=$ldflags meson setup "$dir" "$src" \
			"-Dtests=$([ "$tests" = 1 ] && echo enabled || echo disabled)" "$@" \
			>"$dir.setup.log" 2>&1; then
			cat "$dir.setup.log" >&2
			return 1
		fi
	fi
	local targets=(ligero)
	[ "$tests" = 1 ] && targets=()
	# -k 0: a failing build lists every error, not only the first.
	if ! ninja -C "$dir" -k 0 "${targets[@]}" >"$dir.log" 2>&1; then
		grep -v '^\[[0-9]*/[0-9]*\] ' "$dir.log" >&2
		return 1
	fi
	if [ "$tests" = 1 ] && ! meson test -C "$dir" --print-errorlogs >>"$dir.log" 2>&1; then
		cat "$dir.log" >&2
		return 1
	fi
	echo "release-builds: $name ok ($((SECONDS - start)) s)"
}

configs=(
	"debug --buildtype=debug"
	"debugoptimized --buildtype=debugoptimized"
	"release --buildtype=release"
	"plain --buildtype=plain -Db_lto=true"
	"lto --buildtype=release -Db_lto=true"
)
for cc in gcc clang; do
	for c in "${configs[@]}"; do
		# shellcheck disable=SC2086 # one word per meson option
		set -- $c
		name=$cc-$1
		shift
		case " ${SKIP:-} " in *" $name "*)
			echo "release-builds: $name left out (SKIP)"
			continue ;;
		esac
		tests=0
		case " ${TESTS_IN:-gcc-release clang-release} " in *" $name "*) tests=1 ;; esac
		if ! build "$name" "$cc" "$tests" "$@"; then
			echo "release-builds: $name FAILED (log: $out/$name.log)" >&2
			failed+=("$name")
			[ "${KEEP_GOING:-0}" = 1 ] || exit 1
		fi
	done
done
if [ ${#failed[@]} -gt 0 ]; then
	echo "release-builds: failed: ${failed[*]}" >&2
	exit 1
fi
echo "release-builds: all passed in $SECONDS s"
