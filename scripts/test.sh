#!/usr/bin/env bash
# Install test dependencies, build with ASan+UBSan, run every suite
# (unit, fuzz-replay, integration), then check the hardened release build.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh test || exit 1

werror=false
[ "${CI:-}" = "true" ] && werror=true

# 1. Sanitizer build: unit tests, fuzz-corpus replay, integration suite.
if [ ! -d build-test ]; then
  meson setup build-test -Db_sanitize=address,undefined -Db_lundef=false \
    -Dwerror=$werror >/dev/null || exit 1
fi
ninja -C build-test || exit 1
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
meson test -C build-test --print-errorlogs --num-processes 2 --timeout-multiplier 3
rc=$?

# 2. The release build at build/ (scripts outside the repo rely on build/sipwarden).
if [ ! -d build ]; then meson setup build -Dwerror=$werror >/dev/null || exit 1; fi
ninja -C build || exit 1
bash scripts/check-hardening.sh build/sipwarden || rc=1

# One closing line any CI reader understands.
/usr/bin/python3 - "$rc" <<'PY'
import json, sys
ok = fail = skip = 0
with open("build-test/meson-logs/testlog.json") as f:
    for line in f:
        r = json.loads(line)["result"]
        if r in ("OK", "EXPECTEDFAIL"): ok += 1
        elif r == "SKIP": skip += 1
        else: fail += 1
if sys.argv[1] != "0" and fail == 0:
    fail = 1  # a failure outside meson test (hardening check)
print(f"{ok} passed, {fail} failed, {skip} skipped")
PY
exit $rc
