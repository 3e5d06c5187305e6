#!/usr/bin/env bash
# Old build against new, in one run: EV::Etcd built from an older commit
# (perl-old) and from this tree (perl), on the same throwaway etcd 3.5.
#   1. the timed comparison (bench/compare.pl: interleaved, best of 3);
#   2. instructions per operation under valgrind's callgrind for seq_get,
#      pipe_get, watch_latency and big_range (bench/compare.pl --callgrind),
#      which the machine's noise does not move.
#
#   bash bench/ab.sh OLD_COMMIT [--rounds N] [--ops N] [--workloads a,b]
#   (--rounds 0: instruction counts only)
#
# The old commit is built in a temporary git worktree (its own cargo target
# dir, seeded from this tree's to save time) and removed afterwards. Needs
# valgrind (apt-get install valgrind). Writes JSON lines to bench/results/.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
# shellcheck source=scripts/common.sh
. "$root/scripts/common.sh"
cd "$root"

old="${1:?usage: bash bench/ab.sh OLD_COMMIT [--rounds N] [--ops N] [--workloads a,b]}"
shift
rounds=3 ops=400 workloads=seq_get,pipe_get,watch_latency,big_range
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds="$2"; shift 2 ;;
        --ops) ops="$2"; shift 2 ;;
        --workloads) workloads="$2"; shift 2 ;;
        *) ev_etcd_die "ab.sh: unknown option $1" ;;
    esac
done
command -v valgrind >/dev/null || ev_etcd_die "ab.sh: valgrind is needed (apt-get install valgrind)"

echo "== ab: building this tree"
ev_etcd_build >/dev/null
ETCD_BIN="$(bash scripts/etcd-bin.sh 3.5)" || ev_etcd_die "no etcd 3.5"
export ETCD_BIN

tmp="$(mktemp -d "${TMPDIR:-/tmp}/ev-etcd-ab.XXXXXX")"
cleanup() { git -C "$root" worktree remove --force "$tmp/old" >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
echo "== ab: building $old in $tmp/old"
git -C "$root" worktree add --detach "$tmp/old" "$old" >/dev/null
[ -d "$root/target" ] && cp -a "$root/target" "$tmp/old/"
(cd "$tmp/old" && perl Makefile.PL >/dev/null && make >/dev/null) ||
    ev_etcd_die "ab.sh: building $old failed"

run_compare() {
    perl -I"$root/blib/lib" -I"$root/blib/arch" -I"$root/t/lib" "$here/compare.pl" \
        --clients perl-old,perl --old-blib "$tmp/old/blib" --workloads "$workloads" "$@"
}
echo "== ab: $(git -C "$tmp/old" rev-parse --short HEAD) as perl-old," \
    "$(git rev-parse --short HEAD)$(git status --porcelain --untracked-files=no | grep -q . && echo +dirty) as perl"
if [ "$rounds" -gt 0 ]; then
    echo "== ab: timed, best of $rounds"
    run_compare --rounds "$rounds"
fi
echo "== ab: instructions per operation (callgrind, $ops and $((2 * ops)) operations)"
run_compare --callgrind "$ops"
