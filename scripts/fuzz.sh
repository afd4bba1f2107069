#!/usr/bin/env bash
# Run every libFuzzer target (or the ones named) for a given time each.
#
#   bash scripts/fuzz.sh [-t SECONDS] [-j PARALLEL] [-m] [TARGET...]
#
#   -t  seconds per target (default 600)
#   -j  targets run at the same time (default 1; one core each)
#   -m  afterwards, merge what was found into tests/fuzz/corpus/<target>
#       (libFuzzer -merge=1 keeps only inputs that add coverage)
#
# Builds build-fuzz with clang, libFuzzer and ASan+UBSan. The libraries are
# compiled with -fsanitize=fuzzer-no-link so the code under test carries the
# coverage instrumentation (without it libFuzzer only sees the target file).
# Each target grows a scratch corpus in build-fuzz/corpus/<target>, seeded
# from tests/fuzz/corpus/<target> (+ the RFC 4475/5118 torture messages for
# the message parser); crashes land in build-fuzz/artifacts/. Logs:
# build-fuzz/fuzz-logs/<target>.log. A summary line per target (executions,
# coverage edges, features, corpus size) ends the run; exit 1 on any crash.
set -uo pipefail
cd "$(dirname "$0")/.."

secs=600 par=1 merge=0
while getopts "t:j:m" o; do
  case $o in
    t) secs=$OPTARG ;;
    j) par=$OPTARG ;;
    m) merge=1 ;;
    *) sed -n '2,12p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))

bd=build-fuzz
if [ ! -d $bd ]; then
  CC=clang meson setup $bd -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dc_args=-fsanitize=fuzzer-no-link >/dev/null || exit 1
fi
ninja -C $bd >/dev/null 2>&1 || true   # the server binary is not needed here
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in $bd/tests/fuzz/fuzz_*; do
    [ -x "$f" ] && [ -f "$f" ] && targets+=("$(basename "$f")")
  done
fi
for t in "${targets[@]}"; do
  ninja -C $bd "tests/fuzz/$t" >/dev/null || { echo "fuzz: cannot build $t" >&2; exit 1; }
done
mkdir -p $bd/fuzz-logs $bd/artifacts

run_one() {
  local t=$1 seeds=() dict=()
  mkdir -p "$bd/corpus/$t"
  [ -d "tests/fuzz/corpus/$t" ] && seeds+=("tests/fuzz/corpus/$t")
  case $t in
    fuzz_sip_msg) seeds+=(tests/torture/rfc4475 tests/torture/rfc5118) ;;
  esac
  case $t in
    fuzz_sip_msg|fuzz_sip_frame|fuzz_auth_verify|fuzz_sip_authhdr) dict=(-dict=tests/fuzz/sip.dict) ;;
    fuzz_config) dict=(-dict=tests/fuzz/config.dict) ;;
  esac
  "$bd/tests/fuzz/$t" "$bd/corpus/$t" "${seeds[@]}" "${dict[@]}" \
    -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$bd/artifacts/$t-" >"$bd/fuzz-logs/$t.log" 2>&1
  echo $? >"$bd/fuzz-logs/$t.rc"
}

running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ $running -ge "$par" ]; then wait -n; running=$((running - 1)); fi
done
wait

rc=0
printf '%-20s %12s %8s %8s %8s %s\n' target execs cov ft corpus result
for t in "${targets[@]}"; do
  log=$bd/fuzz-logs/$t.log
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}')
  last=$(grep -E '^#[0-9]+' "$log" | grep -E 'cov: ' | tail -1)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.*corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
  res=ok
  if [ "$(cat "$bd/fuzz-logs/$t.rc")" != 0 ]; then res="CRASH (see $log)"; rc=1; fi
  printf '%-20s %12s %8s %8s %8s %s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$res"
  if [ $merge = 1 ] && [ "$res" = ok ]; then
    mkdir -p "tests/fuzz/corpus/$t"
    "$bd/tests/fuzz/$t" -merge=1 "tests/fuzz/corpus/$t" "$bd/corpus/$t" >/dev/null 2>&1
  fi
done
exit $rc
