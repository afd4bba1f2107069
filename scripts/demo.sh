#!/usr/bin/env bash
# Install build dependencies, build, and start sipwarden with the embedded
# demo configuration (loopback UDP+TCP 5060, SQLite under ./var).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh build
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null
exec ./build/sipwarden run
