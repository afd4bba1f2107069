#!/usr/bin/env bash
# Install Debian packages by name, idempotently: nothing is fetched when all
# are present. Usage: scripts/deps.sh build|test
set -euo pipefail

build_pkgs=(gcc meson ninja-build pkg-config libevent-dev libsqlite3-dev libinih-dev libssl-dev
            libmaxminddb-dev libc-ares-dev)
test_pkgs=(libcmocka-dev python3-pytest sip-tester sipsak baresip sipvicious clang dnsmasq-base
           libclang-rt-14-dev sqlite3 binutils procps iproute2
           libmaxmind-db-writer-perl linphone-cli strace systemd)

case "${1:-build}" in
  build) pkgs=("${build_pkgs[@]}") ;;
  test)  pkgs=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  *) echo "usage: $0 build|test" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing: ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
