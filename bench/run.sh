#!/usr/bin/env bash
# Runs the EV::Etcd benchmarks. Each one starts its own throwaway etcd on
# free loopback ports (through t/lib/EtcdTest.pm) and stops it at the end.
#
#   bench/run.sh                 # all of them
#   bench/run.sh kv watch        # a selection (kv, watch, leak)
#
# The module must be built first (perl Makefile.PL && make). The etcd binary
# is $ETCD_BIN or `etcd` on PATH. Arguments for the individual scripts can be
# passed through the environment:
#   BENCH_KV_ARGS="--ops 20000 --window 500"
#   BENCH_WATCH_ARGS="--watches 10000 --window 500"
#   BENCH_LEAK_ARGS="--ops 200000 --batch 10000 --window 100"
set -euo pipefail

cd "$(dirname "$0")/.."
if [ ! -d blib/arch/auto/EV/Etcd ]; then
    echo "bench: EV::Etcd is not built; run 'perl Makefile.PL && make' first" >&2
    exit 2
fi

which=("$@")
[ ${#which[@]} -gt 0 ] || which=(kv watch leak)

status=0
for b in "${which[@]}"; do
    case "$b" in
        kv)    args=${BENCH_KV_ARGS:-} ;;
        watch) args=${BENCH_WATCH_ARGS:-} ;;
        leak)  args=${BENCH_LEAK_ARGS:-} ;;
        *) echo "bench: unknown benchmark '$b' (kv, watch, leak)" >&2; exit 2 ;;
    esac
    echo "=== $b ($(date '+%Y-%m-%d %H:%M:%S'))"
    # shellcheck disable=SC2086  # word splitting of $args is intended
    rc=0
    perl -Mblib -It/lib "bench/$b.pl" $args || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "=== $b FAILED (exit status $rc)" >&2
        status=1
    fi
    echo
done
exit $status
