#!/bin/sh
# Per-call cost of the digest-auth crypto, the pre-issue-6 code ("old",
# kept inside bench/cryptobench.c) against the library ("new"):
# wall-clock ns per call, then instructions per call under callgrind.
# See bench/README.md. Knobs: BUILD (meson build dir, default build),
# N / ROUNDS (wall clock), CG_N (calls under callgrind), CPU (pin with
# taskset), NO_CALLGRIND=1.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
N=${N:-200000}
ROUNDS=${ROUNDS:-7}
CG_N=${CG_N:-20000}
PIN=""
[ -n "${CPU:-}" ] && PIN="taskset -c $CPU"

ninja -C "$BUILD" bench/cryptobench >/dev/null
B=$BUILD/bench/cryptobench

echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src/auth bench/cryptobench.c || echo '+dirty')"
echo "nproc: $(nproc)  kernel: $(uname -r)  cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
bt=$(python3 -c 'import json,sys; print(next(o["value"] for o in json.load(open(sys.argv[1])) if o["name"] == "buildtype"))' \
	"$BUILD/meson-info/intro-buildoptions.json" 2>/dev/null || echo '?')
echo "openssl: $(openssl version 2>/dev/null || echo '?')  build: $BUILD ($bt)"
echo
echo "## wall clock: $PIN $B -n $N -r $ROUNDS"
$PIN "$B" -n "$N" -r "$ROUNDS"

[ "${NO_CALLGRIND:-0}" = 1 ] && exit 0
command -v valgrind >/dev/null || { echo "(no valgrind: callgrind part skipped)"; exit 0; }
echo
echo "## callgrind: valgrind --tool=callgrind --toggle-collect=measure $B -n $CG_N -o OP/VARIANT"
echo "## (Ir inside measure() / $CG_N; valgrind hides SHA-NI, so SHA-256 runs OpenSSL's AVX2 code here)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%-26s %10s %10s %7s\n' "op (one call)" "old Ir" "new Ir" "new/old"
for op in $("$B" -l | sed -n 's,/old$,,p'); do
	for v in old new; do
		valgrind --tool=callgrind --toggle-collect=measure --callgrind-out-file="$tmp/$v.out" \
			"$B" -n "$CG_N" -o "$op/$v" >/dev/null 2>"$tmp/log" || { cat "$tmp/log"; exit 1; }
		awk -v n="$CG_N" '/^totals:/ { printf "%.0f\n", $2 / n }' "$tmp/$v.out" >"$tmp/$v"
	done
	printf '%-26s %10s %10s %7.2f\n' "$op" "$(cat "$tmp/old")" "$(cat "$tmp/new")" \
		"$(echo "$(cat "$tmp/new") $(cat "$tmp/old")" | awk '{ print $1 / $2 }')"
done
